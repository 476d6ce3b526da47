/**
 * Store.resetCounter on both backends (an admin's "reset this member's day"): the counter reads 0
 * afterwards, counts up again from 0, and other counters are untouched.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../../src/log.ts';
import { openStore } from '../../../../src/engine/open-store.ts';
import { deleteRedisKeys, REDIS_URL } from '../../../support/index.ts';

const log = createLogger({ level: 'silent' });
const RUN_PREFIX = `test-store-reset-${randomUUID()}:`;
const dir = mkdtempSync(join(tmpdir(), 'store-reset-'));
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await deleteRedisKeys(RUN_PREFIX);
});

describe.each([
  { name: 'sqlite', url: () => `sqlite://${join(dir, 'reset.sqlite')}` },
  { name: 'redis', url: () => REDIS_URL },
])('resetCounter on $name', ({ url }) => {
  it('zeroes one counter, leaves the others, and lets it count again', async () => {
    const store = await openStore(url(), { log, keyPrefix: RUN_PREFIX });
    try {
      const expires = Date.now() + 60_000;
      await store.add('quota:a', 7, expires);
      await store.add('quota:b', 3, expires);
      await store.resetCounter('quota:a');
      await store.resetCounter('quota:missing');
      expect(await store.read('quota:a')).toBe(0);
      expect(await store.read('quota:b')).toBe(3);
      expect(await store.addIfWithin('quota:a', 2, 2, expires)).toBe(2);
    } finally {
      await store.close();
    }
  });
});
