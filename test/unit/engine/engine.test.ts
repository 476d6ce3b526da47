/**
 * The engine with a scripted in-test provider client and an in-memory SQLite store: the
 * contract of submit (validation and charging order), persistence at every state change,
 * progress, settlement, delivery rules, leases and configuration errors.
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { MockAgent } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../src/config.ts';
import { engineSettingsOf } from '../../../src/app.ts';
import { createEngine, type EngineTiming } from '../../../src/engine/engine.ts';
import { jobKey, UNFINISHED_JOBS_KEY } from '../../../src/engine/jobs/records.ts';
import { QuotaExceededError, ReferenceError, SpendCapError, ValidationError } from '../../../src/engine/errors.ts';
import type { Deliverer, JobRecord, ProgressEvent } from '../../../src/engine/job.ts';
import { openStore } from '../../../src/engine/open-store.ts';
import { Quotas } from '../../../src/engine/quota.ts';
import type { Store } from '../../../src/engine/store.ts';
import { InvalidRequestError, ProviderServerError, RateLimitedError } from '../../../src/providers/errors.ts';
import type { CreatedTask, ProviderClient, ProviderTraits, RequestOptions, TaskInput, TaskSnapshot } from '../../../src/providers/types.ts';
import { RUNBASE_TRAITS } from '../../../src/providers/runbase/client.ts';
import { RUNBLOB_TRAITS } from '../../../src/providers/runblob/client.ts';
import type { ProviderName } from '../../../src/engine/models.ts';
import { renderPng } from '../../fakes/png.ts';

const TIMING: EngineTiming = {
  deadlineMs: 3_000,
  progressTickMs: 40,
  deliveryRetryDelaysMs: [10],
  leaseTtlMs: 2_000,
  createRateLimitedBackoffMs: 20,
  expectedMs: () => 30,
  rateLimits: { runbase: { requests: 1000, windowMs: 1000 }, runblob: { requests: 1000, windowMs: 1000 } },
  scheduler: { minIntervalMs: 10, maxIntervalMs: 20, tailCapMs: 30, errorBackoffMs: 10, firstPollFraction: 0.1 },
};

/** A provider whose answers the test scripts. Default: pending → running → succeeded. */
class ScriptedClient implements ProviderClient {
  readonly name: ProviderName;
  readonly traits: ProviderTraits;
  readonly keyId = 'test-key';
  creates: TaskInput[] = [];
  polls: string[] = [];
  createFailures: unknown[] = [];
  costUsd: number | undefined = 0.05;
  beforePoll: (taskId: string) => void | Promise<void> = () => {};
  script: (taskId: string, poll: number) => TaskSnapshot = (taskId, poll) =>
    poll < 2
      ? { taskId, status: 'running', outputUrls: [] }
      : { taskId, status: 'succeeded', outputUrls: [`https://cdn.test/out/${taskId}.png`], ...(this.costUsd !== undefined ? { costUsd: this.costUsd } : {}) };
  #pollsByTask = new Map<string, number>();
  constructor(name: ProviderName = 'runbase') {
    this.name = name;
    this.traits = name === 'runbase' ? RUNBASE_TRAITS : RUNBLOB_TRAITS;
  }
  async createTask(input: TaskInput, opts?: RequestOptions): Promise<CreatedTask> {
    await opts?.gate?.('create', opts.signal);
    const failure = this.createFailures.shift();
    if (failure) throw failure;
    this.creates.push(input);
    const created: CreatedTask = { taskId: `task${this.creates.length}`, status: 'pending' };
    if (this.costUsd !== undefined) created.costUsd = this.costUsd;
    return created;
  }
  async getTask(taskId: string, opts?: RequestOptions): Promise<TaskSnapshot> {
    await opts?.gate?.('poll', opts.signal);
    this.polls.push(taskId);
    await this.beforePoll(taskId);
    const n = (this.#pollsByTask.get(taskId) ?? 0) + 1;
    this.#pollsByTask.set(taskId, n);
    return this.script(taskId, n);
  }
}

function recorder(): Deliverer & { delivered: JobRecord[]; events: ProgressEvent[] } {
  const d = {
    delivered: [] as JobRecord[],
    events: [] as ProgressEvent[],
    progress(_job: JobRecord, e: ProgressEvent) {
      d.events.push(e);
    },
    async deliver(job: JobRecord) {
      d.delivered.push(job);
    },
  };
  return d;
}

/**
 * Simulates a process dying during settlement: counts the store writes made after the job's
 * terminal record is written, and makes the `at`-th one fail once, either before it lands
 * (nothing written) or after (written, but the process never learns it). The run stops there,
 * as a killed process would, and the job stays unfinished in the store for the next start.
 */
function crashAtWrite(target: Store, at: number, when: 'before' | 'after') {
  let armed = false;
  let writes = 0;
  let crashed = false;
  let disarmed = false;
  const wrap = (obj: object, name: string, arms?: (args: unknown[]) => boolean) => {
    const methods = obj as Record<string, (...args: unknown[]) => Promise<unknown>>;
    const original = methods[name]!.bind(obj);
    methods[name] = async (...args: unknown[]) => {
      if (!armed || disarmed) {
        const result = await original(...args);
        if (arms?.(args)) armed = true;
        return result;
      }
      if (++writes !== at) return original(...args);
      disarmed = true;
      crashed = true;
      if (when === 'after') await original(...args);
      throw new Error(`simulated crash ${when} settlement write ${at}`);
    };
  };
  for (const name of ['add', 'addOnce', 'setIfAbsent', 'setAdd', 'setRemove']) wrap(target, name);
  wrap(target.kv, 'set', (args) => (args[1] as Partial<JobRecord> | undefined)?.finishedAt !== undefined);
  return {
    get crashed() {
      return crashed;
    },
    disarm() {
      disarmed = true;
    },
  };
}

let dir: string;
let store: Store;
let logLines: string[];
let agent: MockAgent;
const closers: Array<() => Promise<void>> = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'engine-unit-'));
  logLines = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      logLines.push(chunk.toString());
      cb();
    },
  });
  const log = pino({ level: 'debug' }, sink);
  store = await openStore('sqlite://:memory:', { log });
  agent = new MockAgent();
  agent.disableNetConnect();
  const png = await renderPng({ width: 96, height: 64, seed: 3 });
  agent.get('https://cdn.test').intercept({ path: /\/out\/.*/, method: 'GET' }).reply(200, png, { headers: { 'content-type': 'image/png' } }).persist();
  setup.log = log;
});

