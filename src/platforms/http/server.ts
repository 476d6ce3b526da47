/**
 * The bot's one HTTP server: health, readiness, metrics, provider callbacks, short-lived
 * reference-image URLs and Slack's events endpoint all mount here, so an operator opens one port
 * (PORT). The composition root (src/app.ts) mounts the engine's routes with mountCallbacks and
 * mountFiles, and /metrics and /readyz with mountMetrics and mountReadiness.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../../log.ts';
import { MiB } from '../../util/units.ts';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, params: { rest: string }) => void | Promise<void>;

interface Route {
  method: string | '*';
  prefix: string;
  handler: RouteHandler;
}

export interface HttpServer {
  /**
   * Routes requests whose path starts with `prefix` (longest prefix wins) to `handler`;
   * `params.rest` is the remainder of the path after the prefix.
   */
  mount(method: string | '*', prefix: string, handler: RouteHandler): void;
  /** The port actually bound (useful with PORT=0 in tests). */
  readonly port: number;
  /** http://127.0.0.1:port */
  readonly localUrl: string;
  readonly server: Server;
  /**
   * Shutting down: /healthz (and /readyz) answer 503 so a load balancer stops sending new
   * requests here, while routes keep answering until close().
   */
  drain(): void;
  /** True once drain() was called. */
  readonly draining: boolean;
  close(): Promise<void>;
}

