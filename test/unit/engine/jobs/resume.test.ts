/**
 * Resume and takeover (jobs/resume.ts) through the engine: leases decide who runs a job.
 */
import { describe, expect, it } from 'vitest';
import type { JobRecord } from '../../../../src/engine/job.ts';
import { ALIVE_KEY_PREFIX, jobKey, PROCESSES_KEY, UNFINISHED_JOBS_KEY } from '../../../../src/engine/jobs/records.ts';
import { build, cutOffStore, logLines, onJobWrite, req, store, TIMING, useEngineFixture } from '../engine-fixture.ts';

useEngineFixture();

describe('resume and takeover', () => {
  it('does not resume a job another live process holds', async () => {
    const { engine, client } = build({ processId: 'me' });
    const job = await engine.submit(req());
    await engine.waitFor(job.id);
    // Plant an unfinished copy owned by someone else.
    const copy = { ...(await engine.getJob(job.id))!, id: 'otherJob0001', state: 'queued' as const, deliveredAt: undefined };
    copy.tasks = [{ index: 0, status: 'unsubmitted' }];
    copy.quota = { ...copy.quota, settled: false };
    await store.kv.set(jobKey(copy.id), copy);
    await store.setAdd(UNFINISHED_JOBS_KEY, copy.id);
    expect(await store.lease('lease:job:otherJob0001', 'someone-else', 60_000)).toBe(true);
    expect(await store.lease(`${ALIVE_KEY_PREFIX}someone-else`, 'someone-else', 60_000)).toBe(true); // its heartbeat
    const creates = client.creates.length;
    expect(await engine.resume()).toBe(0);
    expect(client.creates.length).toBe(creates);
    await store.releaseLease('lease:job:otherJob0001', 'someone-else');
    expect(await engine.resume()).toBe(1);
    expect((await engine.waitFor(copy.id)).state).toBe('succeeded');
  });
  it('reads a job again once leased: a delivery its holder recorded just before letting go is not made twice', async () => {
    const { engine: first } = build({ processId: 'first' });
    const base = await first.submit(req());
    await first.waitFor(base.id);
    const { engine, deliverer } = build({ processId: 'me' });
    const job: JobRecord = { ...(await first.getJob(base.id))!, id: 'racingJob001' };
    delete job.deliveredAt;
    await store.kv.set(jobKey(job.id), job);
    await store.setAdd(UNFINISHED_JOBS_KEY, job.id);
    await store.lease(`${ALIVE_KEY_PREFIX}holder`, 'holder', 60_000);
    await store.lease('lease:job:racingJob001', 'holder', 60_000);
    // Between this process's first read and its lease, the holder delivers, records it and lets go.
    const lease = store.lease.bind(store);
    store.lease = async (key, ...rest) => {
      if (key === 'lease:job:racingJob001' && (await store.leaseHolder(key)) === 'holder') {
        await store.kv.set(jobKey(job.id), { ...job, deliveredAt: Date.now() });
        await store.releaseLease(key, 'holder');
      }
      return lease(key, ...rest);
    };
    expect(await engine.resume()).toBe(0);
    expect(deliverer.delivered).toEqual([]);
    expect(await store.setMembers(UNFINISHED_JOBS_KEY)).toEqual([]);
    expect(await store.leaseHolder('lease:job:racingJob001')).toBeUndefined();
  });
  it('two sweeps of one process at once (a resume and a takeover) start a job once', async () => {
    const { engine: first } = build({ processId: 'first' });
    const base = await first.submit(req());
    await first.waitFor(base.id);
    const { engine, client, deliverer } = build({ processId: 'me' });
    const job: JobRecord = { ...(await first.getJob(base.id))!, id: 'twiceJob0001', state: 'queued' };
    delete job.deliveredAt;
    job.tasks = [{ index: 0, status: 'unsubmitted' }];
    job.quota = { ...job.quota, settled: false };
    await store.kv.set(jobKey(job.id), job);
    await store.setAdd(UNFINISHED_JOBS_KEY, job.id);
    const creates = client.creates.length;
    const started = await Promise.all([engine.resume(), engine.resume()]);
    expect(started.reduce((a, b) => a + b)).toBe(1);
    expect((await engine.waitFor(job.id)).state).toBe('succeeded');
    expect(client.creates.length).toBe(creates + 1);
    expect(deliverer.delivered.map((j) => j.id)).toEqual([job.id]);
  });
  it('a sweep that leases a job its own submit has not started yet: the job runs once', async () => {
    const { engine, client, deliverer } = build({ processId: 'me' });
    // The sweep runs between the job's joining the unfinished set and its submit's start.
    const setAdd = store.setAdd.bind(store);
    let swept: Promise<number> | undefined;
    store.setAdd = async (key: string, member: string) => {
      await setAdd(key, member);
      if (key === UNFINISHED_JOBS_KEY) await (swept = engine.resume());
    };
    const job = await engine.submit(req());
    expect(await swept).toBe(1);
    expect((await engine.waitFor(job.id)).state).toBe('succeeded');
    await new Promise((r) => setTimeout(r, 50));
    expect(client.creates).toHaveLength(1);
    expect(deliverer.delivered.map((j) => j.id)).toEqual([job.id]);
  });
  it('takes over, on its own, the jobs of a process that died (heartbeat lapsed), but not one whose delivery gave up', async () => {
    const { engine: first } = build({ processId: 'first' });
    const base = await first.submit(req());
    await first.waitFor(base.id);
    const { engine, client } = build({ processId: 'survivor', timing: { ...TIMING, takeoverIntervalMs: 30 } });
    const plant = async (id: string, state: JobRecord['state'], deliveryAttempts?: number) => {
      const job: JobRecord = { ...(await first.getJob(base.id))!, id, state };
      delete job.deliveredAt;
      if (deliveryAttempts !== undefined) job.deliveryAttempts = deliveryAttempts;
      job.tasks = [{ index: 0, status: 'unsubmitted' }];
      job.quota = { ...job.quota, settled: state !== 'queued' };
      await store.kv.set(jobKey(id), job);
      await store.setAdd(UNFINISHED_JOBS_KEY, id);
      await store.lease(`lease:job:${id}`, 'dead-process', 60_000);
      // It dies: its heartbeat lapses after 150 ms (its 60 s job leases do not matter then).
      await store.lease(`${ALIVE_KEY_PREFIX}dead-process`, 'dead-process', 150);
    };
    const { deliverer } = build({ processId: 'unused' });
    engine.setDeliverer('discord', deliverer);
    await plant('orphanJob001', 'queued');
    // Died between finishing a job and delivering it: the survivor delivers it.
    await plant('undelivered1', 'failed');
    // Its delivery failed every attempt (1 + TIMING.deliveryRetryDelaysMs): it waits for the next start.
    await plant('gaveUpJob001', 'failed', 2);
    const creates = client.creates.length;
    await new Promise((r) => setTimeout(r, 60));
    expect(client.creates.length).toBe(creates); // still leased by the dead process
    const done = await engine.waitFor('orphanJob001');
    expect(done.state).toBe('succeeded');
    expect(client.creates.length).toBe(creates + 1);
    while (!(await store.kv.get<JobRecord>(jobKey('undelivered1')))!.deliveredAt) await new Promise((r) => setTimeout(r, 10));
    expect(deliverer.delivered.map((j) => j.id).sort()).toEqual(['orphanJob001', 'undelivered1']);
    expect((await store.kv.get<JobRecord>(jobKey('gaveUpJob001')))!.deliveredAt).toBeUndefined();
    while ((await store.setMembers(UNFINISHED_JOBS_KEY)).length > 1) await new Promise((r) => setTimeout(r, 10));
    expect(await store.setMembers(UNFINISHED_JOBS_KEY)).toEqual(['gaveUpJob001']);
  });
});