afterEach(async () => {
  while (closers.length) await closers.pop()!();
  await store.close();
  await agent.close();
  await rm(dir, { recursive: true, force: true });
});

const setup = {
  log: pino({ level: 'silent' }),
};

function build(
  o: {
    env?: Record<string, string>;
    clients?: ProviderClient[];
    dailyUnits?: number;
    spendCapUsd?: number;
    processId?: string;
    timing?: EngineTiming;
  } = {},
) {
  const config = parseConfig({ RUNBASE_API_KEY: 'sk-unit', DATA_DIR: join(dir, 'data'), ...o.env });
  const quotas = new Quotas(store, {
    dailyUnits: o.dailyUnits ?? 10,
    costs: { '1K': 1, '2K': 2, '4K': 4 },
    exemptUsers: [],
    spendCapUsd: o.spendCapUsd,
  });
  const clients = o.clients ?? [new ScriptedClient()];
  const engine = createEngine({
    ...engineSettingsOf(config, { references: false }),
    store,
    quotas,
    providers: clients,
    log: setup.log,
    dispatcher: agent,
    timing: o.timing ?? TIMING,
    ...(o.processId ? { processId: o.processId } : {}),
  });
  closers.push(() => engine.close());
  const deliverer = recorder();
  engine.setDeliverer('discord', deliverer);
  return { engine, quotas, client: clients[0] as ScriptedClient, deliverer };
}

const user = { platform: 'discord' as const, userId: 'u1' };
const req = (over: Record<string, unknown> = {}) => ({
  prompt: 'a fox',
  model: 'runbase-pro',
  ratio: '1:1' as const,
  resolution: '1K' as const,
  count: 1,
  requester: user,
  ...over,
});

