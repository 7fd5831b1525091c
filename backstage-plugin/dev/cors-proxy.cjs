// Dev only: what Backstage's proxy does for `/meshgate` (`credentials: forward`), for a dev app
// that runs without a Backstage backend. Listens on 127.0.0.1:$MESHGATE_DEV_PROXY_PORT and
// forwards `/meshgate/<path>` to `$MESHGATE_CONTROL_PLANE_URL/<path>` with the caller's
// Authorization header, adding the CORS headers the dev app (another origin) needs.
// Answers 504 when the control plane does not answer, as Backstage's proxy does.
'use strict';
const http = require('http');

const target = new URL(process.env.MESHGATE_CONTROL_PLANE_URL || 'http://127.0.0.1:18090');
const port = Number(process.env.MESHGATE_DEV_PROXY_PORT || 7008);
const allowedOrigin = process.env.MESHGATE_DEV_APP_ORIGIN || '*';
if (!['127.0.0.1', 'localhost', '[::1]'].includes(target.hostname)) {
  process.stderr.write(`cors-proxy: ${target.href} is not a loopback address; refusing\n`);
  process.exit(2);
}

http
  .createServer((req, res) => {
    res.setHeader('Access-Control-Allow-Origin', allowedOrigin);
    res.setHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type, Accept');
    res.setHeader('Access-Control-Allow-Methods', 'GET, POST');
    if (req.method === 'OPTIONS') {
      res.writeHead(204);
      res.end();
      return;
    }
    if (!req.url.startsWith('/meshgate/') || !['GET', 'POST'].includes(req.method)) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'not_found', message: `no proxy route for ${req.method} ${req.url}` } }));
      return;
    }
    const headers = {};
    for (const name of ['authorization', 'content-type', 'accept', 'content-length']) {
      if (req.headers[name]) headers[name] = req.headers[name];
    }
    const upstream = http.request(
      {
        host: target.hostname,
        port: target.port || 80,
        method: req.method,
        path: req.url.slice('/meshgate'.length),
        headers,
        timeout: 15000,
      },
      answer => {
        res.writeHead(answer.statusCode || 502, {
          'Content-Type': answer.headers['content-type'] || 'application/octet-stream',
        });
        answer.pipe(res);
      },
    );
    const fail = error => {
      if (res.headersSent) return res.destroy();
      res.writeHead(504, { 'Content-Type': 'text/plain' });
      res.end(`Error occurred while trying to proxy: ${target.host}${req.url} (${error.code || error.message})`);
      return undefined;
    };
    upstream.on('timeout', () => upstream.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    upstream.on('error', fail);
    req.pipe(upstream);
  })
  .listen(port, '127.0.0.1', () => {
    process.stderr.write(`cors-proxy: http://127.0.0.1:${port}/meshgate/ -> ${target.href}\n`);
  });
