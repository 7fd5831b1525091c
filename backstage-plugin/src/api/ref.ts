import { createApiRef } from '@backstage/core-plugin-api';
import { MeshgateAccessApi } from './types';

export const meshgateAccessApiRef = createApiRef<MeshgateAccessApi>({
  id: 'plugin.meshgate-access.service',
});
