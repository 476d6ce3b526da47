/**
 * Cancel (docs/architecture.md "Cancel"): a job the provider has not accepted yet is never sent
 * and fully refunded; one it accepted is paid for (units stay charged) and its images are
 * neither fetched nor posted; the request is written to the store, so a cancel reaching another
 * process than the one running the job works too (two engines on Redis).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../src/engine/engine.ts';
import type { JobRecord } from '../../src/engine/job.ts';
import { jobCancelKey } from '../../src/engine/jobs/records.ts';
import { sleep } from '../../src/util/sleep.ts';
import { startFakeRunblob, type FakeRunblob } from '../fakes/runblob.ts';
import { discordUser, FAST_TIMING, startEngineHarness, type EngineHarness } from './engine-harness.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** One RunBlob request per minute: the first job's create takes it, later jobs wait for the budget. */
const ONE_REQUEST = { ...FAST_TIMING, deadlineMs: 20_000, rateLimits: { runblob: { requests: 1, windowMs: 60_000, reserve: 0, windowPaddingMs: 0 } } };

async function setup(o: { timing?: typeof FAST_TIMING; redis?: boolean } = {}): Promise<{ fake: FakeRunblob; h: EngineHarness }> {
  const fake = await startFakeRunblob({ durationMs: 80 });
  cleanups.push(() => fake.close());
  const h = await startEngineHarness(
    { RUNBLOB_API_KEY: fake.apiKey, RUNBLOB_API_URL: fake.url },
    {
      ...(o.timing ? { timing: o.timing } : {}),
      ...(o.redis && { storeUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', keyPrefix: `cancel-test-${Date.now()}-${process.pid}:` }),
    },
  );
  cleanups.push(() => h.close());
  return { fake, h };
}

const request = (prompt: string, userId: string, count = 1) => ({
  prompt,
  model: 'runblob-pro',
  ratio: '1:1' as const,
  resolution: '1K' as const,
  count,
  requester: discordUser(userId),
});

async function until<T>(what: string, f: () => Promise<T | undefined> | T | undefined, timeoutMs = 5_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const createsFor = (fake: FakeRunblob, prompt: string) => [...fake.tasks.values()].filter((t) => t.prompt === prompt).length;

describe('cancel', () => {
  it('before the provider accepted the job: nothing is sent, every unit is refunded, nothing is posted', async () => {
    const { fake, h } = await setup({ timing: ONE_REQUEST });
    const first = await h.engine.submit(request('takes the only request', 'u-first'));
    await until('the first create', () => fake.tasks.size === 1);
    const job = await h.engine.submit(request('waits for the budget', 'u-cancel', 2));
    expect((await h.engine.quota(discordUser('u-cancel'))).used).toBe(2);

    await h.engine.cancel(job.id, discordUser('u-cancel'));
    const done = await h.engine.waitFor(job.id);

    expect(done.state).toBe('canceled');
    expect(done.error?.code).toBe('CANCELED');
    expect(done.tasks.map((t) => [t.taskId, t.error?.code])).toEqual([
      [undefined, 'CANCELED'],
      [undefined, 'CANCELED'],
    ]);
    expect(createsFor(fake, 'waits for the budget')).toBe(0);
    expect(fake.counts.create).toBe(1);
    expect(done.quota.refunded).toBe(2);
    expect((await h.engine.quota(discordUser('u-cancel'))).used).toBe(0);
    // The deliverer is told the job is canceled (it shows that instead of images).
    const delivered = h.deliverer.delivered.filter((j) => j.id === job.id);
    expect(delivered.map((j) => [j.state, j.tasks.some((t) => t.image)])).toEqual([['canceled', false]]);
    expect(first.state).toBe('queued');
  });

  it('after the provider accepted it: the units stay charged, the images are not fetched or posted', async () => {
    const { fake, h } = await setup({ timing: { ...FAST_TIMING, deadlineMs: 20_000 } });
    const job = await h.engine.submit(request('accepted then canceled [slow:3000]', 'u-paid', 2));
    await until('both tasks accepted', async () => (await h.engine.getJob(job.id))?.tasks.every((t) => t.taskId !== undefined));

    await h.engine.cancel(job.id, discordUser('u-paid'));
    const done = await h.engine.waitFor(job.id);

    expect(done.state).toBe('canceled');
    expect(done.tasks.every((t) => t.taskId !== undefined && t.error?.code === 'CANCELED' && !t.image)).toBe(true);
    expect(fake.counts.create).toBe(2);
    expect(fake.counts.download ?? 0).toBe(0);
    expect(done.quota.refunded).toBe(0);
    expect((await h.engine.quota(discordUser('u-paid'))).used).toBe(2);
    const delivered = h.deliverer.delivered.filter((j) => j.id === job.id);
    expect(delivered.map((j) => j.state)).toEqual(['canceled']);
  });

  it('after the images were made but before they were posted (across a restart): nothing is posted, the images are charged', async () => {
    const { h } = await setup();
    // Every delivery attempt of this process fails: the job waits, finished, for the next start.
    h.deliverer.failFirst = 3;
    const job = await h.engine.submit(request('made, then canceled before posting', 'u-late'));
    await until('delivery given up', async () => ((await h.engine.getJob(job.id))?.deliveryAttempts ?? 0) >= 3);
    expect((await h.engine.getJob(job.id))?.state).toBe('succeeded');
    await h.engine.cancel(job.id, discordUser('u-late'));

    const next = await h.restart({ processId: 'after-restart' });
    next.setDeliverer('discord', h.deliverer);
    await next.resume();
    const delivered = await until('the delivery after the restart', () => h.deliverer.delivered.find((j) => j.id === job.id));
    expect(delivered.state).toBe('canceled');
    expect(delivered.quota.refunded).toBe(0);
    expect((await next.quota(discordUser('u-late'))).used).toBe(1);
  });

  it('a fresh job reads the cancel request before each create and before posting, and no more', async () => {
    const { h } = await setup();
    const reads: string[] = [];
    const get = h.store.kv.get.bind(h.store.kv);
    h.store.kv.get = ((key: string) => {
      if (key.startsWith('cancel:job:')) reads.push(key);
      return get(key);
    }) as typeof h.store.kv.get;
    const job = await h.engine.submit(request('read twice, posted once', 'u-reads', 2));
    await h.engine.waitFor(job.id);
    await until('delivered', async () => (await h.engine.getJob(job.id))?.deliveredAt);
    // Two creates, one delivery (the lease renewals read all runs' requests at once, with getMany).
    expect(reads).toEqual([jobCancelKey(job.id), jobCancelKey(job.id), jobCancelKey(job.id)]);
  });

  it('refuses a cancel once the result is posted', async () => {
    const { h } = await setup();
    const job = await h.engine.submit(request('already posted', 'u-done'));
    await h.engine.waitFor(job.id);
    await until('delivered', async () => (await h.engine.getJob(job.id))?.deliveredAt);
    await expect(h.engine.cancel(job.id, discordUser('u-done'))).rejects.toMatchObject({ code: 'CANCEL_TOO_LATE' });
  });

  it('on Redis: a cancel reaching another process stops the job where it runs, before anything is sent', async () => {
    const { fake, h } = await setup({ timing: ONE_REQUEST, redis: true });
    await h.engine.submit(request('takes the only request', 'r-first'));
    await until('the first create', () => fake.tasks.size === 1);
    const job = await h.engine.submit(request('canceled from the other process', 'r-cancel'));
    const other: Engine = await h.restart({ processId: 'other-process' });
    await other.cancel(job.id, discordUser('r-cancel'));
    // The process running it sees the request at its next lease renewal (leaseTtlMs / 3).
    const done: JobRecord = await h.engine.waitFor(job.id);
    expect(done.state).toBe('canceled');
    expect(createsFor(fake, 'canceled from the other process')).toBe(0);
    expect((await other.quota(discordUser('r-cancel'))).used).toBe(0);
    expect(h.deliverer.delivered.filter((j) => j.id === job.id).map((j) => j.state)).toEqual(['canceled']);
  });
});
