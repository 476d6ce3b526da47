/**
 * Redis stopped for 5 s and restarted, under two bot processes with jobs in flight (its own
 * redis-server on a free port, with an append-only file, in a temp dir: never the shared one).
 * Jobs in flight are delivered once and charged once; commands sent during the outage are all
 * answered (accepted or refused, never silence) and those accepted are delivered once too.
 * `npm run test:faults` only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeRunbase } from '../fakes/runbase.ts';
import { tempDir } from '../integration/engine-harness.ts';
import { Bots, expectEachOnce, secs, uniquePrefix } from './bots.ts';

const OUTAGE_MS = 5_000;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A redis-server of this test's own; resolves once it answers. */
async function startRedis(port: number, dir: string): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += String(chunk);
      if (out.includes('Ready to accept connections')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
  });
  return child;
}

async function stopRedis(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

describe('fault: the store goes away', () => {
  it('Redis stopped for 5 s and restarted: jobs in flight delivered once, nothing charged twice, commands during the outage answered', { timeout: 120_000 }, async () => {
    const redisDir = await tempDir('faults-redis-');
    cleanups.push(() => rm(redisDir, { recursive: true, force: true }));
    const port = await freePort();
    let redis = await startRedis(port, redisDir);
    cleanups.push(() => stopRedis(redis));
    const storeUrl = `redis://127.0.0.1:${port}`;

    const fake = await startFakeRunbase({ durationMs: 4_000, rateLimit: false });
    cleanups.push(() => fake.close());
    const workDir = await tempDir('faults-outage-');
    cleanups.push(() => rm(workDir, { recursive: true, force: true }));
    const o = { fakeUrl: fake.url, fakeKey: fake.apiKey, storeUrl, keyPrefix: uniquePrefix('outage'), workDir };
    const bots = new Bots(o);
    cleanups.push(() => bots.stopAll());
    await Promise.all(['p0', 'p1'].map((p) => bots.spawn(p)));
    for (const p of ['p0', 'p1']) bots.submit(p, 5, `outage-${p}`);
    await bots.until(() => bots.of('submitted').length === 10 && fake.runs.size === 10, 20_000, '10 jobs in flight');

    const stoppedAt = Date.now();
    await stopRedis(redis);
    // Commands during the outage, to both processes.
    await new Promise((r) => setTimeout(r, 1_000));
    const duringAt = Date.now();
    for (const p of ['p0', 'p1']) bots.submit(p, 2, `during-${p}`);
    await new Promise((r) => setTimeout(r, OUTAGE_MS - (Date.now() - stoppedAt)));
    redis = await startRedis(port, redisDir);
    const restartedAt = Date.now();

    // Every command answered: 14 submitted or refused.
    await bots.until(() => bots.of('submitted').length + bots.of('refused').length === 14, 30_000, 'answers to the commands sent during the outage');
    const during = [...bots.of('submitted'), ...bots.of('refused')].filter((e) => e.user!.startsWith('during-'));
    const answeredMs = during.map((e) => e.at - duringAt);
    const refused = bots.of('refused');
    const accepted = bots.of('submitted').map((e) => e.jobId!);
    await bots.until(() => bots.of('delivered').length >= accepted.length, 40_000, 'every accepted job delivered');
    const deliveredAfterRestart = bots.of('delivered').map((e) => e.at - restartedAt);
    console.log(
      `[faults] Redis outage ${secs(restartedAt - stoppedAt)} s: ${accepted.length} jobs delivered once (last ${secs(Math.max(...deliveredAfterRestart))} s after the restart); ` +
        `4 commands during it answered in ${secs(Math.min(...answeredMs))}–${secs(Math.max(...answeredMs))} s (${refused.length} refused: ${refused.map((e) => e.code).join(', ') || 'none'})`,
    );
    expect(refused.filter((e) => e.code === 'UNEXPECTED')).toEqual([]);
    await new Promise((r) => setTimeout(r, 500));
    await expectEachOnce(bots, fake, accepted, o);
  });
});
