/**
 * Serves local reference images at short-lived, unguessable URLs on the bot's HTTP server, for
 * providers that only take URLs (Runbase) when the image is not at a public URL already (a
 * private chat file, a local file). Requires PUBLIC_URL. The token is 32 random bytes
 * (base64url); the link works until it expires (default 1 h), then answers 404 like any unknown
 * token. Files are streamed from disk, never held in memory.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { HttpServer } from '../platforms/http/server.ts';

export const REFERENCE_PATH_PREFIX = '/refs/';
export const DEFAULT_REFERENCE_TTL_MS = 60 * 60 * 1000;
const TOKEN_BYTES = 32;

interface Published {
  path: string;
  mime: string;
  expiresAt: number;
}

export interface ReferenceHostOptions {
  /** PUBLIC_URL: the bot's public base URL. */
  publicUrl: string;
  /** How long a published link works. Default 1 h. */
  ttlMs?: number;
  now?: () => number;
}

export class ReferenceHost {
  readonly #base: string;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #published = new Map<string, Published>();

  constructor(opts: ReferenceHostOptions) {
    this.#base = opts.publicUrl.replace(/\/+$/, '');
    this.#ttlMs = opts.ttlMs ?? DEFAULT_REFERENCE_TTL_MS;
    this.#now = opts.now ?? Date.now;
  }

  /** Routes GET/HEAD /refs/<token> on the bot's HTTP server. */
  mount(http: HttpServer): void {
    const handler = (req: IncomingMessage, res: ServerResponse, params: { rest: string }) => this.#serve(req, res, params.rest);
    http.mount('GET', REFERENCE_PATH_PREFIX, handler);
    http.mount('HEAD', REFERENCE_PATH_PREFIX, handler);
  }

  /** Makes `path` downloadable until the TTL ends; returns its public URL. */
  publish(path: string, mime: string): string {
    this.#sweep();
    const token = randomBytes(TOKEN_BYTES).toString('base64url');
    this.#published.set(token, { path, mime, expiresAt: this.#now() + this.#ttlMs });
    return `${this.#base}${REFERENCE_PATH_PREFIX}${token}`;
  }

  /** Links currently live (for metrics and tests). */
  get size(): number {
    this.#sweep();
    return this.#published.size;
  }

  #sweep(): void {
    const now = this.#now();
    for (const [token, entry] of this.#published) if (entry.expiresAt <= now) this.#published.delete(token);
  }

  async #serve(req: IncomingMessage, res: ServerResponse, token: string): Promise<void> {
    const entry = this.#published.get(token);
    if (!entry || entry.expiresAt <= this.#now()) {
      if (entry) this.#published.delete(token);
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    let size: number;
    try {
      size = (await stat(entry.path)).size;
    } catch {
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
  }
}
