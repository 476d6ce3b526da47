import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RateBudget } from '../../../src/engine/rate-budget.ts';
import type { RequestGate } from '../../../src/providers/types.ts';
import { maxInWindow } from '../../support/index.ts';

describe('RateBudget', () => {
  beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => vi.useRealTimers());

  it('keeps a safety margin by default: 18 of 20 per 10 s, window padded by 250 ms', () => {
    const budget = new RateBudget({ requests: 20, windowMs: 10_000 });
    expect(budget.limit).toBe(18);
    expect(budget.windowMs).toBe(10_250);
    expect(budget.available()).toBe(18);
  });

  it('acquire works detached, as a provider client RequestGate', async () => {
    const budget = new RateBudget({ requests: 20, windowMs: 10_000 });
    const gate: RequestGate = budget.acquire;
    await gate('poll');
    await gate('create');
    expect(budget.granted).toBe(2);
    expect(budget.available()).toBe(16);
  });

  it('never lets more than the limit start in any window, with 100 concurrent callers', async () => {
    const budget = new RateBudget({ requests: 20, windowMs: 10_000 });
    const started: number[] = [];
    const all = Array.from({ length: 100 }, (_, i) =>
      budget.acquire(i % 3 === 0 ? 'create' : 'poll').then(() => started.push(Date.now())),
    );
    await vi.advanceTimersByTimeAsync(70_000);
    await Promise.all(all);
    expect(started).toHaveLength(100);
    started.sort((a, b) => a - b);
    // What the provider enforces (20 per 10 s) is never reached, and our own limit holds too.
    expect(maxInWindow(started, 10_000)).toBeLessThanOrEqual(18);
    expect(maxInWindow(started, 10_250)).toBeLessThanOrEqual(18);
    // ...and the budget is actually used: 100 requests take about 100/18 windows, not much more.
    expect(started.at(-1)! - started[0]!).toBeLessThan(6 * 10_250);
  });

  it('enforces the exact provider limit when the margin is turned off', async () => {
    const budget = new RateBudget({ requests: 20, windowMs: 10_000, reserve: 0, windowPaddingMs: 0 });
    const started: number[] = [];
    const all = Array.from({ length: 45 }, () => budget.acquire('poll').then(() => started.push(Date.now())));
    await vi.advanceTimersByTimeAsync(25_000);
    await Promise.all(all);
    started.sort((a, b) => a - b);
    expect(maxInWindow(started, 10_000)).toBe(20);
    expect(started.filter((t) => t === started[0])).toHaveLength(20); // the first 20 go at once
  });

  it('serves creates before polls, alternating once polls have waited behind a create', async () => {
    const budget = new RateBudget({ requests: 2, windowMs: 1_000, reserve: 0, windowPaddingMs: 0 });
    await budget.acquire('poll');
    await budget.acquire('poll');
    const order: string[] = [];
    const track = (kind: 'create' | 'poll', name: string) => budget.acquire(kind).then(() => order.push(name));
    const all = [track('poll', 'p1'), track('create', 'c1'), track('poll', 'p2'), track('create', 'c2'), track('create', 'c3')];
    expect(budget.available()).toBe(0);
    expect(budget.waiting('create')).toBe(3);
    await vi.advanceTimersByTimeAsync(5_000);
    await Promise.all(all);
    expect(order).toEqual(['c1', 'p1', 'c2', 'p2', 'c3']);
  });

  it('can put creates strictly first', async () => {
    const budget = new RateBudget({ requests: 1, windowMs: 1_000, reserve: 0, windowPaddingMs: 0, maxConsecutiveCreates: Infinity });
    await budget.acquire('poll');
    const order: string[] = [];
    const all = [
      budget.acquire('poll').then(() => order.push('p1')),
      budget.acquire('create').then(() => order.push('c1')),
      budget.acquire('create').then(() => order.push('c2')),
    ];
    await vi.advanceTimersByTimeAsync(5_000);
    await Promise.all(all);
    expect(order).toEqual(['c1', 'c2', 'p1']);
  });

  it('rejects an aborted waiter with the signal reason and gives its turn to the next', async () => {
    const budget = new RateBudget({ requests: 1, windowMs: 1_000, reserve: 0, windowPaddingMs: 0 });
    await budget.acquire('create');
    const ctrl = new AbortController();
    const aborted = budget.acquire('create', ctrl.signal);
    const next = budget.acquire('poll');
    ctrl.abort(new Error('job canceled'));
    await expect(aborted).rejects.toThrow('job canceled');
    expect(budget.waiting('create')).toBe(0);
    await vi.advanceTimersByTimeAsync(1_000);
    await expect(next).resolves.toBeUndefined();
    expect(budget.granted).toBe(2);
  });

  it('reports when a token frees, and pauses after an unexpected 429', async () => {
    const budget = new RateBudget({ requests: 2, windowMs: 1_000, reserve: 0, windowPaddingMs: 0 });
    await budget.acquire('poll');
    vi.advanceTimersByTime(300);
    await budget.acquire('poll');
    expect(budget.available()).toBe(0);
    expect(budget.msUntilAvailable()).toBe(700);
    vi.advanceTimersByTime(700);
    expect(budget.available()).toBe(1);
    budget.pauseFor(5_000);
    expect(budget.available()).toBe(0);
    let granted = false;
    const p = budget.acquire('create').then(() => (granted = true));
    await vi.advanceTimersByTimeAsync(4_900);
    expect(granted).toBe(false);
    await vi.advanceTimersByTimeAsync(200);
    await p;
    expect(granted).toBe(true);
  });

});
