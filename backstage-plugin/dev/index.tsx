import { createDevApp } from '@backstage/dev-utils';
import {
  configApiRef,
  createApiFactory,
  discoveryApiRef,
  fetchApiRef,
  identityApiRef,
} from '@backstage/core-plugin-api';
import { EntityProvider } from '@backstage/plugin-catalog-react';
import { Entity } from '@backstage/catalog-model';
import {
  AccessRequestsPage,
  EntityAccessCard,
  MeshgateAccessClient,
  meshgateAccessApiRef,
  meshgateAccessPlugin,
} from '../src';
import { DevTokenAuth, devTokenAuthApiRef } from './devTokenAuth';

/** The demo catalog's DAG entity (test-harness / control-plane fixtures): owned by data-eng. */
const etlDaily: Entity = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: {
    name: 'etl-daily',
    namespace: 'default',
    annotations: { 'meshgate.io/airflow-dag': 'etl_daily' },
  },
  spec: { type: 'pipeline', lifecycle: 'production', owner: 'group:default/data-eng' },
  relations: [{ type: 'ownedBy', targetRef: 'group:default/data-eng' }],
};

createDevApp()
  .registerPlugin(meshgateAccessPlugin)
  .registerApi(
    createApiFactory({
      api: devTokenAuthApiRef,
      deps: { configApi: configApiRef },
      factory: ({ configApi }) =>
        new DevTokenAuth(configApi.getOptionalString('meshgate.devToken')),
    }),
  )
  .registerApi(
    createApiFactory({
      api: meshgateAccessApiRef,
      deps: {
        configApi: configApiRef,
        discoveryApi: discoveryApiRef,
        fetchApi: fetchApiRef,
        identityApi: identityApiRef,
      },
      factory: ({ configApi, discoveryApi, fetchApi, identityApi }) => {
        const proxyBase = configApi.getOptionalString('meshgate.proxyBaseUrl');
        return new MeshgateAccessClient({
          discoveryApi: proxyBase
            ? { getBaseUrl: async () => proxyBase }
            : discoveryApi,
          // fetchApi adds the token only for backend.baseUrl; the dev proxy base may be elsewhere.
          fetchApi: {
            fetch: async (input, init) => {
              const { token } = await identityApi.getCredentials();
              const headers = new Headers(init?.headers);
              if (token) headers.set('Authorization', `Bearer ${token}`);
              return fetchApi.fetch(input, { ...init, headers });
            },
          },
          proxyPath: configApi.getOptionalString('meshgate.proxyPath'),
        });
      },
    }),
  )
  .addSignInProvider({
    id: 'meshgate-dev-token',
    title: 'Token',
    message: 'Sign in with a Backstage user token',
    apiRef: devTokenAuthApiRef,
  })
  .addPage({
    element: (
      <EntityProvider entity={etlDaily}>
        <div style={{ maxWidth: 900, padding: 24 }}>
          <EntityAccessCard />
        </div>
      </EntityProvider>
    ),
    title: 'etl_daily',
    path: '/etl_daily',
  })
  .addPage({
    element: <AccessRequestsPage />,
    title: 'Access requests',
    path: '/access-requests',
  })
  .render();
