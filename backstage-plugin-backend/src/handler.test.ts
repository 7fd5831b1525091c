import {
  DeliveryMemory,
  type EventHeaders,
  MAX_BODY_BYTES,
  REMEMBERED_DELIVERIES,
  toSendOptions,
  validate,
} from './handler';
import {
  fixture,
  fixtureEvent,
  NOW,
  SECRET,
  sign,
  signedRequest,
  testHandler,
} from './__testUtils__/events';

const MAPPED = {
  recipients: { type: 'entity', entityRef: ['group:default/data-eng'] },
  payload: {
    title: 'carol asks for airflow.dag etl_daily for 15m',
    description:
      'Reason: rerun the load after the outage. Approve or deny on the Access requests page.',
    link: '/access-requests',
    severity: 'normal',
    topic: 'meshgate-access',
    scope: 'meshgate-access:req_0123abcd',
  },
};

const fixtureRequest = (headers: EventHeaders = {}) => ({
  body: Buffer.from(fixture.body),
  headers: {
    'x-meshgate-timestamp': String(fixture.timestamp),
    'x-meshgate-signature': fixture.signature,
    'x-meshgate-delivery': '7',
    ...headers,
  },
});

describe('the fixed cross-language vector', () => {
  it('has the signature openssl computed', () => {
    expect(sign(fixture.secret, String(fixture.timestamp), fixture.body)).toBe(fixture.signature);
  });

  it('is accepted and sent as exactly the mapped notification', async () => {
    const { handler, send } = testHandler();
    await expect(handler(fixtureRequest())).resolves.toEqual({
      status: 202,
      body: { sent: true },
    });
    expect(send).toHaveBeenCalledTimes(1);
    expect(send).toHaveBeenCalledWith(MAPPED);
  });
});

const withBody = (change: (event: ReturnType<typeof fixtureEvent>) => void) => {
  const event = fixtureEvent();
  change(event);
  return signedRequest(event);
};

const tamperedBody = () => {
  const request = fixtureRequest();
  const body = Buffer.from(fixture.body);
  body[body.indexOf('carol')] = 'k'.charCodeAt(0); // one byte: carol -> karol
  return { ...request, body };
};

const paddedTo = (bytes: number) => {
  const compact = fixture.body;
  // JSON allows whitespace before the closing brace: same event, any size.
  return `${compact.slice(0, -1)}${' '.repeat(bytes - compact.length)}}`;
};

