/**
 * The engine's unit-test fixture: a scripted in-test provider client, an in-memory SQLite store,
 * a fake CDN for results, and `build()` for an engine on them. A test file calls
 * `useEngineFixture()` once; `dir`, `store` and `logLines` are fresh for every test (live
 * bindings).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { MockAgent } from 'undici';
import { afterEach, beforeEach } from 'vitest';
import { parseConfig } from '../../../src/config.ts';
import { engineSettingsOf } from '../../../src/app.ts';
import { createEngine, type EngineSettings, type EngineTiming } from '../../../src/engine/engine.ts';
import type { Deliverer, JobRecord, ProgressEvent } from '../../../src/engine/job.ts';
import { openStore } from '../../../src/engine/open-store.ts';
import { Quotas } from '../../../src/engine/quota.ts';
import type { Store } from '../../../src/engine/store.ts';
import type { CreatedTask, ProviderClient, ProviderTraits, RequestOptions, TaskInput, TaskSnapshot } from '../../../src/providers/types.ts';
import { RUNBASE_TRAITS } from '../../../src/providers/runbase/client.ts';
import { RUNBLOB_TRAITS } from '../../../src/providers/runblob/client.ts';
import type { ProviderName } from '../../../src/engine/models.ts';
import { renderPng } from '../../fakes/png.ts';
import type { RecentResults } from '../../../src/engine/recent-results.ts';

export const TIMING: EngineTiming = {
  deadlineMs: 3_000,
  progressTickMs: 40,
  deliveryRetryDelaysMs: [10],
  leaseTtlMs: 2_000,
  createRateLimitedBackoffMs: 20,
  recordWriteRetry: { firstDelayMs: 10, maxDelayMs: 20, giveUpMs: 100 },
  expectedMs: () => 30,
  rateLimits: { runbase: { requests: 1000, windowMs: 1000 }, runblob: { requests: 1000, windowMs: 1000 } },
  scheduler: { minIntervalMs: 10, maxIntervalMs: 20, tailCapMs: 30, errorBackoffMs: 10, firstPollFraction: 0.1 },
};

/** A two-image job's script: the first image is made (reported cost $0.05), the second fails (Runbase reports $0). */
export const FIRST_MADE_SECOND_FAILED = (taskId: string, poll: number): TaskSnapshot =>
  poll < 2
    ? { taskId, status: 'running', outputUrls: [] }
    : taskId === 'task1'
      ? { taskId, status: 'succeeded', outputUrls: [`https://cdn.test/out/${taskId}.png`], costUsd: 0.05 }
      : { taskId, status: 'failed', outputUrls: [], costUsd: 0, failure: { code: 'TIMEOUT', message: 't' } };

