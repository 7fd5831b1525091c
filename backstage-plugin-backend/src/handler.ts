/*
 * The receiver of meshgate access events: verify the signature, validate the event, map it to one
 * Backstage notification. Everything here is plain functions over headers and raw body bytes, so
 * the Express router (router.ts) stays a thin adapter and the rules are tested without a server.
 *
 * Wire format (docs/access.md, "Notifications"): the control plane POSTs a compact JSON body with
 *   x-meshgate-timestamp: <unix seconds>
 *   x-meshgate-signature: v1=<lowercase hex HMAC-SHA256(secret, "<timestamp>.<raw body bytes>")>
 *   x-meshgate-delivery:  <audit seq>
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { LoggerService } from '@backstage/backend-plugin-api';
import { parseEntityRef } from '@backstage/catalog-model';
import type {
  NotificationSendOptions,
  NotificationService,
} from '@backstage/plugin-notifications-node';

export const EVENT_SCHEMA = 'meshgate.access.notification/v1';
/** The largest body accepted, in bytes (64 KiB). */
export const MAX_BODY_BYTES = 64 * 1024;
/** How far the timestamp may be from this host's clock, either way, in seconds. */
export const MAX_CLOCK_SKEW_SECONDS = 300;
export const MAX_RECIPIENTS = 100;
export const MAX_TITLE_CHARS = 200;
export const MAX_DESCRIPTION_CHARS = 2000;
/** topic and scope are identifiers, not prose. */
export const MAX_TOPIC_CHARS = 200;
export const MAX_LINK_CHARS = 2000;
/** How many delivery ids are remembered to answer retries without sending again. */
export const REMEMBERED_DELIVERIES = 1000;