/** Heartbeats scaled down (production: every 2 s, living 6 s); job leases far longer, so only the heartbeat can explain a takeover. */
const BEAT = { ...TIMING, heartbeatIntervalMs: 40, heartbeatTtlMs: 150, takeoverIntervalMs: 0, leaseTtlMs: 60_000 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const never = (taskId: string) => ({ taskId, status: 'running' as const, outputUrls: [] });
async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(5);
  }
}

describe('takeover by heartbeat', () => {
  it('close() hands the running jobs over: a live peer takes them at its next look, long before their lease expires', async () => {
    // a's heartbeat would live 5 s after its last beat: only ending it explains a takeover within 1 s.
    const a = build({ processId: 'a', timing: { ...BEAT, heartbeatTtlMs: 5_000 } });
    a.client.script = never;
    const b = build({ processId: 'b', timing: BEAT });
    const job = await a.engine.submit(req());
    await until(() => a.client.polls.length > 0);
    const closedAt = Date.now();
    await a.engine.close();
    await until(() => b.deliverer.delivered.length > 0);
    const handedOverMs = Date.now() - closedAt;
    expect(handedOverMs).toBeLessThan(1_000); // the job lease had 60 s left
    expect(b.deliverer.delivered.map((j) => j.id)).toEqual([job.id]);
    expect(b.deliverer.delivered[0]!.state).toBe('succeeded');
    // The peer polled the task the first process created: created once.
    expect(a.client.creates).toHaveLength(1);
    expect(b.client.creates).toHaveLength(0);
    expect(a.deliverer.delivered).toEqual([]);
  });

  it('a process whose heartbeat lapsed (killed) loses its jobs to a peer at once, and is forgotten', async () => {
    const { engine: first } = build({ processId: 'first', timing: BEAT });
    const base = await first.submit(req());
    await first.waitFor(base.id);
    const job: JobRecord = { ...(await first.getJob(base.id))!, id: 'ghostsJob001', state: 'queued' };
    delete job.deliveredAt;
    job.tasks = [{ index: 0, status: 'unsubmitted' }];
    job.quota = { ...job.quota, settled: false };
    await first.close(); // only the survivor may take it
    await store.kv.set(jobKey(job.id), job);
    await store.setAdd(UNFINISHED_JOBS_KEY, job.id);
    // 'ghost' ran it: a 60 s job lease, and a heartbeat that stops 100 ms from now.
    await store.setAdd(PROCESSES_KEY, 'ghost');
    await store.lease('lease:job:ghostsJob001', 'ghost', 60_000);
    await store.lease(`${ALIVE_KEY_PREFIX}ghost`, 'ghost', 100);
    const { engine, deliverer } = build({ processId: 'survivor', timing: BEAT });
    await sleep(60);
    expect(deliverer.delivered).toEqual([]); // its heartbeat still lives
    await until(() => deliverer.delivered.length > 0, 1_000);
    expect(deliverer.delivered.map((j) => j.id)).toEqual(['ghostsJob001']);
    expect((await engine.getJob('ghostsJob001'))!.state).toBe('succeeded');
    await until(async () => !(await store.setMembers(PROCESSES_KEY)).includes('ghost'), 1_000);
  });

  it('a process that cannot renew its heartbeat stops its runs (a peer may take them), and resumes them when it can again', async () => {
    const { engine, client, deliverer } = build({ processId: 'cut-off', timing: BEAT });
    client.script = never;
    const job = await engine.submit(req());
    await until(() => client.polls.length > 0);
    const lease = store.lease.bind(store);
    let broken = true;
    store.lease = (key, ...rest) => (broken && key.startsWith(ALIVE_KEY_PREFIX) ? Promise.reject(new Error('store unreachable')) : lease(key, ...rest));
    await until(() => logLines.some((l) => l.includes('heartbeat not renewed in time')), 1_000);
    await sleep(50); // the run has stopped: no poll any more
    const polls = client.polls.length;
    await sleep(100);
    expect(client.polls.length).toBe(polls);
    broken = false;
    client.script = (taskId) => ({ taskId, status: 'succeeded', outputUrls: [`https://cdn.test/out/${taskId}.png`] });
    await until(() => deliverer.delivered.length > 0);
    expect(deliverer.delivered.map((j) => j.id)).toEqual([job.id]);
    expect(client.creates).toHaveLength(1);
  });

  it('after an outage longer than its heartbeat, a process stops its runs once, and resumes them once the store is back', async () => {
    const cut = cutOffStore(store);
    const { engine, client, deliverer } = build({ processId: 'alone', timing: BEAT, store: cut.store });
    client.script = never;
    const job = await engine.submit(req());
    await until(() => client.polls.length > 0);
    // The stopped run ends after the heartbeat is back (its lease's release is slow): the resume waits for it.
    const release = store.releaseLease.bind(store);
    store.releaseLease = async (key, owner) => {
      if (key.startsWith('lease:job:')) await sleep(100);
      return release(key, owner);
    };
    cut.cut();
    await until(() => logLines.some((l) => l.includes('heartbeat not renewed in time')));
    await sleep(200); // longer than the heartbeat's life
    client.script = (taskId) => ({ taskId, status: 'succeeded', outputUrls: [`https://cdn.test/out/${taskId}.png`] });
    cut.reconnect();
    await until(() => deliverer.delivered.length > 0);
    await sleep(200);
    // The beat that waited out the outage is not taken for a fresh one: no second stop right after.
    expect(logLines.filter((l) => l.includes('heartbeat not renewed in time'))).toHaveLength(1);
    expect(deliverer.delivered.map((j) => j.id)).toEqual([job.id]);
    expect(client.creates).toHaveLength(1);
  });

  it('a create whose "about to send" write waited out an outage that stopped the run is not sent, and is sent once on the resume (not failed as SUBMISSION_UNKNOWN)', async () => {
    const cut = cutOffStore(store);
    const { engine, client, deliverer } = build({ processId: 'alone', timing: BEAT, store: cut.store });
    // The write marking the create as about to go out meets the outage and waits for it.
    const back = Promise.withResolvers<void>();
    let held = false;
    onJobWrite(store, async (record, write) => {
      const task = record.tasks[0];
      if (!held && task?.submittedAt !== undefined && task.taskId === undefined) {
        held = true;
        cut.cut();
        await back.promise;
      }
      return write();
    });
    const job = await engine.submit(req());
    await until(() => logLines.some((l) => l.includes('heartbeat not renewed in time')));
    expect(client.creates).toHaveLength(0);
    cut.reconnect();
    back.resolve();
    await until(() => deliverer.delivered.length > 0);
    expect(deliverer.delivered.map((j) => [j.id, j.state])).toEqual([[job.id, 'succeeded']]);
    expect(client.creates).toHaveLength(1);
  });

  it('after a store outage that cut both off, a peer does not take the jobs of a process whose heartbeat lapsed with it: that one reconnects and finishes them', async () => {
    const cut = cutOffStore(store);
    const a = build({ processId: 'a', timing: BEAT, store: cut.store });
    a.client.script = never;
    const b = build({ processId: 'b', timing: BEAT });
    const job = await a.engine.submit(req());
    await until(() => a.client.polls.length > 0);
    // The outage: a's calls wait for the connection to come back; b's heartbeat is refused.
    cut.cut();
    const lease = store.lease.bind(store);
    let bDown = true;
    store.lease = (key, ...rest) => (bDown && key === `${ALIVE_KEY_PREFIX}b` ? Promise.reject(new Error('store unreachable')) : lease(key, ...rest));
    await until(async () => (await store.leaseHolder(`${ALIVE_KEY_PREFIX}a`)) === undefined);
    // b is back first and sees a's heartbeat gone: a may only be reconnecting, so b leaves a's job.
    bDown = false;
    await until(() => logLines.filter((l) => l.includes('heartbeat renewed again')).length > 0);
    await sleep(60);
    expect(await store.leaseHolder(`lease:job:${job.id}`)).toBe('a');
    // a reconnects: what it queued lands, and it resumes its own job.
    a.client.script = (taskId) => ({ taskId, status: 'succeeded', outputUrls: [`https://cdn.test/out/${taskId}.png`] });
    cut.reconnect();
    await until(() => a.deliverer.delivered.length > 0);
    await sleep(300); // b's grace is over, and it has looked at its peers again
    expect(a.deliverer.delivered.map((j) => j.id)).toEqual([job.id]);
    expect(b.deliverer.delivered).toEqual([]);
    expect(b.client.polls).toEqual([]);
    expect(a.client.creates).toHaveLength(1);
  });

  it('during close(), a new command is queued for a live peer, which runs it; with no live peer it is refused with BOT_RESTARTING', async () => {
    const a = build({ processId: 'a', timing: BEAT });
    const b = build({ processId: 'b', timing: BEAT });
    await sleep(100); // a has looked at its peers: b lives
    const closing = a.engine.close();
    const queued = await a.engine.submit(req());
    expect(queued.state).toBe('queued');
    await closing;
    await until(() => b.deliverer.delivered.length > 0);
    expect(b.deliverer.delivered.map((j) => j.id)).toEqual([queued.id]);
    expect(a.client.creates).toHaveLength(0);
    // Handed over: nothing more is taken.
    await expect(a.engine.submit(req())).rejects.toMatchObject({ code: 'BOT_RESTARTING' });

    const alone = build({ processId: 'alone', timing: { ...BEAT, heartbeatIntervalMs: 20, heartbeatTtlMs: 60 } });
    await b.engine.close();
    await sleep(100); // alone has looked: nobody lives
    const closingAlone = alone.engine.close();
    await expect(alone.engine.submit(req())).rejects.toMatchObject({ code: 'BOT_RESTARTING' });
    await closingAlone;
  });
});