/** A provider whose answers the test scripts. Default: pending → running → succeeded. */
export class ScriptedClient implements ProviderClient {
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
  /** `traits` default to the real client's of that name. */
  constructor(name: ProviderName = 'runbase', traits?: Partial<ProviderTraits>) {
    this.name = name;
    this.traits = { ...(name === 'runbase' ? RUNBASE_TRAITS : RUNBLOB_TRAITS), ...traits };
  }
  async createTask(input: TaskInput, opts?: RequestOptions): Promise<CreatedTask> {
    await opts?.gate?.('create', opts.signal);
    opts?.signal?.throwIfAborted(); // as the real clients: an aborted request is never sent
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

export function recorder(): Deliverer & { delivered: JobRecord[]; events: ProgressEvent[]; forgotten: string[] } {
  const d = {
    delivered: [] as JobRecord[],
    events: [] as ProgressEvent[],
    forgotten: [] as string[],
    progress(_job: JobRecord, e: ProgressEvent) {
      d.events.push(e);
    },
    forget(jobId: string) {
      d.forgotten.push(jobId);
    },
    async deliver(job: JobRecord) {
      d.delivered.push(job);
    },
  };
  return d;
}

/**
 * Simulates a process dying during settlement: counts the store writes made after the record
 * with every task's outcome is written, and makes the `at`-th one fail once, either before it lands
 * (nothing written) or after (written, but the process never learns it). The run stops there,
 * as a killed process would, and the job stays unfinished in the store for the next start.
 */
/**
 * Hooks every write of a job record to `target`: a run's (Store.setWhileLeased) and any other
 * (kv.set of a job key). `hook` sees the record, and lets it land by calling `write` (or throws).
 */
export function onJobWrite(target: Store, hook: (job: JobRecord, write: () => Promise<unknown>) => Promise<unknown>): void {
  const set = target.kv.set.bind(target.kv);
  target.kv.set = (async (key: string, value: unknown, ttl?: number) =>
    key.startsWith('job:') ? hook(value as JobRecord, () => set(key, value, ttl)) : set(key, value, ttl)) as typeof target.kv.set;
  const setWhileLeased = target.setWhileLeased.bind(target);
  target.setWhileLeased = (key, value, ...rest) => hook(value as JobRecord, () => setWhileLeased(key, value, ...rest)) as Promise<boolean>;
}

export function crashAtWrite(target: Store, at: number, when: 'before' | 'after') {
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
  for (const name of ['add', 'addOnce', 'addMany', 'setIfAbsent', 'setAdd', 'setRemove']) wrap(target, name);
  // Armed by the write that records the last task's outcome: the settlement's writes come next.
  const lastOutcome = (args: unknown[]) => {
    const tasks = (args[1] as Partial<JobRecord> | undefined)?.tasks;
    return tasks !== undefined && tasks.every((t) => t.status === 'failed' || (t.status === 'succeeded' && t.image !== undefined));
  };
  wrap(target.kv, 'set', lastOutcome);
  wrap(target, 'setWhileLeased', lastOutcome);
  return {
    get crashed() {
      return crashed;
    },
    disarm() {
      disarmed = true;
    },
  };
}

export let dir: string;
export let store: Store;
export let logLines: string[];
let agent: MockAgent;
const closers: Array<() => Promise<void>> = [];

/** Registers the fixture's per-test set-up and tear-down in the calling test file. */
const sharedStore = () => store;

/**
 * `target` as one process sees it through a connection that can drop: after `cut()` every call
 * waits (as a Redis client queues commands while it reconnects) until `reconnect()`, then runs in
 * the order it was made.
 */
export function cutOffStore(target: Store): { store: Store; cut(): void; reconnect(): void } {
  let down: PromiseWithResolvers<void> | undefined;
  const held = <T extends object>(obj: T): T =>
    new Proxy(obj, {
      get(t, p) {
        const v: unknown = Reflect.get(t, p);
        if (p === 'kv') return kv;
        if (typeof v !== 'function') return v;
        return async (...args: unknown[]) => {
          if (down) await down.promise;
          return (v as (...a: unknown[]) => unknown).apply(t, args);
        };
      },
    });
  const kv = held(target.kv);
  return {
    store: held(target),
    cut() {
      down ??= Promise.withResolvers<void>();
    },
    reconnect() {
      down?.resolve();
      down = undefined;
    },
  };
}

export function useEngineFixture(): void {
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
    agent.get('https://cdn.test').intercept({ path: /\/out\/.*/, method: 'GET' }).reply(200, png, { headers: { 'content-type': 'image/png', 'content-length': String(png.length) } }).persist();
    setup.log = log;
  });

  afterEach(async () => {
    while (closers.length) await closers.pop()!();
    await store.close();
    await agent.close();
    await rm(dir, { recursive: true, force: true });
  });
}

const setup = {
  log: pino({ level: 'silent' }),
};

export function build(
  o: {
    env?: Record<string, string>;
    /** Settings beyond what `env` gives (e.g. serving references). */
    settings?: Partial<EngineSettings>;
    clients?: ProviderClient[];
    dailyUnits?: number;
    spendCapUsd?: number;
    processId?: string;
    timing?: EngineTiming;
    /** This process's view of the store (default the shared one; see cutOffStore). */
    store?: Store;
    /** Where downloaded results' bytes are handed over (default: not kept). */
    recentResults?: RecentResults;
  } = {},
) {
  const store = o.store ?? sharedStore();
  const config = parseConfig({ RUNBASE_API_KEY: 'sk-unit', DATA_DIR: join(dir, 'data'), ...o.env });
  const quotas = new Quotas(store, {
    dailyUnits: o.dailyUnits ?? 10,
    costs: { '1K': 1, '2K': 2, '4K': 4 },
    exemptUsers: [],
    spendCapUsd: o.spendCapUsd,
  });
  const clients = o.clients ?? [new ScriptedClient()];
  const engine = createEngine({
    ...engineSettingsOf(config, { http: false }),
    ...o.settings,
    store,
    quotas,
    providers: clients,
    log: setup.log,
    dispatcher: agent,
    timing: o.timing ?? TIMING,
    ...(o.processId ? { processId: o.processId } : {}),
    ...(o.recentResults ? { recentResults: o.recentResults } : {}),
  });
  closers.push(() => engine.close());
  const deliverer = recorder();
  engine.setDeliverer('discord', deliverer);
  return { engine, quotas, client: clients[0] as ScriptedClient, deliverer };
}

export const user = { platform: 'discord' as const, userId: 'u1' };
export const req = (over: Record<string, unknown> = {}) => ({
  prompt: 'a fox',
  model: 'runbase-pro',
  ratio: '1:1' as const,
  resolution: '1K' as const,
  count: 1,
  requester: user,
  ...over,
});

