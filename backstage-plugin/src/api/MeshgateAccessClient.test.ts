import { MeshgateAccessClient, errorFromResponse } from './MeshgateAccessClient';
import { MeshgateAccessError } from './errors';

type Call = { url: string; init?: RequestInit };

function clientWith(
  respond: (call: Call) => Promise<Response>,
  options: { base?: string; timeoutMs?: number } = {},
) {
  const calls: Call[] = [];
  const client = new MeshgateAccessClient({
    discoveryApi: {
      getBaseUrl: async (id: string) =>
        options.base ?? `http://127.0.0.1:7007/api/${id}`,
    },
    fetchApi: {
      fetch: async (input: any, init?: RequestInit) => {
        const call = { url: String(input), init };
        calls.push(call);
        return respond(call);
      },
    },
    timeoutMs: options.timeoutMs,
  });
  return { client, calls };
}

function json(status: number, body: unknown): Promise<Response> {
  return Promise.resolve(
    new Response(JSON.stringify(body), {
      status,
      headers: { 'Content-Type': 'application/json' },
    }),
  );
}

describe('MeshgateAccessClient URLs and bodies', () => {
  const cases: Array<{
    name: string;
    run: (c: MeshgateAccessClient) => Promise<unknown>;
    method: string;
    url: string;
    body?: unknown;
    answer: unknown;
  }> = [
    {
      name: 'policy',
      run: c => c.getPolicy(),
      method: 'GET',
      url: 'http://127.0.0.1:7007/api/proxy/meshgate/v1/access/policy',
      answer: { requestable: [] },
    },
    {
      name: 'my requests',
      run: c => c.listRequests('mine'),
      method: 'GET',
      url: 'http://127.0.0.1:7007/api/proxy/meshgate/v1/access/requests?mine=1',
      answer: { requests: [] },
    },
    {
      name: 'pending for me',
      run: c => c.listRequests('pending_for_me'),
      method: 'GET',
      url: 'http://127.0.0.1:7007/api/proxy/meshgate/v1/access/requests?pending_for_me=1',
      answer: { requests: [] },
    },
    {
      name: 'one request, id escaped',
      run: c => c.getRequest('r/1 x'),
      method: 'GET',
      url: 'http://127.0.0.1:7007/api/proxy/meshgate/v1/access/requests/r%2F1%20x',
      answer: { id: 'r/1 x' },
    },
    {
      name: 'create',
      run: c =>
        c.createRequest({
          target: { resource: { kind: 'airflow.dag', id: 'etl_daily' } },
          duration: '15m',
          reason: 'backfill',
        }),
      method: 'POST',
      url: 'http://127.0.0.1:7007/api/proxy/meshgate/v1/access/requests',
      body: {
        target: { resource: { kind: 'airflow.dag', id: 'etl_daily' } },
        duration: '15m',
        reason: 'backfill',
      },
      answer: { id: 'r1', state: 'pending' },
    },
    {
      name: 'approve with comment',
      run: c => c.approve('r1', 'ok'),
      method: 'POST',
      url: 'http://127.0.0.1:7007/api/proxy/meshgate/v1/access/requests/r1/approve',
      body: { comment: 'ok' },
      answer: { id: 'r1', state: 'approved' },
    },
    {
      name: 'deny without comment',
      run: c => c.deny('r1'),
      method: 'POST',
      url: 'http://127.0.0.1:7007/api/proxy/meshgate/v1/access/requests/r1/deny',
      body: { comment: '' },
      answer: { id: 'r1', state: 'denied' },
    },
    {
      name: 'cancel',
      run: c => c.cancel('r1'),
      method: 'POST',
      url: 'http://127.0.0.1:7007/api/proxy/meshgate/v1/access/requests/r1/cancel',
      body: {},
      answer: { id: 'r1', state: 'cancelled' },
    },
    {
      name: 'my grants',
      run: c => c.listGrants('mine'),
      method: 'GET',
      url: 'http://127.0.0.1:7007/api/proxy/meshgate/v1/access/grants?mine=1',
      answer: { grants: [] },
    },
    {
      name: 'grants I can see',
      run: c => c.listGrants('visible'),
      method: 'GET',
      url: 'http://127.0.0.1:7007/api/proxy/meshgate/v1/access/grants',
      answer: { grants: [] },
    },
    {
      name: 'revoke',
      run: c => c.revokeGrant('g1', 'done'),
      method: 'POST',
      url: 'http://127.0.0.1:7007/api/proxy/meshgate/v1/access/grants/g1/revoke',
      body: { comment: 'done' },
      answer: { id: 'g1' },
    },
  ];

  it.each(cases)('$name', async ({ run, method, url, body, answer }) => {
    const { client, calls } = clientWith(() => json(200, answer));
    await run(client);
    expect(calls).toHaveLength(1);
    expect(calls[0].url).toBe(url);
    expect(calls[0].init?.method).toBe(method);
    const sent = calls[0].init?.body;
    expect(sent === undefined ? undefined : JSON.parse(String(sent))).toEqual(body);
    expect((calls[0].init?.headers as Record<string, string>)['Content-Type']).toBe(
      body === undefined ? undefined : 'application/json',
    );
  });

  it('unwraps lists', async () => {
    const { client } = clientWith(() =>
      json(200, { requests: [{ id: 'r1' }, { id: 'r2' }] }),
    );
    expect((await client.listRequests('mine')).map(r => r.id)).toEqual(['r1', 'r2']);
  });

  it('drops a trailing slash of the proxy base', async () => {
    const { client, calls } = clientWith(() => json(200, { requestable: [] }), {
      base: 'http://127.0.0.1:7007/api/proxy/',
    });
    await client.getPolicy();
    expect(calls[0].url).toBe('http://127.0.0.1:7007/api/proxy/meshgate/v1/access/policy');
  });
});