export const SEVERITIES = ['low', 'normal', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** Header names as Node gives them (lower case); a repeated header is an array. */
export type EventHeaders = Record<string, string | string[] | undefined>;

export type Refusal =
  | { status: 400; code: 'bad_event'; field: string }
  | { status: 401; code: 'bad_signature' | 'stale_timestamp' }
  | { status: 413; code: 'too_large' }
  | { status: 503; code: 'not_configured' | 'notifications_unavailable' };

/** What the route answers: a status and a JSON body. */
export type EventReply =
  | { status: 202; body: { sent: true } }
  | { status: 200; body: { duplicate: true } }
  | {
      status: Refusal['status'];
      body: { error: { code: Refusal['code']; field?: string } };
    };

/** A verified, validated event. */
export type AccessEvent = {
  delivery: string;
  recipients: string[];
  notification: {
    title: string;
    description: string;
    severity: Severity;
    topic: string;
    scope: string;
    link: string;
  };
};

type Result<T> = { ok: true; value: T } | { ok: false; refusal: Refusal };

const ok = <T>(value: T): Result<T> => ({ ok: true, value });
const badEvent = (field: string): Result<never> => ({
  ok: false,
  refusal: { status: 400, code: 'bad_event', field },
});

function singleHeader(headers: EventHeaders, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
}

const TIMESTAMP = /^[0-9]{1,15}$/;
const SIGNATURE = /^v1=([0-9a-f]{64})$/;
const DELIVERY = /^[1-9][0-9]{0,15}$/;

/**
 * Checks the signature over the raw body bytes, then the timestamp against `nowSeconds`.
 * A missing or malformed timestamp or signature header is a bad signature: nothing can be
 * checked without them.
 */
export function verify(
  secret: string,
  headers: EventHeaders,
  body: Buffer,
  nowSeconds: number,
): Result<void> {
  const badSignature: Result<never> = {
    ok: false,
    refusal: { status: 401, code: 'bad_signature' },
  };
  const timestamp = singleHeader(headers, 'x-meshgate-timestamp');
  const signature = singleHeader(headers, 'x-meshgate-signature');
  if (timestamp === undefined || !TIMESTAMP.test(timestamp)) {
    return badSignature;
  }
  const hex = signature === undefined ? null : SIGNATURE.exec(signature);
  if (hex === null) {
    return badSignature;
  }
  const given = Buffer.from(hex[1], 'hex');
  const expected = createHmac('sha256', secret)
    .update(`${timestamp}.`)
    .update(body)
    .digest();
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return badSignature;
  }
  if (Math.abs(nowSeconds - Number(timestamp)) > MAX_CLOCK_SKEW_SECONDS) {
    return { ok: false, refusal: { status: 401, code: 'stale_timestamp' } };
  }
  return ok(undefined);
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Length in Unicode code points, as the sender (Rust `chars().count()`) counts. */
const chars = (value: string): number => Array.from(value).length;

function unknownKey(
  value: Record<string, unknown>,
  known: readonly string[],
): string | undefined {
  return Object.keys(value).find(key => !known.includes(key));
}

/**
 * A link the notifications UI may follow: a path inside this Backstage app. No scheme, no
 * `//host` and nothing a browser turns into one (`/\host`, tabs or newlines, which URL parsing
 * drops), so a notification can never be an open redirect.
 */
export function isAppRelativeLink(link: string): boolean {
  return (
    link.startsWith('/') &&
    !link.startsWith('//') &&
    chars(link) <= MAX_LINK_CHARS &&
    // eslint-disable-next-line no-control-regex
    !/[\u0000-\u0020\u007f\\]/.test(link)
  );
}

function text(
  value: unknown,
  field: string,
  min: number,
  max: number,
): Result<string> {
  if (typeof value !== 'string' || value.trim().length < min || chars(value) > max) {
    return badEvent(field);
  }
  return ok(value);
}

const TOP_LEVEL = ['schema', 'recipients', 'notification', 'audit'] as const;
const NOTIFICATION = ['title', 'description', 'severity', 'topic', 'scope', 'link'] as const;

/**
 * Parses and validates a verified body. `delivery` is the x-meshgate-delivery header: it must
 * be the audit line's `seq`, because the header itself is not signed and is what retries are
 * recognised by.
 */
export function validate(
  body: Buffer,
  delivery: string | undefined,
): Result<AccessEvent> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    return badEvent('body');
  }
  if (!isObject(parsed)) {
    return badEvent('body');
  }
  const extra = unknownKey(parsed, TOP_LEVEL);
  if (extra !== undefined) {
    return badEvent(extra);
  }
  if (parsed.schema !== EVENT_SCHEMA) {
    return badEvent('schema');
  }

  const recipients = parsed.recipients;
  if (
    !Array.isArray(recipients) ||
    recipients.length === 0 ||
    recipients.length > MAX_RECIPIENTS ||
    !recipients.every(isEntityRef)
  ) {
    return badEvent('recipients');
  }

  const n = parsed.notification;
  if (!isObject(n)) {
    return badEvent('notification');
  }
  const extraField = unknownKey(n, NOTIFICATION);
  if (extraField !== undefined) {
    return badEvent(`notification.${extraField}`);
  }
  const title = text(n.title, 'notification.title', 1, MAX_TITLE_CHARS);
  if (!title.ok) return title;
  const description = text(
    n.description,
    'notification.description',
    0,
    MAX_DESCRIPTION_CHARS,
  );
  if (!description.ok) return description;
  const severity = n.severity;
  if (!SEVERITIES.some(known => known === severity)) {
    return badEvent('notification.severity');
  }
  const topic = text(n.topic, 'notification.topic', 1, MAX_TOPIC_CHARS);
  if (!topic.ok) return topic;
  const scope = text(n.scope, 'notification.scope', 1, MAX_TOPIC_CHARS);
  if (!scope.ok) return scope;
  if (typeof n.link !== 'string' || !isAppRelativeLink(n.link)) {
    return badEvent('notification.link');
  }

  const audit = parsed.audit;
  if (!isObject(audit)) {
    return badEvent('audit');
  }
  const seq = audit.seq;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) {
    return badEvent('audit.seq');
  }
  if (delivery === undefined || !DELIVERY.test(delivery) || delivery !== String(seq)) {
    return badEvent('x-meshgate-delivery');
  }

  return ok({
    delivery,
    recipients: recipients as string[],
    notification: {
      title: title.value,
      description: description.value,
      severity: severity as Severity,
      topic: topic.value,
      scope: scope.value,
      link: n.link,
    },
  });
}