describe('events that are refused', () => {
  const badEvent = (field: string) => ({
    status: 400,
    body: { error: { code: 'bad_event', field } },
  });
  const unauthorized = (code: string) => ({ status: 401, body: { error: { code } } });

  it.each([
    ['wrong secret', () => ({ ...fixtureRequest(), headers: { ...fixtureRequest().headers, 'x-meshgate-signature': sign('another-secret', String(fixture.timestamp), fixture.body) } }), unauthorized('bad_signature')],
    ['a body changed by one byte', tamperedBody, unauthorized('bad_signature')],
    ['the signature of another timestamp', () => fixtureRequest({ 'x-meshgate-timestamp': String(NOW + 1) }), unauthorized('bad_signature')],
    ['no timestamp header', () => fixtureRequest({ 'x-meshgate-timestamp': undefined }), unauthorized('bad_signature')],
    ['a timestamp that is not decimal', () => fixtureRequest({ 'x-meshgate-timestamp': '1.7e9' }), unauthorized('bad_signature')],
    ['no signature header', () => fixtureRequest({ 'x-meshgate-signature': undefined }), unauthorized('bad_signature')],
    ['a signature without v1=', () => fixtureRequest({ 'x-meshgate-signature': fixture.signature.slice(3) }), unauthorized('bad_signature')],
    ['a signature in upper-case hex', () => fixtureRequest({ 'x-meshgate-signature': `v1=${fixture.signature.slice(3).toUpperCase()}` }), unauthorized('bad_signature')],
    ['a truncated signature', () => fixtureRequest({ 'x-meshgate-signature': fixture.signature.slice(0, -2) }), unauthorized('bad_signature')],
    ['two signature headers', () => fixtureRequest({ 'x-meshgate-signature': [fixture.signature, fixture.signature] }), unauthorized('bad_signature')],
    ['a timestamp 301 s old', () => { const t = String(NOW - 301); return fixtureRequest({ 'x-meshgate-timestamp': t, 'x-meshgate-signature': sign(SECRET, t, fixture.body) }); }, unauthorized('stale_timestamp')],
    ['a timestamp 301 s ahead', () => { const t = String(NOW + 301); return fixtureRequest({ 'x-meshgate-timestamp': t, 'x-meshgate-signature': sign(SECRET, t, fixture.body) }); }, unauthorized('stale_timestamp')],
    ['no delivery header', () => fixtureRequest({ 'x-meshgate-delivery': undefined }), badEvent('x-meshgate-delivery')],
    ['a delivery header that is not the audit seq', () => fixtureRequest({ 'x-meshgate-delivery': '8' }), badEvent('x-meshgate-delivery')],
    ['malformed JSON', () => signedRequest('{"schema":'), badEvent('body')],
    ['a body that is not UTF-8', () => signedRequest(Buffer.from([0x7b, 0xff, 0x7d])), badEvent('body')],
    ['a JSON array', () => signedRequest('[]'), badEvent('body')],
    ['another schema', () => withBody(e => { e.schema = 'meshgate.access.notification/v2'; }), badEvent('schema')],
    ['an unknown top-level field', () => withBody(e => { e.extra = 1; }), badEvent('extra')],
    ['no recipients', () => withBody(e => { e.recipients = []; }), badEvent('recipients')],
    ['recipients not an array', () => withBody(e => { e.recipients = 'group:default/data-eng'; }), badEvent('recipients')],
    ['101 recipients', () => withBody(e => { e.recipients = Array.from({ length: 101 }, (_, i) => `user:default/u${i}`); }), badEvent('recipients')],
    ['a recipient without a kind', () => withBody(e => { e.recipients = ['group:default/data-eng', 'data-eng']; }), badEvent('recipients')],
    ['a recipient that is not a string', () => withBody(e => { e.recipients = [7]; }), badEvent('recipients')],
    ['no notification', () => withBody(e => { e.notification = null as never; }), badEvent('notification')],
    ['an unknown notification field', () => withBody(e => { e.notification.icon = 'x'; }), badEvent('notification.icon')],
    ['an empty title', () => withBody(e => { e.notification.title = ''; }), badEvent('notification.title')],
    ['a blank title', () => withBody(e => { e.notification.title = '   '; }), badEvent('notification.title')],
    ['a title of 201 chars', () => withBody(e => { e.notification.title = 'é'.repeat(201); }), badEvent('notification.title')],
    ['no title', () => withBody(e => { delete e.notification.title; }), badEvent('notification.title')],
    ['a description of 2,001 chars', () => withBody(e => { e.notification.description = 'x'.repeat(2001); }), badEvent('notification.description')],
    ['a description that is not a string', () => withBody(e => { e.notification.description = 3; }), badEvent('notification.description')],
    ['an unknown severity', () => withBody(e => { e.notification.severity = 'urgent'; }), badEvent('notification.severity')],
    ['no severity', () => withBody(e => { delete e.notification.severity; }), badEvent('notification.severity')],
    ['an empty topic', () => withBody(e => { e.notification.topic = ''; }), badEvent('notification.topic')],
    ['no scope', () => withBody(e => { delete e.notification.scope; }), badEvent('notification.scope')],
    ['an absolute link', () => withBody(e => { e.notification.link = 'https://evil.example/access-requests'; }), badEvent('notification.link')],
    ['a protocol-relative link', () => withBody(e => { e.notification.link = '//evil.example'; }), badEvent('notification.link')],
    ['a link a browser reads as //host (backslash)', () => withBody(e => { e.notification.link = '/\\evil.example'; }), badEvent('notification.link')],
    ['a link a browser reads as //host (tab)', () => withBody(e => { e.notification.link = '/\t/evil.example'; }), badEvent('notification.link')],
    // eslint-disable-next-line no-script-url
    ['a javascript: link', () => withBody(e => { e.notification.link = 'javascript:alert(1)'; }), badEvent('notification.link')],
    ['a link without a leading slash', () => withBody(e => { e.notification.link = 'access-requests'; }), badEvent('notification.link')],
    ['no audit line', () => withBody(e => { delete (e as Record<string, unknown>).audit; }), badEvent('audit')],
    ['an audit seq that is not a number', () => withBody(e => { e.audit.seq = '7'; }), badEvent('audit.seq')],
    ['a body over 64 KiB', () => signedRequest(paddedTo(MAX_BODY_BYTES + 1)), { status: 413, body: { error: { code: 'too_large' } } }],
  ])('%s', async (_name, request, expected) => {
    const { handler, send, logger } = testHandler();
    await expect(handler(request())).resolves.toEqual(expected);
    expect(send).not.toHaveBeenCalled();
    expect(logger.warn).toHaveBeenCalledTimes(1);
  });
});

