/** Small helpers shared by tests (not tests themselves). */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
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

/** A child process that speaks one line at a time on stdout (the multi-process tests' workers). */
export interface LineWorker {
  child: ChildProcessWithoutNullStreams;
  /** The next stdout line; rejects with the exit code and stderr if the worker ended first. */
  nextLine(): Promise<string>;
  exited: Promise<number | null>;
  stderr(): string;
}

/** Spawns `PROJECT_NODE script ...args` as a LineWorker. */
export function spawnLineWorker(script: string, args: string[]): LineWorker {
  const child = spawn(PROJECT_NODE, [script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += String(chunk)));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    async nextLine() {
      const next = await lines.next();
      if (next.done) throw new Error(`worker ended early (exit ${await exited}): ${stderr}`);
      return next.value;
    },
    exited,
    stderr: () => stderr,
  };
}