function isEntityRef(value: unknown): boolean {
  if (typeof value !== 'string') {
    return false;
  }
  try {
    parseEntityRef(value);
    return true;
  } catch {
    return false;
  }
}

/** The one notification an event becomes. */
export function toSendOptions(event: AccessEvent): NotificationSendOptions {
  const { title, description, link, severity, topic, scope } = event.notification;
  return {
    recipients: { type: 'entity', entityRef: event.recipients },
    payload: { title, description, link, severity, topic, scope },
  };
}

/**
 * The last `capacity` delivery ids, oldest evicted first. An id is remembered from the moment
 * its send starts (so a retry racing the first attempt is not sent twice) and forgotten again
 * if the send fails (so the sender's retry is sent).
 */
export class DeliveryMemory {
  private readonly ids = new Set<string>();

  constructor(private readonly capacity: number = REMEMBERED_DELIVERIES) {}

  has(id: string): boolean {
    return this.ids.has(id);
  }

  remember(id: string): void {
    this.ids.add(id);
    while (this.ids.size > this.capacity) {
      const oldest = this.ids.values().next();
      if (oldest.done) {
        break;
      }
      this.ids.delete(oldest.value);
    }
  }

  forget(id: string): void {
    this.ids.delete(id);
  }
}

export type EventLogger = Pick<LoggerService, 'info' | 'warn'>;

export type EventHandlerOptions = {
  /** The shared secret; empty or missing means not configured (every event answers 503). */
  secret: string | undefined;
  notifications: Pick<NotificationService, 'send'>;
  logger: EventLogger;
  /** Unix seconds; the tests fix it. */
  now?: () => number;
  deliveries?: DeliveryMemory;
};

export type EventRequest = { headers: EventHeaders; body: Buffer };

export type EventHandler = (request: EventRequest) => Promise<EventReply>;

function refuse(refusal: Refusal): EventReply {
  const error =
    refusal.code === 'bad_event'
      ? { code: refusal.code, field: refusal.field }
      : { code: refusal.code };
  return { status: refusal.status, body: { error } };
}

export function createEventHandler(options: EventHandlerOptions): EventHandler {
  const secret = options.secret?.trim() ? options.secret : undefined;
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  const deliveries = options.deliveries ?? new DeliveryMemory();
  const { notifications, logger } = options;

  return async ({ headers, body }) => {
    if (secret === undefined) {
      return refuse({ status: 503, code: 'not_configured' });
    }
    if (body.length > MAX_BODY_BYTES) {
      logger.warn('meshgate access event refused: too_large');
      return refuse({ status: 413, code: 'too_large' });
    }
    const verified = verify(secret, headers, body, now());
    if (!verified.ok) {
      logger.warn(`meshgate access event refused: ${verified.refusal.code}`);
      return refuse(verified.refusal);
    }
    const event = validate(body, singleHeader(headers, 'x-meshgate-delivery'));
    if (!event.ok) {
      const field = event.refusal.code === 'bad_event' ? ` (${event.refusal.field})` : '';
      logger.warn(`meshgate access event refused: ${event.refusal.code}${field}`);
      return refuse(event.refusal);
    }
    const { delivery } = event.value;
    if (deliveries.has(delivery)) {
      return { status: 200, body: { duplicate: true } };
    }
    deliveries.remember(delivery);
    try {
      await notifications.send(toSendOptions(event.value));
    } catch (error) {
      deliveries.forget(delivery);
      logger.warn(
        `meshgate access event ${delivery} not delivered: the notifications service failed (${String(error)}); the sender retries`,
      );
      return refuse({ status: 503, code: 'notifications_unavailable' });
    }
    logger.info(`meshgate access event ${delivery} sent`, {
      recipients: event.value.recipients.length,
    });
    return { status: 202, body: { sent: true } };
  };
}
