/**
 * The bot's one HTTP server: health, provider callbacks, short-lived reference-image URLs and
 * Slack's events endpoint all mount here, so an operator opens one port (PORT).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../log.ts';

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
   * Shutting down: /healthz answers 503 so a load balancer stops sending new requests here, while
   * routes keep answering until close().
   */
  drain(): void;
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
    Promise.resolve(route.handler(req, res, { rest: path.slice(route.prefix.length) })).catch((err: unknown) => {
      log.error({ err, path, method: req.method }, 'http handler failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"error":"internal"}');
    });
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
export async function readBody(req: IncomingMessage, maxBytes = 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req) {
    total += (chunk as Buffer).length;
    if (total > maxBytes) throw Object.assign(new Error('body too large'), { status: 413 });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
