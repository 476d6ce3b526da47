/** Small helpers shared by tests (not tests themselves). */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createClient } from '@redis/client';

/** The Redis the tests use (`.ci/run` starts one when none answers). */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** The project's Node (26, with type stripping) from the `node` dev dependency, for child processes. */
const projectNode = fileURLToPath(new URL('../../node_modules/.bin/node', import.meta.url));
export const PROJECT_NODE = existsSync(projectNode) ? projectNode : process.execPath;

/** Deletes every Redis key starting with `prefix` (a test run's unique prefix). */
export async function deleteRedisKeys(prefix: string, url = REDIS_URL): Promise<void> {
  const client = createClient({ url });
  await client.connect();
  try {
    const keys: string[] = [];
    for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) keys.push(...batch);
    if (keys.length > 0) await client.del(keys);
  } finally {
    await client.close();
  }
}

/** The most events in any window of `windowMs` (sliding), given their times in any order. */
export function maxInWindow(times: number[], windowMs: number): number {
  const t = [...times].sort((a, b) => a - b);
  let max = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while ((t[i] as number) - (t[j] as number) >= windowMs) j++;
    max = Math.max(max, i - j + 1);
  }
  return max;
}
