export * from './types';
export * from './errors';
export * from './ref';
export {
  MeshgateAccessClient,
  DEFAULT_PROXY_PATH,
  DEFAULT_TIMEOUT_MS,
  errorFromResponse,
} from './MeshgateAccessClient';
export type { MeshgateAccessClientOptions } from './MeshgateAccessClient';
