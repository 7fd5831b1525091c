import express, { type ErrorRequestHandler, Router } from 'express';
import { type EventHandler, MAX_BODY_BYTES } from './handler';

/**
 * `POST /events`: the raw body bytes (what the signature covers, never re-serialized JSON) go
 * to the handler, whose reply is sent as it is. Nothing else is decided here.
 */
export function createRouter(options: { handler: EventHandler }): Router {
  const router = Router();
  router.post(
    '/events',
    express.raw({ type: 'application/json', limit: MAX_BODY_BYTES, inflate: false }),
    (req, res, next) => {
      if (!Buffer.isBuffer(req.body)) {
        // No JSON content type: express.raw left the body unread.
        res.status(415).json({ error: { code: 'unsupported_media_type' } });
        return;
      }
      options
        .handler({ headers: req.headers, body: req.body })
        .then(reply => res.status(reply.status).json(reply.body))
        .catch(next); // Express 4 does not catch a rejected promise by itself.
    },
  );
  const bodyErrors: ErrorRequestHandler = (error, _req, res, next) => {
    if (error?.type === 'entity.too.large') {
      res.status(413).json({ error: { code: 'too_large' } });
    } else if (error?.type === 'encoding.unsupported') {
      res.status(415).json({ error: { code: 'unsupported_media_type' } });
    } else {
      next(error);
    }
  };
  router.use(bodyErrors);
  return router;
}
