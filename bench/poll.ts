/**
 * `npm run bench`, first part (issue 2 item 16): how well the bot waits for Runbase tasks.
 *
 * A simulated Runbase key (20 requests / 10 s sliding window over accepted requests, 429
 * RATE_LIMITED beyond it, 40–150 ms network latency each way) runs N concurrent jobs on a virtual
 * clock, twice with the same jobs: (a) PollScheduler + RateBudget, as the engine wires them, and
 * (b) naive fixed 2 s polling per job. Creates count in both.
 *
 * Job shape: jobs arrive uniformly over the first 10 s; each uses one of three model classes
 * whose typical duration is 10 s, 15 s or 22 s (the engine passes that as expectedMs), and the
 * actual duration is log-normal around it (σ = 0.2) clipped to 7–30 s. Each N is repeated in rounds
 * so every row has at least 200 jobs. The virtual clock makes the run take seconds, not minutes;
 * CPU is measured for real (process.cpuUsage) and includes the simulated provider, equal in both.
 *
 * Run alone: `node bench/poll.ts` (Node ≥ 22.18, e.g. `node_modules/.bin/node bench/poll.ts`).
 */
import { pathToFileURL } from 'node:url';
import { PollScheduler } from '../src/engine/poll-scheduler.ts';
import { RateBudget } from '../src/engine/rate-budget.ts';
import { RUNBASE_REQUESTS_PER_WINDOW, RUNBASE_WINDOW_MS } from '../src/providers/runbase/client.ts';
import { RateLimitedError } from '../src/providers/errors.ts';
// Deterministic, so both strategies see the same jobs.
import { rng } from '../test/support/random.ts';
import type { TaskSnapshot } from '../src/providers/types.ts';

const NAIVE_POLL_INTERVAL_MS = 2_000;
const ARRIVAL_SPREAD_MS = 10_000;
const MIN_JOBS_PER_ROW = 200;
const JOB_CLASSES_MS = [10_000, 15_000, 22_000];
const DURATION_SIGMA = 0.2;
const MIN_DURATION_MS = 7_000;
const MAX_DURATION_MS = 30_000;

function gaussian(random: () => number): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** A discrete-event clock: time jumps to the next timer once every promise has settled. */
class VirtualClock {
  now = 0;
  #seq = 0;
  #heap: Timer[] = [];

  setTimer = (fn: () => void, ms: number): Timer => {
    const t: Timer = { at: this.now + Math.max(0, ms), seq: this.#seq++, fn, cancelled: false };
    this.#push(t);
    return t;
  };

  clearTimer = (handle: unknown): void => {
    (handle as Timer).cancelled = true;
  };

  sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const t = this.setTimer(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        this.clearTimer(t);
        resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });

  /** Advances time until `done()` or no timer is left. */
  async run(done: () => boolean): Promise<void> {
    for (;;) {
      await new Promise<void>((r) => setImmediate(r)); // let every pending promise chain settle
      if (done()) return;
      const t = this.#pop();
      if (!t) return;
      if (t.cancelled) continue;
      this.now = t.at;
      t.fn();
    }
  }

  #less(a: Timer, b: Timer) {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }
  #push(t: Timer) {
    const h = this.#heap;
    h.push(t);
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!this.#less(h[i] as Timer, h[p] as Timer)) break;
      [h[i], h[p]] = [h[p] as Timer, h[i] as Timer];
      i = p;
    }
  }
  #pop(): Timer | undefined {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.#less(h[l] as Timer, h[m] as Timer)) m = l;
        if (r < h.length && this.#less(h[r] as Timer, h[m] as Timer)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m] as Timer, h[i] as Timer];
        i = m;
      }
    }
    return top;
  }
}

/** Runbase as the bot sees it: create and get, 20 accepted requests per sliding 10 s, 429 beyond. */
class SimulatedRunbase {
  requests = 0;
  rateLimited = 0;
  #accepted: number[] = [];
  #tasks = new Map<string, number>();
  #next = 0;
  readonly #clock: VirtualClock;
  readonly #random: () => number;

