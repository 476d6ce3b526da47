/**
 * Short-lived, unguessable URLs for local reference images, for providers that only take URLs
 * (ProviderTraits.inlineReferences undefined) when the image is not at a public URL already (a
 * private chat file, a local file). Needs PUBLIC_URL, and the composition root serving
 * `REFERENCE_PATH_PREFIX` with `lookup` on the bot's HTTP server (src/app.ts). The token is 32
 * random bytes (base64url); the link works until it expires (default 1 h), then looks unknown.
 */
import { randomBytes } from 'node:crypto';

export const REFERENCE_PATH_PREFIX = '/refs/';
export const DEFAULT_REFERENCE_TTL_MS = 60 * 60 * 1000;
const TOKEN_BYTES = 32;

/** A published file: where it is on disk and its content type. */
export interface PublishedFile {
  path: string;
  mime: string;
}

interface Published extends PublishedFile {
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
    this.lookup = this.lookup.bind(this);
  }

  /** Makes `path` downloadable until the TTL ends; returns its public URL. */
  publish(path: string, mime: string): string {
    this.#sweep();
    const token = randomBytes(TOKEN_BYTES).toString('base64url');
    this.#published.set(token, { path, mime, expiresAt: this.#now() + this.#ttlMs });
    return `${this.#base}${REFERENCE_PATH_PREFIX}${token}`;
  }

  /** The file behind a token (the path after REFERENCE_PATH_PREFIX); undefined when unknown or expired. Bound. */
  lookup(token: string): PublishedFile | undefined {
    const entry = this.#published.get(token);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.#now()) {
      this.#published.delete(token);
      return undefined;
    }
    return { path: entry.path, mime: entry.mime };
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
}