export async function startHttpServer(port: number, log: Logger, host = '0.0.0.0'): Promise<HttpServer> {
  const routes: Route[] = [];
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const route = routes
      .filter((r) => (r.method === '*' || r.method === req.method) && path.startsWith(r.prefix))
      .sort((a, b) => b.prefix.length - a.prefix.length)[0];
    if (!route) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    const failed = (err: unknown) => {
      // The route, not the path: paths may carry tokens (callbacks, reference links).
      log.error({ err, route: route.prefix, method: req.method }, 'http handler failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"error":"internal"}');
    };
    // A synchronous throw would escape the server's 'request' event: an uncaught exception.
    try {
      Promise.resolve(route.handler(req, res, { rest: path.slice(route.prefix.length) })).catch(failed);
    } catch (err) {
      failed(err);
    }
  });
  // Slack and Discord retry slow requests; keep sockets short-lived but reusable.
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  let draining = false;
  const http: HttpServer = {
    mount(method, prefix, handler) {
      routes.push({ method, prefix, handler });
    },
    port: bound,
    localUrl: `http://127.0.0.1:${bound}`,
    server,
    drain() {
      draining = true;
    },
    get draining() {
      return draining;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  http.mount('GET', '/healthz', (_req, res) => {
    if (draining) res.writeHead(503, { 'content-type': 'application/json' }).end('{"ok":false,"draining":true}');
    else res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  return http;
}

/** Reads a request body with a size cap (bytes); rejects with a 413-worthy error past it. */
export async function readBody(req: IncomingMessage, maxBytes = MiB): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req) {
    total += (chunk as Buffer).length;
    if (total > maxBytes) throw Object.assign(new Error('body too large'), { status: 413 });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** A file the engine published for a short while (a reference image for a URL-only provider). */
export type FileLookup = (token: string) => { path: string; mime: string } | undefined;

/**
 * Routes GET/HEAD `<prefix><token>` to the file `lookup` gives, streamed from disk (never held in
 * memory); an unknown or expired token, or a file gone meanwhile, answers 404.
 */
export function mountFiles(http: HttpServer, prefix: string, lookup: FileLookup): void {
  const handler: RouteHandler = async (req, res, { rest }) => {
    const entry = lookup(rest);
    let size: number | undefined;
    if (entry) size = await stat(entry.path).then((s) => s.size, () => undefined);
    if (!entry || size === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, {
      'content-type': entry.mime,
      'content-length': String(size),
      'cache-control': 'private, no-store',
      'x-content-type-options': 'nosniff',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    await pipeline(createReadStream(entry.path), res).catch(() => {
      res.destroy(); // client went away or the file vanished mid-stream
    });
  };
  http.mount('GET', prefix, handler);
  http.mount('HEAD', prefix, handler);
}

/**
 * What a provider callback route calls: undefined for a callback it does not know (answered
 * 404), else the work to do once the 2xx has been sent.
 */
export type CallbackReceiver = (provider: string, token: string) => Promise<(() => Promise<void>) | undefined>;

/** Callback bodies are a few hundred bytes; anything bigger is not a provider's. */
const MAX_CALLBACK_BODY_BYTES = 64 * 1024;

/**
 * Routes POST `<prefix><provider>/<token>` (provider completion callbacks, e.g. RunBlob's
 * `callback_url`, docs/providers.md) to `receive`. The body is drained (capped) so the connection
 * stays reusable, but never read: a callback is only a hint. The 200 goes out before any further
 * work (RunBlob wants a 2xx within 5 s).
 */
export function mountCallbacks(http: HttpServer, prefix: string, receive: CallbackReceiver, log: Logger): void {
  http.mount('POST', prefix, async (req, res, { rest }) => {
    const path = rest.replace(/\/+$/, '');
    const slash = path.indexOf('/');
    const provider = slash < 0 ? path : path.slice(0, slash);
    const token = slash < 0 ? '' : path.slice(slash + 1);
    const body = await readBody(req, MAX_CALLBACK_BODY_BYTES).catch(() => undefined);
    const after = await receive(provider, token);
    if (!after) {
      // Never log the token: a valid one is a credential, and a forged one is noise.
      log.warn({ provider, bytes: body?.length }, 'provider callback with an unknown token');
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    await after();
  });
}

/** What GET /metrics serves: the app's registry (src/metrics.ts). */
export interface MetricsSource {
  readonly contentType: string;
  text(): Promise<string>;
}

/** Digests compared, so the comparison takes the same time whatever the lengths. */
const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * GET /metrics: the Prometheus text exposition. With `token` (METRICS_TOKEN), only for a request
 * carrying `Authorization: Bearer <token>` (RFC 6750), compared in constant time; 401 otherwise,
 * since PORT may be public.
 */
export function mountMetrics(http: HttpServer, metrics: MetricsSource, token: string | undefined): void {
  const expected = token === undefined ? undefined : digest(token);
  http.mount('GET', '/metrics', async (req, res, { rest }) => {
    if (rest !== '') {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    if (expected) {
      const given = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '')?.[1] ?? '';
      if (!timingSafeEqual(digest(given), expected)) {
        res
          .writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer realm="metrics"' })
          .end('{"error":"unauthorized"}');
        return;
      }
    }
    const body = await metrics.text();
    res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' }).end(body);
  });
}

/** One part of readiness: true when ready. A throw or rejection counts as not ready. */
export type ReadinessCheck = () => boolean | Promise<boolean>;

/**
 * GET /readyz: 200 `{ready:true,checks}` only while every check passes and the server is not
 * draining; 503 `{ready:false,checks,notReady}` naming the parts that are not. The checks run at
 * each request, together; each must bound its own time (the store's ping has a timeout).
 * `checks` may gain entries after mounting (a platform while it starts). /healthz stays the
 * liveness check.
 */
export function mountReadiness(http: HttpServer, checks: ReadonlyMap<string, ReadinessCheck>): void {
  http.mount('GET', '/readyz', async (_req, res) => {
    const entries = [...checks];
    const results = await Promise.all(
      entries.map(async ([name, check]) => [name, await Promise.resolve().then(check).then((ok) => ok === true, () => false)] as const),
    );
    const state: Record<string, boolean> = Object.fromEntries(results);
    const notReady = results.filter(([, ok]) => !ok).map(([name]) => name);
    if (http.draining) notReady.push('draining');
    const ready = notReady.length === 0;
    res
      .writeHead(ready ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      .end(JSON.stringify(ready ? { ready, checks: state } : { ready, checks: state, notReady }));
  });
}
