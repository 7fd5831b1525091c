import { discoveryApiRef, fetchApiRef } from '@backstage/core-plugin-api';
import { meshgateAccessPlugin } from './plugin';
import { MeshgateAccessClient, meshgateAccessApiRef } from './api';

describe('meshgateAccessPlugin', () => {
  it('provides the access API through the proxy with fetchApi', async () => {
    const factory = [...meshgateAccessPlugin.getApis()].find(
      f => f.api.id === meshgateAccessApiRef.id,
    );
    expect(factory?.deps).toEqual({ discoveryApi: discoveryApiRef, fetchApi: fetchApiRef });
    const fetch = jest.fn(async () => new Response('{"requestable": []}', { status: 200 }));
    const api = factory!.factory({
      discoveryApi: { getBaseUrl: async (id: string) => `http://127.0.0.1:7007/api/${id}` },
      fetchApi: { fetch },
    }) as MeshgateAccessClient;
    expect(api).toBeInstanceOf(MeshgateAccessClient);
    await api.getPolicy();
    expect(fetch).toHaveBeenCalledWith(
      'http://127.0.0.1:7007/api/proxy/meshgate/v1/access/policy',
      expect.objectContaining({ method: 'GET' }),
    );
  });
});
