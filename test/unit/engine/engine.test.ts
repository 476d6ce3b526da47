/**
 * The engine's façade (engine.ts): locations, close(), and configuration errors.
 */
import { describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../../src/config.ts';
import { sentenceFor } from '../../../src/errors.ts';
import type { JobRecord } from '../../../src/engine/job.ts';
import { jobKey, UNFINISHED_JOBS_KEY } from '../../../src/engine/jobs/records.ts';
import { build, logLines, onJobWrite, req, ScriptedClient, store, useEngineFixture, user } from './engine-fixture.ts';

useEngineFixture();

describe('the engine façade', () => {
  it('updateLocation merges and persists, and the location (an interaction token) is never logged', async () => {
    const { engine } = build();
    const job = await engine.submit(req({ location: { interactionToken: 'secret-interaction-token-123', channelId: 'c1' } }));
    await engine.updateLocation(job.id, { messageId: 'm9' });
    const done = await engine.waitFor(job.id);
    expect(done.request.location).toEqual({ interactionToken: 'secret-interaction-token-123', channelId: 'c1', messageId: 'm9' });
    expect((await store.kv.get<JobRecord>(jobKey(job.id)))!.request.location.messageId).toBe('m9');
    expect(logLines.join('')).not.toContain('secret-interaction-token-123');
    expect(logLines.join('')).toContain(job.id);
  });
  it('a command that fails on a store that does not answer is refused with STORE_UNAVAILABLE, its quota given back; one that fails while the store answers is not', async () => {
    const { engine, quotas } = build();
    onJobWrite(store, () => Promise.reject(new Error('Socket closed unexpectedly')));
    const ping = store.ping.bind(store);
    store.ping = () => Promise.reject(new Error('redis is not connected'));
    await expect(engine.submit(req())).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', userMessage: sentenceFor('STORE_UNAVAILABLE', {}) });
    expect((await quotas.view(user)).used).toBe(0);
    expect(logLines.some((l) => l.includes('a command failed while the store does not answer'))).toBe(true);
    // The store answers: the failure is not the store's being away, and is not explained as such.
    store.ping = ping;
    const other = await engine.submit(req()).catch((err: unknown) => err);
    expect(other).toBeInstanceOf(Error);
    expect((other as { code?: string }).code).toBeUndefined();
    expect((await quotas.view(user)).used).toBe(0);
  });
  it('a job whose admission failed after its writes landed (the reply lost) is taken back out of the store: no later start runs it', async () => {
    const { engine, client, quotas } = build();
    // Redis applied the SADD, then the connection dropped before its reply.
    const setAdd = store.setAdd.bind(store);
    let admitted = '';
    store.setAdd = async (key: string, member: string) => {
      await setAdd(key, member);
      if (key !== UNFINISHED_JOBS_KEY) return;
      admitted = member;
      throw new Error('Socket closed unexpectedly');
    };
    store.ping = () => Promise.reject(new Error('redis is not connected'));
    await expect(engine.submit(req())).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect((await quotas.view(user)).used).toBe(0);
    await vi.waitFor(async () => expect(await store.kv.get(jobKey(admitted))).toBeUndefined());
    await engine.close();
    // The next start finds nothing to run: the user was refunded and told to try again.
    const { engine: next, client: nextClient } = build();
    expect(await next.resume()).toBe(0);
    expect(await store.setMembers(UNFINISHED_JOBS_KEY)).toEqual([]);
    expect(nextClient.creates).toHaveLength(0);
    expect(client.creates).toHaveLength(0);
  });
  it('close() stops a running job where it is; it stays in the store', async () => {
    const { engine, client } = build();
    client.script = (taskId) => ({ taskId, status: 'running', outputUrls: [] });
    const job = await engine.submit(req());
    while (client.polls.length === 0) await new Promise((r) => setTimeout(r, 5));
    await engine.close();
    const stored = (await store.kv.get<JobRecord>(jobKey(job.id)))!;
    expect(stored.state).toBe('running');
    expect(stored.tasks[0]!.taskId).toBe('task1');
    expect(await store.setMembers(UNFINISHED_JOBS_KEY)).toEqual([job.id]);
    // A request after close() is refused with the catalogue's "restarting" sentence, nothing stored.
    await expect(engine.submit(req())).rejects.toMatchObject({ code: 'BOT_RESTARTING', userMessage: sentenceFor('BOT_RESTARTING', {}) });
    expect(await store.setMembers(UNFINISHED_JOBS_KEY)).toEqual([job.id]);
  });
  it('a request accepted while close() runs is kept for the next start, not sent to the provider', async () => {
    const { engine, client } = build();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    onJobWrite(store, async (record, write) => {
      if (record.state === 'queued') await held;
      return write();
    });
    const submitted = engine.submit(req());
    await new Promise((r) => setTimeout(r, 20));
    const closed = engine.close();
    release();
    const job = await submitted;
    await closed;
    await new Promise((r) => setTimeout(r, 50));
    expect(client.creates).toHaveLength(0);
    expect((await store.kv.get<JobRecord>(jobKey(job.id)))!.state).toBe('queued');
    expect(await store.setMembers(UNFINISHED_JOBS_KEY)).toEqual([job.id]);
    const { engine: next, client: nextClient } = build({ processId: 'next' });
    expect(await next.resume()).toBe(1);
    expect((await next.waitFor(job.id)).state).toBe('succeeded');
    expect(nextClient.creates).toHaveLength(1);
  });
  it('close() leaves no timer behind that would keep a one-shot process (the CLI) alive', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const { engine } = build();
    await engine.waitFor((await engine.submit(req())).id);
    await engine.close();
    expect(timers()).toBeLessThanOrEqual(before);
  });
  it('an unknown DEFAULT_MODEL fails at start with a clear message', () => {
    expect(() => build({ env: { DEFAULT_MODEL: 'midjourney' } })).toThrow(ConfigError);
    try {
      build({ env: { DEFAULT_MODEL: 'midjourney' } });
    } catch (err) {
      expect((err as ConfigError).problems[0]).toBe('DEFAULT_MODEL: "midjourney" is not one of the configured models (runbase-pro, runbase-2)');
    }
  });
  it('needs at least one provider', () => {
    expect(() => build({ clients: [] })).toThrow(/RUNBASE_API_KEY \/ RUNBLOB_API_KEY/);
  });
  it('offers only the models of configured providers, in catalog order', () => {
    const { engine } = build({ clients: [new ScriptedClient('runblob')] });
    expect(engine.models.map((m) => m.key)).toEqual(['runblob-standard', 'runblob-pro', 'runblob-2']);
    expect(engine.defaultModel.key).toBe('runblob-standard');
  });
});
