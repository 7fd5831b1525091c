import type { Router } from 'express';
import plugin from './index';

// @backstage/backend-test-utils would start a real test backend, but it needs better-sqlite3 (a
// native download). The feature's registration is plain data, so its init runs here with fakes.
type Registration = {
  pluginId: string;
  init: { deps: Record<string, unknown>; func: (deps: Record<string, unknown>) => Promise<void> };
};

function registration(): Registration {
  const feature = plugin as unknown as { getRegistrations(): Registration[] };
  const [only] = feature.getRegistrations();
  return only;
}

async function start(secret: string | undefined) {
  const logger = { info: jest.fn(), warn: jest.fn() };
  const httpRouter = { use: jest.fn<void, [Router]>(), addAuthPolicy: jest.fn() };
  await registration().init.func({
    config: { getOptionalString: jest.fn(() => secret) },
    logger,
    httpRouter,
    notifications: { send: jest.fn() },
  });
  return { logger, httpRouter };
}

describe('the meshgate-access backend plugin', () => {
  it('is plugin meshgate-access and depends on the notification service', () => {
    const { pluginId, init } = registration();
    expect(pluginId).toBe('meshgate-access');
    expect(Object.keys(init.deps).sort()).toEqual(['config', 'httpRouter', 'logger', 'notifications']);
    expect(init.deps.notifications).toMatchObject({ id: 'notifications.service' });
  });

  it('mounts the router and lets the unauthenticated control plane reach /events only', async () => {
    const { logger, httpRouter } = await start('s3cret');
    expect(httpRouter.use).toHaveBeenCalledTimes(1);
    expect(httpRouter.addAuthPolicy).toHaveBeenCalledWith({ path: '/events', allow: 'unauthenticated' });
    expect(logger.warn).not.toHaveBeenCalled();
  });

  it.each([['unset', undefined], ['empty', '']])('warns once at startup when the secret is %s', async (_name, secret) => {
    const { logger } = await start(secret);
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(logger.warn).toHaveBeenCalledWith(expect.stringContaining('meshgate.notifications.secret is not set'));
  });
});
