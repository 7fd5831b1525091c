/**
 * The client against the control plane's OpenAPI document (docs/openapi/access.yaml): every
 * call it makes is an operation there, with the query parameters it sends, and every field the
 * plugin reads of a request or a grant is a property of the document's schema. Fails when the
 * API and the plugin drift apart.
 */
/* eslint-disable no-restricted-imports -- a Jest test under Node reading the repository's OpenAPI file */
import { readFileSync } from 'fs';
import { resolve } from 'path';
/* eslint-enable no-restricted-imports */
import { parse } from 'yaml';
import { MeshgateAccessClient } from './MeshgateAccessClient';
import { MeshgateAccessApi } from './types';
import { aGrant, aRequest } from '../testing/fakeAccessApi';

const document = parse(
  readFileSync(resolve(__dirname, '../../../docs/openapi/access.yaml'), 'utf8'),
);

function recordingClient() {
  const calls: Array<{ method: string; url: URL }> = [];
  const client = new MeshgateAccessClient({
    discoveryApi: { getBaseUrl: async () => 'http://127.0.0.1:7007/api/proxy' },
    fetchApi: {
      fetch: async (input: any, init?: RequestInit) => {
        calls.push({ method: String(init?.method).toLowerCase(), url: new URL(String(input)) });
        return new Response(JSON.stringify({ requests: [], grants: [] }), { status: 200 });
      },
    },
  });
  return { client, calls };
}

const uses: Array<[string, (api: MeshgateAccessApi) => Promise<unknown>]> = [
  ['getPolicy', api => api.getPolicy()],
  ['listRequests mine', api => api.listRequests('mine')],
  ['listRequests pending_for_me', api => api.listRequests('pending_for_me')],
  ['listRequests all', api => api.listRequests('all')],
  ['getRequest', api => api.getRequest('req-1')],
  ['createRequest', api => api.createRequest({ target: { group: 'group:default/x' }, duration: '15m' })],
  ['approve', api => api.approve('req-1', 'ok')],
  ['deny', api => api.deny('req-1', 'no')],
  ['cancel', api => api.cancel('req-1')],
  ['listGrants mine', api => api.listGrants('mine')],
  ['listGrants visible', api => api.listGrants('visible')],
  ['revokeGrant', api => api.revokeGrant('grant-1', 'done')],
];

describe('the client against docs/openapi/access.yaml', () => {
  it.each(uses)('%s is an operation of the document', async (_, use) => {
    const { client, calls } = recordingClient();
    await use(client);
    expect(calls).toHaveLength(1);
    const { method, url } = calls[0];
    const path = url.pathname
      .replace('/api/proxy/meshgate', '')
      .replace(/\/(req-1|grant-1)(\/|$)/, '/{id}$2');
    const operation = document.paths[path]?.[method];
    expect(operation).toBeDefined();
    const known = (operation.parameters ?? []).map((p: { name: string }) => p.name);
    for (const name of url.searchParams.keys()) {
      expect(known).toContain(name);
    }
  });

  it.each([
    ['Request', Object.keys(aRequest({ decided_at_ms: null, reviews: [], grant: null, auto_approved: null }))],
    ['Grant', Object.keys(aGrant({ revoked_at_ms: null, revoked_by: null }))],
  ])('every field the plugin reads of a %s is in the schema', (schema, fields) => {
    const properties = Object.keys(document.components.schemas[schema].properties);
    expect(properties).toEqual(expect.arrayContaining(fields));
  });

  it('the request states the plugin names are the schema\'s', () => {
    expect(document.components.schemas.Request.properties.state.enum).toEqual(
      ['pending', 'approved', 'denied', 'cancelled', 'expired'],
    );
  });
});
