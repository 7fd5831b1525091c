import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import { MAX_BODY_BYTES } from './handler';
import { createRouter } from './router';
import { fixture, NOW, sign, testHandler } from './__testUtils__/events';

// The router over a real loopback server (Node's fetch; supertest is not in the tree).
describe('POST /api/meshgate-access/events', () => {
  let server: Server;
  let url: string;
  let fake: ReturnType<typeof testHandler>;

  beforeEach(async () => {
    fake = testHandler();
    const app = express();
    app.use('/api/meshgate-access', createRouter({ handler: fake.handler }));
    server = await new Promise<Server>(resolve => {
      const started = app.listen(0, '127.0.0.1', () => resolve(started));
    });
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/meshgate-access/events`;
  });

  afterEach(async () => {
    await new Promise(resolve => server.close(resolve));
  });

  const post = (body: string, headers: Record<string, string> = {}) =>
    fetch(url, {
      method: 'POST',
      body,
      headers: {
        'content-type': 'application/json',
        'x-meshgate-timestamp': String(NOW),
        'x-meshgate-signature': sign(fixture.secret, String(NOW), body),
        'x-meshgate-delivery': '7',
        ...headers,
      },
    });

  const padded = (bytes: number) =>
    `${fixture.body.slice(0, -1)}${' '.repeat(bytes - fixture.body.length)}}`;

  it.each([
    ['the fixed vector, byte for byte', fixture.body, { 'x-meshgate-signature': fixture.signature }, 202, { sent: true }],
    // Re-serializing this JSON would drop the whitespace and break the signature.
    ['a body of exactly 64 KiB', padded(MAX_BODY_BYTES), {}, 202, { sent: true }],
    ['a charset parameter', fixture.body, { 'content-type': 'application/json; charset=utf-8' }, 202, { sent: true }],
    ['a body over 64 KiB', padded(MAX_BODY_BYTES + 1), {}, 413, { error: { code: 'too_large' } }],
    ['a body that is not JSON by its type', fixture.body, { 'content-type': 'text/plain' }, 415, { error: { code: 'unsupported_media_type' } }],
    ['a compressed body', fixture.body, { 'content-encoding': 'gzip' }, 415, { error: { code: 'unsupported_media_type' } }],
    ['a wrong signature', fixture.body, { 'x-meshgate-signature': sign('another-secret', String(NOW), fixture.body) }, 401, { error: { code: 'bad_signature' } }],
    ['an invalid link', fixture.body.replace('"/access-requests"', '"//evil.example"'), {}, 400, { error: { code: 'bad_event', field: 'notification.link' } }],
  ])('%s', async (_name, body, headers, status, reply) => {
    const response = await post(body, headers);
    expect({ status: response.status, body: await response.json() }).toEqual({ status, body: reply });
    expect(fake.send).toHaveBeenCalledTimes(status === 202 ? 1 : 0);
  });

  it('answers a retry as a duplicate', async () => {
    expect((await post(fixture.body)).status).toBe(202);
    const retry = await post(fixture.body);
    expect({ status: retry.status, body: await retry.json() }).toEqual({ status: 200, body: { duplicate: true } });
    expect(fake.send).toHaveBeenCalledTimes(1);
  });
});
