export interface Config {
  meshgate?: {
    notifications?: {
      /**
       * The secret the control plane signs access events with (its access.notify.secret_env).
       * Unset or empty: POST /api/meshgate-access/events answers 503 not_configured.
       * @visibility secret
       */
      secret?: string;
    };
  };
}