describe('submit: validate, then charge, then persist', () => {
  it('rejects an unknown model before charging anything', async () => {
    const { engine, quotas, client } = build();
    await expect(engine.submit(req({ model: 'dalle' }))).rejects.toBeInstanceOf(ValidationError);
    expect((await quotas.view(user)).used).toBe(0);
    expect(client.creates).toEqual([]);
    expect(await store.setMembers(UNFINISHED_JOBS_KEY)).toEqual([]);
  });

  it('stores the catalog key when an alias was given, and the default model when none was', async () => {
    const { engine } = build({ env: { DEFAULT_MODEL: 'nb2' } });
    expect(engine.defaultModel.key).toBe('runbase-2');
    const a = await engine.submit(req({ model: 'pro' }));
    const b = await engine.submit(req({ model: '' }));
    expect(a.request.model).toBe('runbase-pro');
    expect(b.request.model).toBe('runbase-2');
  });

  it('refuses a request over the quota with nothing taken', async () => {
    const { engine, quotas, client } = build({ dailyUnits: 10 });
    const err = await engine.submit(req({ resolution: '4K', count: 3 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QuotaExceededError);
    expect((err as QuotaExceededError).userMessage).toContain('this needs 12 units and you have 10 units left');
    expect((await quotas.view(user)).used).toBe(0);
    expect(client.creates).toEqual([]);
  });

  it('refuses at the spend cap and gives the reserved units back', async () => {
    const { engine, quotas } = build({ spendCapUsd: 0.1 });
    await expect(engine.submit(req({ resolution: '4K' }))).rejects.toBeInstanceOf(SpendCapError);
    expect((await quotas.view(user)).used).toBe(0);
    expect(await quotas.spentToday()).toBe(0);
  });

  it('a local reference for Runbase without PUBLIC_URL fails with the sentence naming the fix, uncharged', async () => {
    const { engine, quotas } = build();
    const file = join(dir, 'ref.png');
    await writeFile(file, await renderPng({ width: 8, height: 8, seed: 1 }));
    const err = await engine.submit(req({ references: [{ kind: 'file', path: file, name: 'ref.png' }] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReferenceError);
    expect((err as ReferenceError).code).toBe('REFERENCE_NEEDS_PUBLIC_URL');
    expect((err as ReferenceError).userMessage).toContain('PUBLIC_URL');
    expect((await quotas.view(user)).used).toBe(0);
  });
});

describe('running a job', () => {
  it('persists every state change, the task id before the first poll, and delivers the images', async () => {
    const { engine, client, deliverer } = build();
    const written: string[] = [];
    const set = store.kv.set.bind(store.kv);
    store.kv.set = (async (key: string, value: unknown, ttl?: number) => {
      if (key.startsWith('job:')) written.push((value as JobRecord).state);
      return set(key, value, ttl);
    }) as typeof store.kv.set;
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

  it('emits progress: changes at once, elapsed ticks in between, ending with done', async () => {
    const { engine, client, deliverer } = build();
    client.script = (taskId, poll) =>
      poll < 12 ? { taskId, status: 'running', outputUrls: [] } : { taskId, status: 'succeeded', outputUrls: [`https://cdn.test/out/${taskId}.png`] };
    const job = await engine.submit(req());
    await engine.waitFor(job.id);
    const changes = deliverer.events.filter((e) => e.changed);
    expect(changes.map((e) => `${e.state}/${e.phase}/${e.done}`)).toEqual([
      'queued/queued/0',
      'submitted/generating/0',
      'running/generating/0',
      'running/downloading/0',
      'running/generating/1',
      'succeeded/done/1',
    ]);
    expect(deliverer.events.some((e) => !e.changed && e.phase === 'generating')).toBe(true);
    expect(deliverer.events.every((e) => e.total === 1 && e.jobId === job.id)).toBe(true);
  });

  it('corrects the spend counter to the reported costs (failed Runbase runs cost nothing)', async () => {
    const { engine, quotas, client } = build({ spendCapUsd: 10 });
    client.script = (taskId, poll) =>
      poll < 2
        ? { taskId, status: 'running', outputUrls: [] }
        : taskId === 'task2'
          ? { taskId, status: 'failed', outputUrls: [], costUsd: 0, failure: { code: 'MODERATION_FAILED', message: 'no' } }
          : { taskId, status: 'succeeded', outputUrls: [`https://cdn.test/out/${taskId}.png`], costUsd: 0.05 };
    const job = await engine.submit(req({ count: 2 }));
    expect(await quotas.spentToday()).toBeCloseTo(0.26); // the estimate (2 × 0.13) while running
    const done = await engine.waitFor(job.id);
    expect(done.state).toBe('succeeded');
    expect(await quotas.spentToday()).toBeCloseTo(0.05);
    expect((await quotas.view(user)).used).toBe(1);
  });

  it('keeps the estimate on the spend counter for a create that may have landed, releases it for one surely refused', async () => {
    const { engine, quotas, client } = build({ spendCapUsd: 10 });
    client.createFailures = [
      new ProviderServerError({ provider: 'runbase', status: 500, message: 'boom' }),
      new InvalidRequestError({ provider: 'runbase', status: 400, providerCode: 'invalid_input', message: 'no' }),
    ];
    const done = await engine.waitFor((await engine.submit(req({ count: 2 }))).id);
    expect(done.state).toBe('failed');
    expect((await quotas.view(user)).used).toBe(0); // the user pays for neither
    expect(await quotas.spentToday()).toBeCloseTo(0.13); // the operator may have paid for one
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
    const { engine: next, client: nextClient } = build({ processId: 'second' });
    expect(await next.resume()).toBe(1);
    const done = await next.waitFor(queued.id);
    expect(done.state).toBe('succeeded');
    expect(done.tasks[0]!.error).toBeUndefined();
    expect(nextClient.creates).toHaveLength(1);
  });

  it('a job whose platform has no deliverer stays pending delivery', async () => {
    const { engine } = build();
    const job = await engine.submit(req({ requester: { platform: 'slack', userId: 'U1' } }));
    const done = await engine.waitFor(job.id);
    expect(done.state).toBe('succeeded');
    expect(done.deliveredAt).toBeUndefined();
    expect(await store.setMembers(UNFINISHED_JOBS_KEY)).toEqual([job.id]);
  });

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
});

describe('leases, resume and configuration', () => {
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
    const creates = client.creates.length;
    expect(await engine.resume()).toBe(0);
    expect(client.creates.length).toBe(creates);
    await store.releaseLease('lease:job:otherJob0001', 'someone-else');
    expect(await engine.resume()).toBe(1);
    expect((await engine.waitFor(copy.id)).state).toBe('succeeded');
  });

  it('takes over, on its own, the jobs of a process that died (lease expired), but not one whose delivery gave up', async () => {
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
      await store.lease(`lease:job:${id}`, 'dead-process', 150);
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

  it('settles a job once even when the process died between the refund and recording it', async () => {
    const { engine, quotas, client } = build();
    client.script = (taskId, poll) =>
      poll < 2 ? { taskId, status: 'running', outputUrls: [] } : { taskId, status: 'failed', outputUrls: [], failure: { code: 'TIMEOUT', message: 't' } };
    const job = await engine.submit(req({ count: 2 }));
    const done = await engine.waitFor(job.id);
    expect(done.quota).toMatchObject({ reserved: 2, refunded: 2, settled: true });
    expect((await quotas.view(user)).used).toBe(0);
    // Another job uses 2 units; then the first one reappears as if its `settled` write was lost.
    await quotas.reserve(user, 2);
    const replay: JobRecord = { ...done, quota: { ...done.quota, settled: false, refunded: 0 } };
    delete replay.deliveredAt;
    await store.kv.set(jobKey(job.id), replay);
    await store.setAdd(UNFINISHED_JOBS_KEY, job.id);
    expect(await engine.resume()).toBe(1);
    const again = await engine.waitFor(job.id);
    expect(again.quota.settled).toBe(true);
    // Not refunded a second time: the other job's 2 units are still counted.
    expect((await quotas.view(user)).used).toBe(2);
  });

  it.each([1, 2, 3, 4, 5].flatMap((at) => [{ at, when: 'before' as const }, { at, when: 'after' as const }]))(
    'charges exactly once when the process dies at settlement write $at ($when it lands), then resumes',
    async ({ at, when }) => {
      const { engine, quotas, client } = build();
      // Two images: the first is made (reported cost $0.05), the second fails (Runbase reports $0).
      client.script = (taskId, poll) =>
        poll < 2
          ? { taskId, status: 'running', outputUrls: [] }
          : taskId === 'task1'
            ? { taskId, status: 'succeeded', outputUrls: [`https://cdn.test/out/${taskId}.png`], costUsd: 0.05 }
            : { taskId, status: 'failed', outputUrls: [], costUsd: 0, failure: { code: 'TIMEOUT', message: 't' } };
      const crash = crashAtWrite(store, at, when);
      const job = await engine.submit(req({ count: 2 }));
      const first = await engine.waitFor(job.id); // the run ends: finished, or stopped by the crash
      expect(first.state).toBe('succeeded');
      crash.disarm();
      // The next start finishes what is left (settlement, delivery), from the store alone.
      await engine.resume();
      await engine.waitFor(job.id);
      const stored = (await store.kv.get<JobRecord>(jobKey(job.id)))!;
      expect(stored.quota).toMatchObject({ reserved: 2, refunded: 1, settled: true });
      expect(stored.deliveredAt).toBeDefined();
      // The user paid for the one image made; the operator's spend is what the provider reported.
      expect((await quotas.view(user)).used).toBe(1);
      expect(await quotas.spentToday()).toBeCloseTo(0.05, 9);
      expect(crash.crashed).toBe(true);
    },
  );

  it('a store error in one task does not free the job while its other tasks still poll', async () => {
    const { engine, client } = build({ processId: 'me' });
    // Task 1 fails at once; the write recording its failure is refused by the store.
    client.createFailures = [undefined, new Error('create refused')];
    let polls = 0;
    client.script = (taskId) => ({ taskId, status: polls++ < 15 ? 'running' : 'succeeded', outputUrls: polls > 15 ? [`https://cdn.test/out/${taskId}.png`] : [] });
    const set = store.kv.set.bind(store.kv);
    store.kv.set = (async (key: string, value: unknown, ttl?: number) => {
      const tasks = (value as Partial<JobRecord> | undefined)?.tasks;
      if (tasks?.some((t) => t.error?.detail === 'create refused')) throw new Error('store unavailable');
      return set(key, value, ttl);
    }) as typeof store.kv.set;
    const job = await engine.submit(req({ count: 2 }));
    // Wait until the run lets go of the job (its lease is free).
    while (!(await store.lease(`lease:job:${job.id}`, 'other', 60_000))) await new Promise((r) => setTimeout(r, 5));
    const pollsAtRelease = client.polls.length;
    await new Promise((r) => setTimeout(r, 150));
    // No task of this run is still polling a job another process may now run.
    expect(client.polls.length).toBe(pollsAtRelease);
    expect(client.creates.length).toBe(1);
  });

  it('a store error after a delivery does not deliver the result twice', async () => {
    const { engine, deliverer } = build();
    const set = store.kv.set.bind(store.kv);
    store.kv.set = (async (key: string, value: unknown, ttl?: number) => {
      if ((value as Partial<JobRecord> | undefined)?.deliveredAt !== undefined) throw new Error('store unavailable');
      return set(key, value, ttl);
    }) as typeof store.kv.set;
    const job = await engine.submit(req());
    while (!logLines.some((l) => l.includes('job run failed unexpectedly'))) await new Promise((r) => setTimeout(r, 5));
    expect(deliverer.delivered.map((j) => j.id)).toEqual([job.id]);
    // Not marked delivered in the store: the next start delivers again rather than losing it.
    expect(await store.setMembers(UNFINISHED_JOBS_KEY)).toEqual([job.id]);
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
    await expect(engine.submit(req())).rejects.toThrow(/closed/);
  });

  it('a request accepted while close() runs is kept for the next start, not sent to the provider', async () => {
    const { engine, client } = build();
    const set = store.kv.set.bind(store.kv);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    store.kv.set = (async (key: string, value: unknown, ttl?: number) => {
      if (key === jobKey((value as JobRecord).id) && (value as JobRecord).state === 'queued') await held;
      return set(key, value, ttl);
    }) as typeof store.kv.set;
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
