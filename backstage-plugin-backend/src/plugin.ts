import {
  coreServices,
  createBackendPlugin,
} from '@backstage/backend-plugin-api';
import { notificationService } from '@backstage/plugin-notifications-node';
import { createEventHandler } from './handler';
import { createRouter } from './router';

export const SECRET_CONFIG_KEY = 'meshgate.notifications.secret';

/**
 * Receives meshgate's signed access events on `POST /api/meshgate-access/events` and sends
 * each as a Backstage notification: owners of a pending request, the requester of the outcome.
 */
export const meshgateAccessPlugin = createBackendPlugin({
  pluginId: 'meshgate-access',
  register(env) {
    env.registerInit({
      deps: {
        config: coreServices.rootConfig,
        logger: coreServices.logger,
        httpRouter: coreServices.httpRouter,
        notifications: notificationService,
      },
      async init({ config, logger, httpRouter, notifications }) {
        const secret = config.getOptionalString(SECRET_CONFIG_KEY);
        if (!secret?.trim()) {
          logger.warn(
            `${SECRET_CONFIG_KEY} is not set: POST /api/meshgate-access/events answers 503 not_configured and no meshgate access notification is sent`,
          );
        }
        httpRouter.use(
          createRouter({
            handler: createEventHandler({ secret, notifications, logger }),
          }),
        );
        // The caller is the control plane, not a Backstage principal: the HMAC signature
        // authenticates it instead.
        httpRouter.addAuthPolicy({ path: '/events', allow: 'unauthenticated' });
      },
    });
  },
});
