/**
 * One task (jobs/tasks.ts) through the engine: creates that back off, that land after the
 * deadline, that wait for the rate budget; what the provider's traits ask for.
 */
import { describe, expect, it } from 'vitest';
import type { EngineTiming } from '../../../../src/engine/engine.ts';
import type { JobRecord } from '../../../../src/engine/job.ts';
import { ALIVE_KEY_PREFIX, jobKey } from '../../../../src/engine/jobs/records.ts';
import { RecentResults } from '../../../../src/engine/recent-results.ts';
import { RateLimitedError } from '../../../../src/providers/errors.ts';
import type { CreatedTask, RequestOptions, TaskInput } from '../../../../src/providers/types.ts';
import { build, logLines, req, ScriptedClient, store, TIMING, useEngineFixture, user } from '../engine-fixture.ts';

useEngineFixture();

describe('one task: create, watch, download', () => {
  it('a result whose URL names another type is renamed after its content, and its bytes kept in hand follow it', async () => {
    const recentResults = new RecentResults();
    const { engine, client } = build({ recentResults });
    client.script = (taskId, poll) => (poll < 2 ? { taskId, status: 'running', outputUrls: [] } : { taskId, status: 'succeeded', outputUrls: [`https://cdn.test/out/${taskId}.jpg`] });
    const job = await engine.submit(req());
    const done = await engine.waitFor(job.id);
    const image = done.tasks[0]!.image!;
    expect(image.path.endsWith('.png')).toBe(true);
    expect(recentResults.take(image.path)?.subarray(1, 4).toString('latin1')).toBe('PNG');
  });
  it("keeps no bytes in hand for a deliverer that does not take them (Slack's, whose uploads read the files on the results thread), nor for a platform with no deliverer here", async () => {
    const recentResults = new RecentResults();
    const { engine, deliverer } = build({ recentResults });
    const slackJob = await engine.submit(req({ requester: { platform: 'slack', userId: 'U1' } }));
    expect((await engine.waitFor(slackJob.id)).tasks[0]!.image).toBeDefined();
    expect(recentResults.bytes).toEqual({ held: 0, reserved: 0 });
    engine.setDeliverer('discord', Object.assign(deliverer, { takesKeptResults: false }));
    const done = await engine.waitFor((await engine.submit(req())).id);
    expect(done.tasks[0]!.image).toBeDefined();
    expect(recentResults.bytes).toEqual({ held: 0, reserved: 0 });
  });
  it('backs off on creates refused with RATE_LIMITED (nothing charged) until one is accepted', async () => {
    const { engine, client } = build();
    const limited = () => new RateLimitedError({ provider: 'runbase', status: 429, providerCode: 'RATE_LIMITED', message: 'slow down' });
    client.createFailures = [limited(), limited(), limited()];
    const job = await engine.submit(req());
    const done = await engine.waitFor(job.id);
    expect(done.state).toBe('succeeded');
    expect(client.creates).toHaveLength(1);
  });
  it('a create already sent when the deadline passes is recorded and its cost counted, not dropped', async () => {
    class SlowCreate extends ScriptedClient {
      override async createTask(input: TaskInput, opts?: RequestOptions): Promise<CreatedTask> {
        await opts?.gate?.('create', opts.signal);
        // On the wire past the deadline: a real request aborts with its signal.
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(resolve, 250);
          opts?.signal?.addEventListener('abort', () => (clearTimeout(t), reject(opts.signal?.reason)), { once: true });
        });
        return super.createTask(input, { ...opts, gate: async () => {} });
      }
    }
    const client = new SlowCreate();
    const { engine, quotas } = build({ clients: [client], timing: { ...TIMING, deadlineMs: 100 } });
    const job = await engine.submit(req());
    const done = await engine.waitFor(job.id);
    expect(done.tasks[0]).toMatchObject({ status: 'failed', taskId: 'task1', costUsd: 0.05, error: { code: 'DEADLINE_EXCEEDED' } });
    expect((await quotas.view(user)).used).toBe(0);
    expect(await quotas.spentToday()).toBeCloseTo(0.05, 6);
  });
  it('a create still waiting for the rate budget when the process stops is sent by the next start, not failed', async () => {
    const timing: EngineTiming = { ...TIMING, rateLimits: { runbase: { requests: 2, windowMs: 60_000, reserve: 1, windowPaddingMs: 0 } } }; // one request per minute
    const { engine, client } = build({ timing, processId: 'first' });
    const first = await engine.submit(req());
    const queued = await engine.submit(req());
    while (client.creates.length === 0) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 30));
    await engine.close(); // the second create never got a token: nothing was sent for it
    expect(client.creates).toHaveLength(1);
    const stored = (await store.kv.get<JobRecord>(jobKey(queued.id)))!;
    expect(stored.tasks[0]!.submittedAt).toBeUndefined();
    // (The first job is another process's business here: keep this test to the queued one.)
    expect(await store.lease(`lease:job:${first.id}`, 'elsewhere', 60_000)).toBe(true);
    expect(await store.lease(`${ALIVE_KEY_PREFIX}elsewhere`, 'elsewhere', 60_000)).toBe(true); // a live process
    const { engine: next, client: nextClient } = build({ processId: 'second' });
    expect(await next.resume()).toBe(1);
    const done = await next.waitFor(queued.id);
    expect(done.state).toBe('succeeded');
    expect(done.tasks[0]!.error).toBeUndefined();
    expect(nextClient.creates).toHaveLength(1);
  });

  it('a cancel request the store cannot read at the create is no reason to fail the task: it is created', async () => {
    const { engine, client } = build();
    // A fresh job's first read of its cancel request is the one at the create: it meets a dropped connection.
    const get = store.kv.get.bind(store.kv);
    let cancelReads = 0;
    store.kv.get = (async (key: string) => {
      if (key.startsWith('cancel:job:') && ++cancelReads === 1) throw new Error('Socket closed unexpectedly');
      return get(key);
    }) as typeof store.kv.get;
    const done = await engine.waitFor((await engine.submit(req())).id);
    expect(cancelReads).toBeGreaterThanOrEqual(1);
    expect(done.state).toBe('succeeded');
    expect(client.creates).toHaveLength(1);
    expect(logLines.some((l) => l.includes('could not read the cancel request; creating anyway'))).toBe(true);
  });
  it('asks for a completion callback when the provider traits offer one, whatever the provider is called', async () => {
    const withCallbacks = new ScriptedClient('runbase', { callbacks: true });
    const { engine } = build({ clients: [withCallbacks], settings: { publicUrl: 'https://bot.example.com/' } });
    await engine.waitFor((await engine.submit(req())).id);
    expect(withCallbacks.creates[0]!.callbackUrl).toMatch(/^https:\/\/bot\.example\.com\/callbacks\/runbase\/[0-9A-Za-z]{32}$/);
    const token = withCallbacks.creates[0]!.callbackUrl!.split('/').at(-1)!;
    expect(await engine.providerCallback('runbase', token)).toBeTypeOf('function');

    const without = new ScriptedClient('runblob', { callbacks: false });
    const other = build({ clients: [without], settings: { publicUrl: 'https://bot.example.com/' } });
    await other.engine.waitFor((await other.engine.submit(req({ model: 'runblob-pro' }))).id);
    expect(without.creates[0]!.callbackUrl).toBeUndefined();
  });

  it('asks for no callback without a public URL to call', async () => {
    const withCallbacks = new ScriptedClient('runblob');
    const { engine } = build({ clients: [withCallbacks] });
    await engine.waitFor((await engine.submit(req({ model: 'runblob-pro' }))).id);
    expect(withCallbacks.creates[0]!.callbackUrl).toBeUndefined();
  });
});
