/**
 * The shared half of the rate budget (shared-buckets.ts), through RateBudget as the engine uses
 * it: the sum over every process on one key stays within the provider's limit
 * (docs/rate-budget.md).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../../src/log.ts';
import { openStore } from '../../../src/engine/open-store.ts';
import { RateBudget } from '../../../src/engine/rate-budget.ts';
import { maxInWindow } from '../../support/index.ts';
import { rng } from '../../support/random.ts';

/** In-memory stand-in for Store.addIfWithin (same contract), counting its calls. */
function memoryCounters() {
  const counters = new Map<string, { value: number; expiresAt: number }>();
  const c = {
    calls: 0,
    failNext: 0,
    async addIfWithin(key: string, delta: number, limit: number, expiresAt: number): Promise<number | null> {
      c.calls++;
      if (c.failNext > 0) {
        c.failNext--;
        throw new Error('store unavailable');
      }
      const live = counters.get(key);
      const current = live && live.expiresAt > Date.now() ? live.value : 0;
      if (current + delta > limit) return null;
      counters.set(key, { value: current + delta, expiresAt });
      return current + delta;
    },
  };
  return c;
}

describe('RateBudget shared through the store', () => {
  beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => vi.useRealTimers());

  /**
   * Two processes on one key, their clocks 200 ms apart (±100 ms), each request reaching the
   * provider 0–300 ms after its grant: 2δ + D = 500 ms = the default margin. Returns the provider's
   * arrival times (true clock) and how long the 300 requests took.
   */
  async function twoProcesses(shared: boolean) {
    const counters = memoryCounters();
    const random = rng(7);
    const arrivals: number[] = [];
    const budgets = [-100, 100].map(
      (skewMs) =>
        new RateBudget({
          requests: 20,
          windowMs: 10_000,
          now: () => Date.now() + skewMs,
          ...(shared ? { shared: { counters, keyId: 'key1' } } : {}),
        }),
    );
    const start = Date.now();
    const all = budgets.flatMap((budget, b) =>
      Array.from({ length: 150 }, (_, i) =>
        budget.acquire((i + b) % 4 === 0 ? 'create' : 'poll').then(() => arrivals.push(Date.now() + random() * 300)),
      ),
    );
    await vi.advanceTimersByTimeAsync(400_000);
    await Promise.all(all);
    arrivals.sort((a, b) => a - b);
    return { arrivals, tookMs: Math.max(...arrivals) - start, counters, budgets };
  }

  it('keeps the sum over two processes within 20 per 10 s at the provider, despite skew and delays', async () => {
    const { arrivals, tookMs, budgets } = await twoProcesses(true);
    expect(arrivals).toHaveLength(300);
    expect(maxInWindow(arrivals, 10_000)).toBeLessThanOrEqual(20);
    expect(budgets[0]!.sharedBuckets).toEqual({ bucketMs: 1_167, perBucket: 2 });
    // ...and uses what the buckets allow: 2 per 1_167 ms, so 300 requests take about 150 buckets.
    expect(tookMs).toBeLessThan(152 * 1_167);
  });

  it('without sharing, the same two processes exceed the provider limit (the gap this closes)', async () => {
    const { arrivals } = await twoProcesses(false);
    expect(maxInWindow(arrivals, 10_000)).toBeGreaterThan(20);
  });

  it('never spins on the store: one call per grant, plus at most one per full bucket and process', async () => {
    const counters = memoryCounters();
    const budgets = [0, 1].map(() => new RateBudget({ requests: 20, windowMs: 10_000, shared: { counters, keyId: 'key1' } }));
    const start = Date.now();
    const all = budgets.flatMap((budget) => Array.from({ length: 40 }, () => budget.acquire('poll')));
    await vi.advanceTimersByTimeAsync(60_000);
    await Promise.all(all);
    const buckets = Math.ceil((Date.now() - start) / 1_167) + 1;
    expect(budgets[0]!.granted + budgets[1]!.granted).toBe(80);
    expect(counters.calls).toBeLessThanOrEqual(80 + 2 * buckets);
    // Idle waiting costs nothing.
    const calls = counters.calls;
    await vi.advanceTimersByTimeAsync(30_000);
    expect(counters.calls).toBe(calls);
  });

  it('makes a restarted process wait for the grants its predecessor made in the same buckets (SQLite store)', async () => {
    const store = await openStore('sqlite://:memory:', { log: createLogger({ level: 'silent' }) });
    try {
      const opts = { requests: 20, windowMs: 10_000, bucketsPerWindow: 4, sharedMarginMs: 0 } as const;
      // k = 4, m = 0: buckets of 2_500 ms allowing 4 each. Start at a bucket boundary.
      await vi.advanceTimersByTimeAsync(2_500 - (Date.now() % 2_500));
      const killed = new RateBudget({ ...opts, shared: { counters: store, keyId: 'key1' } });
      await Promise.all(Array.from({ length: 4 }, () => killed.acquire('poll')));
      // SIGKILL; 1 s later the successor starts and resumes the jobs' overdue polls.
      await vi.advanceTimersByTimeAsync(1_000);
      const restarted = new RateBudget({ ...opts, shared: { counters: store, keyId: 'key1' } });
      const started: number[] = [];
      const polls = Array.from({ length: 5 }, () => restarted.acquire('poll').then(() => started.push(Date.now())));
      await vi.advanceTimersByTimeAsync(10_000);
      await Promise.all(polls);
      const bucketStart = (t: number) => Math.floor(t / 2_500) * 2_500;
      expect(bucketStart(started[0]!)).toBe(bucketStart(Date.now() - 10_000) + 2_500); // the next bucket, not at once
      expect(started.filter((t) => bucketStart(t) === bucketStart(started[0]!))).toHaveLength(4);
      // Another key's budget is not held back.
      const other = new RateBudget({ ...opts, shared: { counters: store, keyId: 'key2' } });
      await other.acquire('create');
      expect(other.granted).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('serves creates before polls, alternating, as unshared', async () => {
    const counters = memoryCounters();
    // k = 1, m = 0, 4 per 1 s: buckets of 1 s allowing 2.
    const budget = new RateBudget({ requests: 4, windowMs: 1_000, reserve: 0, windowPaddingMs: 0, bucketsPerWindow: 1, sharedMarginMs: 0, shared: { counters, keyId: 'k' } });
    await vi.advanceTimersByTimeAsync(1_000 - (Date.now() % 1_000));
    await Promise.all([budget.acquire('poll'), budget.acquire('poll')]);
    const order: string[] = [];
    const track = (kind: 'create' | 'poll', name: string) => budget.acquire(kind).then(() => order.push(name));
    const all = [track('poll', 'p1'), track('create', 'c1'), track('poll', 'p2'), track('create', 'c2'), track('create', 'c3')];
    await vi.advanceTimersByTimeAsync(0);
    expect(budget.available()).toBe(0);
    expect(budget.msUntilAvailable()).toBe(3_000); // 5 waiting: 2 go next bucket, 2 the one after, then 1 free
    await vi.advanceTimersByTimeAsync(5_000);
    await Promise.all(all);
    expect(order).toEqual(['c1', 'p1', 'c2', 'p2', 'c3']);
  });

  it('fails closed when the store fails: reports it, and tries again at the next bucket', async () => {
    const counters = memoryCounters();
    const errors: unknown[] = [];
    const budget = new RateBudget({
      requests: 20,
      windowMs: 10_000,
      shared: { counters, keyId: 'k', onError: (err) => errors.push(err) },
    });
    counters.failNext = 3;
    let granted = false;
    const p = budget.acquire('create').then(() => (granted = true));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(granted).toBe(false);
    expect(errors.length).toBeGreaterThanOrEqual(1);
    await vi.advanceTimersByTimeAsync(4 * 1_167);
    await p;
    expect(granted).toBe(true);
    expect(errors).toHaveLength(3);
    expect(counters.calls).toBe(4); // one try per bucket, not a spin
  });

  it('does not spin on the store when the clock steps back into a full bucket', async () => {
    const B = 1_167; // k = 9, m = 500 ms for 20 / 10 s
    const t0 = Math.ceil(Date.now() / B) * B + 10; // inside bucket j
    const j = Math.floor(t0 / B);
    let t = t0 + B; // bucket j + 1
    const counters = memoryCounters();
    const now = () => t;
    // Bucket j is already full (other processes).
    await counters.addIfWithin(`ratebudget:k:${B}:${j}`, 2, 2, t0 + 20_000);
    counters.calls = 0;
    const budget = new RateBudget({ requests: 20, windowMs: 10_000, now, shared: { counters, keyId: 'k' } });
    await budget.acquire('poll'); // granted in bucket j + 1
    expect(counters.calls).toBe(1);
    t = t0; // the wall clock steps back 1.2 s (NTP), into bucket j
    let granted = false;
    void budget.acquire('poll').then(() => (granted = true));
    for (let i = 0; i < 50; i++) await Promise.resolve();
    // One refused call, then a sleep until the next bucket: not a microtask spin.
    expect(counters.calls).toBeLessThanOrEqual(2);
    t = t0 + B;
    await vi.advanceTimersByTimeAsync(B);
    expect(granted).toBe(true);
  });

  it('a store that hangs counts as failed once the bucket is over, so requests are not held forever', async () => {
    const errors: unknown[] = [];
    let calls = 0;
    const hanging = {
      addIfWithin: (): Promise<number | null> => {
        calls++;
        return calls === 1 ? new Promise<number | null>(() => undefined) : Promise.resolve(1);
      },
    };
    const budget = new RateBudget({ requests: 20, windowMs: 10_000, shared: { counters: hanging, keyId: 'k', onError: (err) => errors.push(err) } });
    let granted = false;
    void budget.acquire('create').then(() => (granted = true));
    await vi.advanceTimersByTimeAsync(1_167 + 10);
    expect(errors).toHaveLength(1);
    expect(String(errors[0])).toMatch(/did not answer within the rate bucket/);
    await vi.advanceTimersByTimeAsync(1_167);
    expect(granted).toBe(true);
    expect(calls).toBe(2);
  });

  it('keeps granting when its error reporter throws', async () => {
    const counters = memoryCounters();
    counters.failNext = 1;
    const budget = new RateBudget({
      requests: 20,
      windowMs: 10_000,
      shared: {
        counters,
        keyId: 'k',
        onError: () => {
          throw new Error('logger broke');
        },
      },
    });
    const p = budget.acquire('poll');
    await vi.advanceTimersByTimeAsync(2 * 1_167);
    await expect(p).resolves.toBeUndefined();
  });

  it('keeps a token whose waiter left while the store answered, for the next request in that bucket', async () => {
    const counters = memoryCounters();
    let release: (() => void) | undefined;
    const slow = {
      addIfWithin: async (key: string, delta: number, limit: number, expiresAt: number) => {
        await new Promise<void>((r) => (release = r));
        return counters.addIfWithin(key, delta, limit, expiresAt);
      },
    };
    const budget = new RateBudget({ requests: 20, windowMs: 10_000, shared: { counters: slow, keyId: 'k' } });
    await vi.advanceTimersByTimeAsync(1_167 - (Date.now() % 1_167));
    const ctrl = new AbortController();
    const left = budget.acquire('poll', ctrl.signal);
    await vi.advanceTimersByTimeAsync(0);
    ctrl.abort(new Error('job canceled'));
    await expect(left).rejects.toThrow('job canceled');
    release?.();
    await vi.advanceTimersByTimeAsync(0);
    expect(counters.calls).toBe(1);
    // The next request in the same bucket gets the token already counted, without asking again.
    await budget.acquire('create');
    expect(counters.calls).toBe(1);
    expect(budget.granted).toBe(1);
  });

  it('refuses a bucket count that leaves no request per bucket', () => {
    const counters = memoryCounters();
    expect(() => new RateBudget({ requests: 20, windowMs: 10_000, bucketsPerWindow: 20, shared: { counters, keyId: 'k' } })).toThrow(RangeError);
    expect(() => new RateBudget({ requests: 20, windowMs: 10_000, bucketsPerWindow: 0, shared: { counters, keyId: 'k' } })).toThrow(RangeError);
    expect(new RateBudget({ requests: 20, windowMs: 10_000, bucketsPerWindow: 19, shared: { counters, keyId: 'k' } }).sharedBuckets).toEqual({
      bucketMs: 553,
      perBucket: 1,
    });
  });
});
