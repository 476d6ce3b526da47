/**
 * The two real store backends the governance ledgers are tested on: a SQLite file in a temp dir
 * and Redis (REDIS_URL), each test under its own key prefix; everything is removed afterwards.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach } from 'vitest';
import { openStore } from '../../../../src/engine/open-store.ts';
import type { Store } from '../../../../src/engine/store.ts';
import { createLogger } from '../../../../src/log.ts';
import { deleteRedisKeys, REDIS_URL } from '../../../support/index.ts';

export interface Backend {
  name: string;
  /** A fresh store (its own key prefix); `shared` reopens the same prefix, as a second process would. */
  open(shared?: string): Promise<{ store: Store; prefix: string }>;
}

/** Registers clean-up hooks in the calling test file and returns both backends. */
export function useBackends(label: string): Backend[] {
  const log = createLogger({ level: 'silent' });
  const runPrefix = `test-${label}-${randomUUID()}:`;
  const dir = mkdtempSync(join(tmpdir(), `imagine-${label}-`));
  const opened: Store[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await deleteRedisKeys(runPrefix);
  });
  const make = (name: string, url: string): Backend => ({
    name,
    open: async (shared) => {
      const prefix = shared ?? `${runPrefix}${name}-${randomUUID()}:`;
      const store = await openStore(url, { log, keyPrefix: prefix });
      opened.push(store);
      return { store, prefix };
    },
  });
  return [make('sqlite', `sqlite://${join(dir, 'ledger.sqlite')}`), make('redis', REDIS_URL)];
}