  constructor(clock: VirtualClock, random: () => number) {
    this.#clock = clock;
    this.#random = random;
  }

  #latency = () => this.#clock.sleep(40 + this.#random() * 110);

  async #arrive(): Promise<void> {
    await this.#latency();
    this.requests++;
    const now = this.#clock.now;
    while (this.#accepted.length && (this.#accepted[0] as number) + RUNBASE_WINDOW_MS <= now) this.#accepted.shift();
    if (this.#accepted.length >= RUNBASE_REQUESTS_PER_WINDOW) {
      this.rateLimited++;
      await this.#latency();
      throw new RateLimitedError({ provider: 'runbase', status: 429, providerCode: 'RATE_LIMITED', message: 'rate limited' });
    }
    this.#accepted.push(now);
  }

  /** Returns the task id and the server time it will complete. */
  async create(durationMs: number): Promise<{ taskId: string; doneAt: number }> {
    await this.#arrive();
    const taskId = `run_${++this.#next}`;
    const doneAt = this.#clock.now + durationMs;
    this.#tasks.set(taskId, doneAt);
    await this.#latency();
    return { taskId, doneAt };
  }

  async get(taskId: string): Promise<TaskSnapshot> {
    await this.#arrive();
    const doneAt = this.#tasks.get(taskId) ?? Infinity;
    const status = this.#clock.now >= doneAt ? 'succeeded' : 'running';
    await this.#latency();
    return { taskId, status, outputUrls: status === 'succeeded' ? ['https://runbase.net/files/generated/x.png'] : [] };
  }
}

interface JobPlan {
  arriveAt: number;
  expectedMs: number;
  durationMs: number;
}

function planJobs(n: number, seed: number): JobPlan[] {
  const random = rng(seed);
  return Array.from({ length: n }, () => {
    const expectedMs = JOB_CLASSES_MS[Math.floor(random() * JOB_CLASSES_MS.length)] as number;
    const durationMs = Math.min(MAX_DURATION_MS, Math.max(MIN_DURATION_MS, expectedMs * Math.exp(DURATION_SIGMA * gaussian(random))));
    return { arriveAt: random() * ARRIVAL_SPREAD_MS, expectedMs, durationMs };
  });
}

interface RoundResult {
  requests: number;
  rateLimited: number;
  delaysMs: number[];
  /** Job arrival → result known (what the user waits). */
  totalsMs: number[];
  jobs: number;
}

/** Resolves with the detection delay: completion at the provider → known to the bot. */
type Strategy = (clock: VirtualClock, sim: SimulatedRunbase, job: JobPlan) => Promise<number>;

/** Runs `plans` with `strategy`; each job resolves with the time its completion became known. */
async function runRound(plans: JobPlan[], seed: number, makeStrategy: (clock: VirtualClock) => Strategy & { close?: () => void }): Promise<RoundResult> {
  const clock = new VirtualClock();
  const sim = new SimulatedRunbase(clock, rng(seed ^ 0x9e3779b9));
  const strategy = makeStrategy(clock);
  const delaysMs: number[] = [];
  const totalsMs: number[] = [];
  let finished = 0;
  for (const plan of plans) {
    clock.setTimer(() => {
      void strategy(clock, sim, plan).then((delay) => {
        delaysMs.push(delay);
        totalsMs.push(clock.now - plan.arriveAt);
        finished++;
      });
    }, plan.arriveAt);
  }
  await clock.run(() => finished === plans.length);
  strategy.close?.();
  if (finished !== plans.length) throw new Error(`bench stalled: ${finished}/${plans.length} jobs finished`);
  return { requests: sim.requests, rateLimited: sim.rateLimited, delaysMs, totalsMs, jobs: plans.length };
}

