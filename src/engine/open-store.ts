/**
 * Chooses the store from STORE_URL: `sqlite://…` (the default, a file under ./data) or
 * `redis://…` / `rediss://…` (several processes sharing one store).
 */
import type { Logger } from '../log.ts';
import type { Store } from './store.ts';
import { RedisStore } from './store-redis.ts';
import { SqliteStore, sqlitePathFromUrl } from './store-sqlite.ts';

export const DEFAULT_KEY_PREFIX = 'imagine:';

export interface OpenStoreOptions {
  log: Logger;
  /** Prefix of every key; lets deployments and test runs share one Redis. */
  keyPrefix?: string;
}

export async function openStore(storeUrl: string, opts: OpenStoreOptions): Promise<Store> {
  const keyPrefix = opts.keyPrefix ?? DEFAULT_KEY_PREFIX;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(storeUrl)?.[1]?.toLowerCase();
  switch (scheme) {
    case 'sqlite': {
      const path = sqlitePathFromUrl(storeUrl);
      opts.log.info({ store: 'sqlite', path }, 'store opened');
      return new SqliteStore(path, { log: opts.log, keyPrefix });
    }
    case 'redis':
    case 'rediss': {
      const store = await RedisStore.connect(storeUrl, { log: opts.log, keyPrefix });
      // The URL may carry a password: log only the scheme and prefix.
      opts.log.info({ store: scheme, keyPrefix }, 'store opened');
      return store;
    }
    default:
      throw new Error(`STORE_URL must start with sqlite://, redis:// or rediss:// (got ${scheme ? `${scheme}://` : 'no scheme'})`);
  }
}
