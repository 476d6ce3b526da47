/**
 * The job runner (jobs/runner.ts) through the engine: every state change persisted, the deadline,
 * and a run that never outlives its lease.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { JobRecord } from '../../../../src/engine/job.ts';
import { ALIVE_KEY_PREFIX, jobKey, UNFINISHED_JOBS_KEY } from '../../../../src/engine/jobs/records.ts';
import { build, dir, logLines, onJobWrite, req, store, TIMING, useEngineFixture, user } from '../engine-fixture.ts';

useEngineFixture();

describe('running a job', () => {
  it('persists every state change, the task id before the first poll, and delivers the images', async () => {
    const { engine, client, deliverer } = build();
    const written: string[] = [];
    onJobWrite(store, (record, write) => {
      written.push(record.state);
      return write();
    });
    const stored: Array<JobRecord | undefined> = [];
    client.beforePoll = async () => {
      stored.push(await store.kv.get<JobRecord>(jobKey(job.id)));
    };
    const job = await engine.submit(req({ count: 2, location: { channelId: 'c1' } }));
    const done = await engine.waitFor(job.id);
    expect(done.state).toBe('succeeded');
    // Every state, in order, reached the store.
    expect(written.filter((s, i) => s !== written[i - 1])).toEqual(['queued', 'submitted', 'running', 'succeeded']);
    // When the first status request went out, the store already had the provider's task id.
    expect(stored[0]!.tasks.map((t) => t.taskId).filter(Boolean).length).toBeGreaterThanOrEqual(1);
    for (const t of done.tasks) {
      expect(t.image).toMatchObject({ mime: 'image/png', width: 96, height: 64 });
      expect(t.image!.path).toBe(join(dir, 'data', 'images', job.id, `${t.index}.png`));
      expect((await stat(t.image!.path)).size).toBe(t.image!.bytes);
    }
    expect(deliverer.delivered).toHaveLength(1);
    const fromStore = (await store.kv.get<JobRecord>(jobKey(job.id)))!;
    expect(fromStore.deliveredAt).toBeTypeOf('number');
    expect(await store.setMembers(UNFINISHED_JOBS_KEY)).toEqual([]);
  });
  it('a store write refused for a moment (a dropped connection) after a create is retried: the task id lands, the job succeeds, created once', async () => {
    const { engine, client, quotas } = build();
    let refused = 0;
    onJobWrite(store, async (record, write) => {
      // The first two writes that carry the provider's task id meet a dropped connection.
      if (record.tasks.some((t) => t.taskId) && refused < 2) {
        refused++;
        throw new Error('Socket closed unexpectedly');
      }
      return write();
    });
    const job = await engine.submit(req());
    const done = await engine.waitFor(job.id);
    expect(refused).toBe(2);
    expect(done.state).toBe('succeeded');
    expect(done.tasks[0]!.error).toBeUndefined();
    expect(client.creates).toHaveLength(1);
    expect((await store.kv.get<JobRecord>(jobKey(job.id)))!.tasks[0]!.taskId).toBe('task1');
    expect((await quotas.view(user)).used).toBe(1);
  });
  it('a record write the store keeps refusing is given up after JobTiming.recordWriteRetry.giveUpMs: the run ends, nothing sent, and the next start runs the job', async () => {
    const { engine, client } = build({ processId: 'me' });
    // Every write of the run (from the mark "about to create" on) is refused; admission's lands.
    let refused = 0;
    let storeBack = false;
    onJobWrite(store, async (record, write) => {
      if (!storeBack && record.tasks.some((t) => t.submittedAt !== undefined)) {
        refused++;
        throw new Error('Socket closed unexpectedly');
      }
      return write();
    });
    const started = performance.now();
    const job = await engine.submit(req());
    while (logLines.every((l) => !l.includes('job run failed unexpectedly'))) await new Promise((r) => setTimeout(r, 5));
    // Two writes (the mark, then the task's failure), each tried for giveUpMs (100 ms) at 10–20 ms apart.
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(refused).toBeGreaterThan(2);
    expect(refused).toBeLessThan(30);
    expect(client.creates).toHaveLength(0); // never sent: the record could not say it may have been
    expect((await store.kv.get<JobRecord>(jobKey(job.id)))!.state).toBe('queued');
    expect(await store.setMembers(UNFINISHED_JOBS_KEY)).toEqual([job.id]);
    storeBack = true;
    await engine.close();
    const { engine: next, client: nextClient } = build({ processId: 'next' });
    expect(await next.resume()).toBe(1);
    expect((await next.waitFor(job.id)).state).toBe('succeeded');
    expect(nextClient.creates).toHaveLength(1);
  });
  it('a record write held back until another process took the job lands nowhere, and stops the run', async () => {
    // Leases renewed every 20 s: only the write itself can see that the lease is gone.
    const { engine, client } = build({ processId: 'me', timing: { ...TIMING, leaseTtlMs: 60_000 } });
    client.script = (taskId) => ({ taskId, status: 'running', outputUrls: [] });
    // The write of the task id waits (a connection's queue during an outage) while a peer takes the job.
    const back = Promise.withResolvers<void>();
    let held: JobRecord | undefined;
    onJobWrite(store, async (record, write) => {
      if (!held && record.tasks[0]?.taskId !== undefined) {
        held = record;
        await back.promise;
      }
      return write();
    });
    const job = await engine.submit(req());
    while (!held) await new Promise((r) => setTimeout(r, 5));
    const lease = `lease:job:${job.id}`;
    await store.releaseLease(lease, 'me');
    expect(await store.lease(lease, 'peer', 60_000)).toBe(true);
    const peers: JobRecord = { ...held, tasks: [{ index: 0, status: 'running', taskId: 'peer-task' }] };
    await store.kv.set(jobKey(job.id), peers);
    back.resolve();
    while (logLines.every((l) => !l.includes('the job lease was gone'))) await new Promise((r) => setTimeout(r, 5));
    const polls = client.polls.length;
    await new Promise((r) => setTimeout(r, 100));
    expect((await store.kv.get<JobRecord>(jobKey(job.id)))!.tasks[0]!.taskId).toBe('peer-task');
    expect(client.polls.length).toBe(polls); // stopped: it does not watch a task another process owns
    expect(await store.leaseHolder(lease)).toBe('peer'); // and leaves the peer's lease alone
  });
  it('renews the leases of all its runs in one store call per renewal, and a run whose lease another process took stops there and leaves it', async () => {
    const { engine, client, deliverer } = build({ processId: 'me', timing: { ...TIMING, leaseTtlMs: 150 } });
    client.script = (taskId) => ({ taskId, status: 'running', outputUrls: [] });
    const jobs = await Promise.all([1, 2, 3].map(() => engine.submit(req())));
    while (new Set(client.polls).size < 3) await new Promise((r) => setTimeout(r, 5));
    const leaseMany = store.leaseMany.bind(store);
    const batches: string[][] = [];
    store.leaseMany = (keys, ...rest) => {
      batches.push([...keys]);
      return leaseMany(keys, ...rest);
    };
    const lease = store.lease.bind(store);
    const single: string[] = [];
    store.lease = (key, ...rest) => {
      if (key.startsWith('lease:job:')) single.push(key);
      return lease(key, ...rest);
    };
    await new Promise((r) => setTimeout(r, 170)); // about three renewals (every 50 ms)
    expect(batches.length).toBeGreaterThanOrEqual(2);
    for (const b of batches) expect(b.sort()).toEqual(jobs.map((j) => `lease:job:${j.id}`).sort());
    expect(single).toEqual([]);
    // Another process takes the second job's lease: that run stops at the next renewal, the others go on.
    const stolen = `lease:job:${jobs[1]!.id}`;
    await store.releaseLease(stolen, 'me');
    expect(await store.lease(stolen, 'thief', 60_000)).toBe(true);
    expect(await store.lease(`${ALIVE_KEY_PREFIX}thief`, 'thief', 60_000)).toBe(true); // and it lives
    while (logLines.every((l) => !l.includes('lost the job lease'))) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 100));
    const pollsOf = (i: number) => client.polls.filter((t) => t === `task${i + 1}`).length;
    const before = [0, 1, 2].map(pollsOf);
    await new Promise((r) => setTimeout(r, 150));
    expect(pollsOf(1)).toBe(before[1]); // stopped
    expect(pollsOf(0)).toBeGreaterThan(before[0]!);
    expect(pollsOf(2)).toBeGreaterThan(before[2]!);
    expect(await store.leaseHolder(stolen)).toBe('thief'); // not released by the run that lost it
    // Its deliverer was told to let go of it (the thief delivers it); the others still run here.
    expect(deliverer.forgotten).toEqual([jobs[1]!.id]);
  });
  it('a run letting go of its lease is not renewed meanwhile: the lease stays free once released', async () => {
    const { engine } = build({ processId: 'me', timing: { ...TIMING, leaseTtlMs: 300 } });
    // The release lands at once but its reply is slow: renewals (every 100 ms) go on meanwhile.
    const releaseLease = store.releaseLease.bind(store);
    let released: Promise<void> | undefined;
    store.releaseLease = (key, holder) => {
      if (!key.startsWith('lease:job:')) return releaseLease(key, holder);
      return (released = releaseLease(key, holder).then(() => new Promise((r) => setTimeout(r, 250))));
    };
    const job = await engine.submit(req());
    await engine.waitFor(job.id);
    while (!released) await new Promise((r) => setTimeout(r, 5));
    await released;
    expect(await store.leaseHolder(`lease:job:${job.id}`)).toBeUndefined();
  });
  it('fails tasks still pending at the deadline with DEADLINE_EXCEEDED and refunds them', async () => {
    const { engine: e2, quotas, client } = build({ timing: { ...TIMING, deadlineMs: 200 } });
    client.script = (taskId) => ({ taskId, status: 'running', outputUrls: [] });
    const job = await e2.submit(req({ count: 2 }));
    const done = await e2.waitFor(job.id);
    expect(done.state).toBe('failed');
    expect(done.error?.code).toBe('DEADLINE_EXCEEDED');
    expect(done.tasks.map((t) => t.error?.code)).toEqual(['DEADLINE_EXCEEDED', 'DEADLINE_EXCEEDED']);
    expect((await quotas.view(user)).used).toBe(0);
  });
  it('a store error in one task does not free the job while its other tasks still poll', async () => {
    const { engine, client } = build({ processId: 'me' });
    // Task 1 fails at once; the write recording its failure is refused by the store.
    client.createFailures = [undefined, new Error('create refused')];
    let polls = 0;
    client.script = (taskId) => ({ taskId, status: polls++ < 15 ? 'running' : 'succeeded', outputUrls: polls > 15 ? [`https://cdn.test/out/${taskId}.png`] : [] });
    onJobWrite(store, async (record, write) => {
      if (record.tasks.some((t) => t.error?.detail === 'create refused')) throw new Error('store unavailable');
      return write();
    });
    const job = await engine.submit(req({ count: 2 }));
    // Wait until the run lets go of the job (its lease is free).
    while (!(await store.lease(`lease:job:${job.id}`, 'other', 60_000))) await new Promise((r) => setTimeout(r, 5));
    const pollsAtRelease = client.polls.length;
    await new Promise((r) => setTimeout(r, 150));
    // No task of this run is still polling a job another process may now run.
    expect(client.polls.length).toBe(pollsAtRelease);
    expect(client.creates.length).toBe(1);
  });
});