describe('events that are accepted', () => {
  it.each([
    ['a timestamp 300 s old', () => { const t = String(NOW - 300); return fixtureRequest({ 'x-meshgate-timestamp': t, 'x-meshgate-signature': sign(SECRET, t, fixture.body) }); }],
    ['a timestamp 300 s ahead', () => { const t = String(NOW + 300); return fixtureRequest({ 'x-meshgate-timestamp': t, 'x-meshgate-signature': sign(SECRET, t, fixture.body) }); }],
    ['a body of exactly 64 KiB', () => signedRequest(paddedTo(MAX_BODY_BYTES))],
    ['100 recipients, users and groups', () => withBody(e => { e.recipients = Array.from({ length: 100 }, (_, i) => (i % 2 ? `user:default/u${i}` : `group:g${i}`)); })],
    ['a title of 200 chars, counted in code points', () => withBody(e => { e.notification.title = '🔑'.repeat(200); })],
    ['a description of 2,000 chars', () => withBody(e => { e.notification.description = 'x'.repeat(2000); })],
    ['an empty description', () => withBody(e => { e.notification.description = ''; })],
    ['each severity (critical)', () => withBody(e => { e.notification.severity = 'critical'; })],
    ['a link with a query and a fragment', () => withBody(e => { e.notification.link = '/access-requests?tab=mine#req_0123abcd'; })],
  ])('%s', async (_name, request) => {
    const { handler, send } = testHandler();
    await expect(handler(request())).resolves.toEqual({ status: 202, body: { sent: true } });
    expect(send).toHaveBeenCalledTimes(1);
  });

  it('maps every field and nothing else', () => {
    const event = fixtureEvent();
    event.recipients = ['user:default/carol', 'group:default/data-eng'];
    event.notification.severity = 'high';
    const parsed = validate(Buffer.from(JSON.stringify(event)), '7');
    expect(parsed.ok).toBe(true);
    expect(parsed.ok && toSendOptions(parsed.value)).toEqual({
      recipients: {
        type: 'entity',
        entityRef: ['user:default/carol', 'group:default/data-eng'],
      },
      payload: { ...MAPPED.payload, severity: 'high' },
    });
  });
});

describe('retries', () => {
  it('answers a repeated delivery without sending again', async () => {
    const { handler, send } = testHandler();
    await expect(handler(fixtureRequest())).resolves.toEqual({ status: 202, body: { sent: true } });
    await expect(handler(fixtureRequest())).resolves.toEqual({ status: 200, body: { duplicate: true } });
    expect(send).toHaveBeenCalledTimes(1);
  });

  it('does not count a concurrent retry as a second send', async () => {
    let release: () => void = () => {};
    const send = jest.fn(() => new Promise<void>(resolve => { release = resolve; }));
    const { handler } = testHandler({ send });
    const first = handler(fixtureRequest());
    await expect(handler(fixtureRequest())).resolves.toEqual({ status: 200, body: { duplicate: true } });
    release();
    await expect(first).resolves.toEqual({ status: 202, body: { sent: true } });
    expect(send).toHaveBeenCalledTimes(1);
  });

  it('sends a retry whose first attempt failed', async () => {
    const send = jest.fn()
      .mockRejectedValueOnce(new Error('notifications backend: 404'))
      .mockResolvedValue(undefined);
    const { handler, logger } = testHandler({ send });
    await expect(handler(fixtureRequest())).resolves.toEqual({
      status: 503,
      body: { error: { code: 'notifications_unavailable' } },
    });
    expect(logger.warn).toHaveBeenCalledWith(expect.stringContaining('notifications backend: 404'));
    await expect(handler(fixtureRequest())).resolves.toEqual({ status: 202, body: { sent: true } });
    expect(send).toHaveBeenCalledTimes(2);
  });

  it(`remembers the last ${REMEMBERED_DELIVERIES} deliveries`, async () => {
    const { handler, send } = testHandler();
    const delivery = (seq: number) => withBody(e => { e.audit.seq = seq; });
    for (let seq = 1; seq <= REMEMBERED_DELIVERIES; seq++) {
      await handler(delivery(seq));
    }
    // 1 .. 1000 remembered: 1 is a duplicate; 1001 pushes 1 out, so 1 is sent again.
    await expect(handler(delivery(1))).resolves.toEqual({ status: 200, body: { duplicate: true } });
    await expect(handler(delivery(REMEMBERED_DELIVERIES + 1))).resolves.toEqual({ status: 202, body: { sent: true } });
    await expect(handler(delivery(2))).resolves.toEqual({ status: 200, body: { duplicate: true } });
    expect(send).toHaveBeenCalledTimes(REMEMBERED_DELIVERIES + 1);
    const fresh = testHandler({ deliveries: new DeliveryMemory(1) });
    await fresh.handler(delivery(1));
    await fresh.handler(delivery(2));
    await expect(fresh.handler(delivery(1))).resolves.toEqual({ status: 202, body: { sent: true } });
  });
});

describe('without a secret', () => {
  it.each([['unset', undefined], ['empty', ''], ['blank', '  ']])(
    'answers 503 not_configured when it is %s, even to a signed event',
    async (_name, secret) => {
      const { handler, send } = testHandler({ secret });
      const request = fixtureRequest({ 'x-meshgate-signature': sign(secret ?? '', String(fixture.timestamp), fixture.body) });
      await expect(handler(request)).resolves.toEqual({
        status: 503,
        body: { error: { code: 'not_configured' } },
      });
      expect(send).not.toHaveBeenCalled();
    },
  );
});
