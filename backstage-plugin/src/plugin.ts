import {
  createApiFactory,
  createComponentExtension,
  createPlugin,
  createRoutableExtension,
  discoveryApiRef,
  fetchApiRef,
} from '@backstage/core-plugin-api';
import { MeshgateAccessClient, meshgateAccessApiRef } from './api';
import { rootRouteRef } from './routes';

export const meshgateAccessPlugin = createPlugin({
  id: 'meshgate-access',
  apis: [
    createApiFactory({
      api: meshgateAccessApiRef,
      deps: { discoveryApi: discoveryApiRef, fetchApi: fetchApiRef },
      factory: ({ discoveryApi, fetchApi }) =>
        new MeshgateAccessClient({ discoveryApi, fetchApi }),
    }),
  ],
  routes: {
    root: rootRouteRef,
  },
});

/** The Access requests page: waiting for me, my requests, grants. */
export const AccessRequestsPage = meshgateAccessPlugin.provide(
  createRoutableExtension({
    name: 'AccessRequestsPage',
    component: () =>
      import('./components/AccessRequestsPage').then(m => m.AccessRequestsPage),
    mountPoint: rootRouteRef,
  }),
);

/** The Access card for an entity page (inside an EntityProvider). */
export const EntityAccessCard = meshgateAccessPlugin.provide(
  createComponentExtension({
    name: 'EntityAccessCard',
    component: {
      lazy: () =>
        import('./components/EntityAccessCard').then(m => m.EntityAccessCard),
    },
  }),
);