/** The store's addIfWithin, in memory (one process, as with the embedded SQLite store). */
function memoryCounters(now: () => number): { addIfWithin(key: string, delta: number, limit: number, expiresAt: number): Promise<number | null> } {
  const counters = new Map<string, { value: number; expiresAt: number }>();
  return {
    addIfWithin(key, delta, limit, expiresAt) {
      const held = counters.get(key);
      const value = held && held.expiresAt > now() ? held.value : 0;
      if (value + delta > limit) return Promise.resolve(null);
      counters.set(key, { value: value + delta, expiresAt });
      return Promise.resolve(value + delta);
    },
  };
}

/** (a) The engine's way: every request through the key's RateBudget, polls timed by the PollScheduler. */
function scheduled(clock: VirtualClock): Strategy & { close: () => void } {
  const budget = new RateBudget({
    requests: RUNBASE_REQUESTS_PER_WINDOW,
    windowMs: RUNBASE_WINDOW_MS,
    now: () => clock.now,
    sleep: clock.sleep,
    // As the engine wires it: tokens also come from the store's shared buckets (here in memory).
    shared: { counters: memoryCounters(() => clock.now), keyId: 'bench' },
  });
  const scheduler = new PollScheduler({ budget, now: () => clock.now, setTimer: clock.setTimer, clearTimer: clock.clearTimer });
  const strategy = async (_clock: VirtualClock, sim: SimulatedRunbase, job: JobPlan) => {
    let created: { taskId: string; doneAt: number } | undefined;
    for (let attempt = 0; !created; attempt++) {
      try {
        await budget.acquire('create');
        created = await sim.create(job.durationMs);
      } catch (err) {
        if (!(err instanceof RateLimitedError)) throw err;
        await clock.sleep(1_000 * 2 ** Math.min(attempt, 4));
      }
    }
    const { taskId, doneAt } = created;
    await scheduler.watch(
      taskId,
      async () => {
        await budget.acquire('poll');
        return sim.get(taskId);
      },
      { expectedMs: job.expectedMs, startedAt: clock.now },
    );
    return clock.now - doneAt;
  };
  return Object.assign(strategy, { close: () => scheduler.close() });
}

