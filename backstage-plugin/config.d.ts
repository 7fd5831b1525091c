export interface Config {
  meshgate?: {
    /**
     * Dev app only: the proxy base the access client calls (`<proxyBaseUrl><proxyPath>/v1/access/...`),
     * instead of `discovery.getBaseUrl('proxy')`. Set by MESHGATE_PROXY_BASE in dev/app-config.yaml.
     * @visibility frontend
     */
    proxyBaseUrl?: string;
    /**
     * Dev app only: the path under the proxy base (`/meshgate`).
     * @visibility frontend
     */
    proxyPath?: string;
    /**
     * Dev app only: a Backstage user token to sign in with (MESHGATE_DEV_TOKEN).
     * @visibility frontend
     */
    devToken?: string;
  };
}