describe('errorFromResponse', () => {
  const apiError = (code: string, message: string) =>
    JSON.stringify({ error: { code, message } });
  it.each([
    { status: 401, text: apiError('bad_token', 'the token expired'), kind: 'unauthenticated', code: 'bad_token' },
    { status: 401, text: 'Unauthorized', kind: 'unauthenticated', code: undefined },
    { status: 503, text: apiError('store_unavailable', 'the database is down'), kind: 'unavailable', code: 'store_unavailable' },
    { status: 504, text: '', kind: 'unavailable', code: undefined },
    { status: 502, text: '<html>bad gateway</html>', kind: 'unavailable', code: undefined },
    { status: 400, text: apiError('duration_over_maximum', '`2h` is over the maximum 1h'), kind: 'refused', code: 'duration_over_maximum' },
    { status: 409, text: apiError('already_decided', 'the request is already decided'), kind: 'refused', code: 'already_decided' },
    { status: 403, text: apiError('self_review', 'you cannot review your own request'), kind: 'refused', code: 'self_review' },
    { status: 500, text: 'Error occurred while trying to proxy: 127.0.0.1:18090/v1/access/policy', kind: 'unavailable', code: undefined },
    { status: 404, text: 'not found', kind: 'unexpected', code: undefined },
    { status: 500, text: apiError('internal', 'boom'), kind: 'unexpected', code: 'internal' },
  ])('$status $code -> $kind', ({ status, text, kind, code }) => {
    const error = errorFromResponse(status, text);
    expect(error).toBeInstanceOf(MeshgateAccessError);
    expect(error.kind).toBe(kind);
    expect(error.code).toBe(code);
    expect(error.status).toBe(status);
  });

  it('keeps the policy message for refusals', () => {
    const error = errorFromResponse(
      400,
      JSON.stringify({ error: { code: 'reason_required', message: 'a reason is required for airflow-dags' } }),
    );
    expect(error.message).toBe('a reason is required for airflow-dags');
  });
});

describe('MeshgateAccessClient faults', () => {
  it('maps an API refusal to a refused error', async () => {
    const { client } = clientWith(() =>
      json(400, { error: { code: 'duration_over_maximum', message: 'at most 8h' } }),
    );
    await expect(
      client.createRequest({ target: { group: 'group:default/x' }, duration: '9h' }),
    ).rejects.toMatchObject({ kind: 'refused', code: 'duration_over_maximum', message: 'at most 8h' });
  });

  it('gives up after the timeout instead of waiting forever', async () => {
    const { client } = clientWith(
      call =>
        new Promise((_, reject) => {
          call.init?.signal?.addEventListener('abort', () =>
            reject(new DOMException('aborted', 'AbortError')),
          );
        }),
      { timeoutMs: 50 },
    );
    await expect(client.getPolicy()).rejects.toMatchObject({
      kind: 'unavailable',
      message: 'no answer within 0.05 s',
    });
  });

  it('reports a refused connection as unavailable', async () => {
    const { client } = clientWith(() => Promise.reject(new TypeError('Failed to fetch')));
    await expect(client.getPolicy()).rejects.toMatchObject({
      kind: 'unavailable',
      message: 'could not connect: Failed to fetch',
    });
  });

  it('reports a 200 that is not JSON as unexpected', async () => {
    const { client } = clientWith(() => Promise.resolve(new Response('<html>', { status: 200 })));
    await expect(client.getPolicy()).rejects.toMatchObject({ kind: 'unexpected' });
  });
});