/** (b) Fixed 2 s polling per job, as the providers' example clients do; a 429 just waits for the next tick. */
function naive(): Strategy {
  return async (clock, sim, job) => {
    let created: { taskId: string; doneAt: number } | undefined;
    while (!created) {
      try {
        created = await sim.create(job.durationMs);
      } catch (err) {
        if (!(err instanceof RateLimitedError)) throw err;
        await clock.sleep(NAIVE_POLL_INTERVAL_MS);
      }
    }
    for (;;) {
      await clock.sleep(NAIVE_POLL_INTERVAL_MS);
      try {
        const snap = await sim.get(created.taskId);
        if (snap.status === 'succeeded' || snap.status === 'failed') return clock.now - created.doneAt;
      } catch (err) {
        if (!(err instanceof RateLimitedError)) throw err;
      }
    }
  };
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

export interface PollBenchRow {
  n: number;
  strategy: 'scheduler' | 'fixed 2 s';
  jobs: number;
  requestsPerJob: number;
  medianDelayS: number;
  p95DelayS: number;
  medianTotalS: number;
  rateLimited: number;
  cpuMsPerJob: number;
}

async function measure(n: number, strategyName: PollBenchRow['strategy']): Promise<PollBenchRow> {
  const rounds = Math.max(1, Math.ceil(MIN_JOBS_PER_ROW / n));
  let requests = 0;
  let rateLimited = 0;
  let jobs = 0;
  const delays: number[] = [];
  const totals: number[] = [];
  const cpuBefore = process.cpuUsage();
  for (let round = 0; round < rounds; round++) {
    const seed = n * 1000 + round;
    const plans = planJobs(n, seed);
    const r = await runRound(plans, seed, strategyName === 'scheduler' ? scheduled : naive);
    requests += r.requests;
    rateLimited += r.rateLimited;
    jobs += r.jobs;
    delays.push(...r.delaysMs);
    totals.push(...r.totalsMs);
  }
  const cpu = process.cpuUsage(cpuBefore);
  delays.sort((a, b) => a - b);
  totals.sort((a, b) => a - b);
  return {
    n,
    strategy: strategyName,
    jobs,
    requestsPerJob: requests / jobs,
    medianDelayS: quantile(delays, 0.5) / 1000,
    p95DelayS: quantile(delays, 0.95) / 1000,
    medianTotalS: quantile(totals, 0.5) / 1000,
    rateLimited,
    cpuMsPerJob: (cpu.user + cpu.system) / 1000 / jobs,
  };
}

/** Memory held per in-flight watched task: RSS and heap growth while 10,000 tasks are watched. */
async function memoryPer1000InFlight(): Promise<{ rssMb: number; heapMb: number }> {
  const watched = 10_000;
  const clock = new VirtualClock();
  const budget = new RateBudget({ requests: 20, windowMs: 10_000, now: () => clock.now, sleep: clock.sleep });
  const scheduler = new PollScheduler({ budget, now: () => clock.now, setTimer: clock.setTimer, clearTimer: clock.clearTimer });
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = process.memoryUsage();
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < watched; i++) {
    const taskId = `run_${i}`;
    const poll = async (): Promise<TaskSnapshot> => ({ taskId, status: 'running', outputUrls: [] });
    pending.push(scheduler.watch(taskId, poll, { expectedMs: 20_000, startedAt: clock.now }).catch(() => undefined));
  }
  await new Promise<void>((r) => setImmediate(r));
  gc?.();
  const after = process.memoryUsage();
  scheduler.close();
  await Promise.all(pending);
  const per1000 = (bytes: number) => Math.max(0, bytes) / (watched / 1000) / (1024 * 1024);
  return { rssMb: per1000(after.rss - before.rss), heapMb: per1000(after.heapUsed - before.heapUsed) };
}

const fmt = (x: number, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : '—');

/** Runs the whole comparison and returns it as a markdown table (plus a short legend). */
export async function runPollBench(sizes: readonly number[] = [3, 10, 50, 200]): Promise<string> {
  const rows: PollBenchRow[] = [];
  // Warm-up (JIT), so the CPU column of the first row is comparable with the others.
  await measure(10, 'scheduler');
  await measure(10, 'fixed 2 s');
  for (const n of sizes) {
    rows.push(await measure(n, 'scheduler'));
    rows.push(await measure(n, 'fixed 2 s'));
  }
  const mem = await memoryPer1000InFlight();
  const lines = [
    '| concurrent jobs | strategy | jobs measured | requests / job | median detection delay (s) | p95 detection delay (s) | median job time (s) | 429s received | CPU ms / job |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.n} | ${r.strategy} | ${r.jobs} | ${fmt(r.requestsPerJob)} | ${fmt(r.medianDelayS)} | ${fmt(r.p95DelayS)} | ${fmt(r.medianTotalS, 1)} | ${r.rateLimited} | ${fmt(r.cpuMsPerJob, 3)} |`,
    ),
    '',
    `Memory per 1,000 in-flight watched tasks (scheduler state): RSS +${fmt(mem.rssMb)} MB, heap +${fmt(mem.heapMb)} MB.`,
    '',
    'Simulated Runbase key: 20 requests / 10 s (sliding window), 429 beyond; 40–150 ms latency each way; virtual clock.',
    'Jobs arrive over 10 s; durations log-normal (σ 0.2) around 10/15/22 s by model class, clipped to 7–30 s; creates counted.',
    'Detection delay: task completion at the provider → terminal status known to the bot; job time: job arrival → result known.',
    'N = 3 is the row where the budget binds for neither strategy. CPU includes the simulated provider.',
  ];
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const sizes = process.argv.slice(2).map(Number).filter((x) => x > 0);
  console.log(await runPollBench(sizes.length ? sizes : undefined));
}
