/* Shared by the tests: a signed request built from the fixed vector, and a handler with fakes. */
import { createHmac } from 'node:crypto';
import fixture from '../__fixtures__/signed-event.json';
import {
  createEventHandler,
  type DeliveryMemory,
  type EventHeaders,
  type EventRequest,
} from '../handler';

export const SECRET = fixture.secret;
export const NOW = fixture.timestamp;

export function sign(secret: string, timestamp: string, body: Buffer | string): string {
  const mac = createHmac('sha256', secret).update(`${timestamp}.`).update(body);
  return `v1=${mac.digest('hex')}`;
}

type Event = {
  schema: unknown;
  recipients: unknown;
  notification: Record<string, unknown>;
  audit: Record<string, unknown>;
  [key: string]: unknown;
};

/** The fixture's event, parsed, for a test to change one thing in. */
export function fixtureEvent(): Event {
  return JSON.parse(fixture.body);
}

/** A correctly signed request for `body` (an event or exact text), headers overridable. */
export function signedRequest(
  body: Event | string | Buffer,
  headers: EventHeaders = {},
): EventRequest {
  const bytes = Buffer.isBuffer(body)
    ? body
    : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const event = Buffer.isBuffer(body) || typeof body === 'string' ? undefined : body;
  const timestamp = String(NOW);
  return {
    body: bytes,
    headers: {
      'content-type': 'application/json',
      'x-meshgate-timestamp': timestamp,
      'x-meshgate-signature': sign(SECRET, timestamp, bytes),
      'x-meshgate-delivery': String(event?.audit?.seq ?? 7),
      ...headers,
    },
  };
}

export function testHandler(
  options: {
    secret?: string | undefined;
    send?: jest.Mock;
    deliveries?: DeliveryMemory;
  } = {},
) {
  const send = options.send ?? jest.fn(async () => undefined);
  const logger = { info: jest.fn(), warn: jest.fn() };
  const handler = createEventHandler({
    secret: 'secret' in options ? options.secret : SECRET,
    notifications: { send },
    logger,
    now: () => NOW,
    deliveries: options.deliveries,
  });
  return { handler, send, logger };
}

export { fixture };
