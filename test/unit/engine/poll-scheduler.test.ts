import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_POLL_PLAN } from '../../../src/engine/poll-plan.ts';
import { PollScheduler, SchedulerClosedError } from '../../../src/engine/poll-scheduler.ts';
import { RateBudget } from '../../../src/engine/rate-budget.ts';
import { ProviderServerError, RateLimitedError, TaskNotFoundError } from '../../../src/providers/errors.ts';
import type { TaskSnapshot } from '../../../src/providers/types.ts';
import { maxInWindow } from '../../support/index.ts';

/** A fake provider key: tasks finish at given times; every poll passes the budget gate like the real client. */
function fakeProvider(budget: RateBudget) {
  const doneAt = new Map<string, number>();
  const polls: { taskId: string; at: number }[] = [];
  const pollFor = (taskId: string) => async (): Promise<TaskSnapshot> => {
    await budget.acquire('poll');
    polls.push({ taskId, at: Date.now() });
    const done = Date.now() >= (doneAt.get(taskId) ?? Infinity);
    return { taskId, status: done ? 'succeeded' : 'running', outputUrls: done ? [`https://cdn.test/${taskId}.png`] : [] };
  };
  return { doneAt, polls, pollFor };
}

describe('PollScheduler', () => {
  beforeEach(() => vi.useFakeTimers({ now: 5_000_000 }));
  afterEach(() => vi.useRealTimers());

  it('does not poll before a fraction of the expected time, and resolves with the terminal snapshot', async () => {
    const budget = new RateBudget({ requests: 20, windowMs: 10_000 });
    const provider = fakeProvider(budget);
    const scheduler = new PollScheduler({ budget });
    const start = Date.now();
    provider.doneAt.set('t1', start + 11_000);
    const seen: string[] = [];
    const result = scheduler.watch('t1', provider.pollFor('t1'), { expectedMs: 10_000, startedAt: start, onSnapshot: (s) => seen.push(s.status) });
    await vi.advanceTimersByTimeAsync(5_000);
    expect(provider.polls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(20_000);
    const snap = await result;
    expect(snap).toMatchObject({ taskId: 't1', status: 'succeeded', outputUrls: ['https://cdn.test/t1.png'] });
    expect(seen.at(-1)).toBe('succeeded');
    expect(seen.slice(0, -1).every((s) => s === 'running')).toBe(true);
    // Detected promptly after completion, with a handful of polls, not one per second.
    const lastPoll = provider.polls.at(-1)!.at;
    expect(lastPoll - (start + 11_000)).toBeLessThanOrEqual(DEFAULT_POLL_PLAN.maxIntervalMs);
    expect(provider.polls.length).toBeLessThanOrEqual(5);
    expect(scheduler.size).toBe(0);
  });

  it('with a callback to come, polls only as a safety net: first at 1.5 × the expected time, then backing off to 30 s', async () => {
    const budget = new RateBudget({ requests: 20, windowMs: 10_000 });
    const provider = fakeProvider(budget);
    const scheduler = new PollScheduler({ budget });
    const start = Date.now();
    const watch = (id: string, expectCallback: boolean) =>
      void scheduler.watch(id, provider.pollFor(id), { expectedMs: 10_000, startedAt: start, expectCallback }).catch(() => undefined);
    watch('t1', true);
    watch('t2', false);
    watch('t3', true);
    await vi.advanceTimersByTimeAsync(14_000);
    expect(provider.polls.filter((p) => p.taskId !== 't2')).toHaveLength(0);
    // An early nudge (a retried callback, say) that finds t3 still running: the next poll is not 0.5–2 s later.
    scheduler.nudge('t3');
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    const at = (id: string) => provider.polls.filter((p) => p.taskId === id).map((p) => p.at - start);
    const gaps = (id: string) => at(id).slice(1).map((t, i) => t - at(id)[i]!);
    expect(at('t1')[0]).toBeGreaterThanOrEqual(15_000);
    expect(Math.min(...gaps('t1'))).toBeGreaterThanOrEqual(2 * DEFAULT_POLL_PLAN.maxIntervalMs);
    expect(Math.max(...gaps('t1'))).toBeLessThanOrEqual(6 * DEFAULT_POLL_PLAN.tailCapMs + 1);
    expect(at('t3')[0]).toBe(14_000);
    expect(gaps('t3')[0]).toBeGreaterThanOrEqual(2 * DEFAULT_POLL_PLAN.maxIntervalMs);
    // Over ten minutes, a fraction of the polls the normal plan makes for the same task.
    expect(at('t1').length * 4).toBeLessThan(at('t2').length);
    // The callback's nudge still polls at once.
    provider.doneAt.set('t1', Date.now());
    const before = at('t1').length;
    scheduler.nudge('t1');
    await vi.advanceTimersByTimeAsync(10);
    expect(at('t1').length).toBe(before + 1);
    scheduler.close();
  });

  it('with a callback to come, a nudge before the expected end that finds the task running is followed 4–8 s later', async () => {
    const budget = new RateBudget({ requests: 20, windowMs: 10_000 });
    const provider = fakeProvider(budget);
    const scheduler = new PollScheduler({ budget });
    const start = Date.now();
    void scheduler.watch('t1', provider.pollFor('t1'), { expectedMs: 20_000, startedAt: start, expectCallback: true }).catch(() => undefined);
    await vi.advanceTimersByTimeAsync(5_000);
    scheduler.nudge('t1');
    await vi.advanceTimersByTimeAsync(20_000);
    const at = provider.polls.map((p) => p.at - start);
    expect(at[0]).toBe(5_000);
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(2 * DEFAULT_POLL_PLAN.maxIntervalMs);
    expect(at[1]! - at[0]!).toBeLessThanOrEqual(4 * DEFAULT_POLL_PLAN.maxIntervalMs);
    scheduler.close();
  });

  it('never exceeds the budget with 80 watchers, creates included, and finishes them all', async () => {
    const budget = new RateBudget({ requests: 20, windowMs: 10_000 });
    const provider = fakeProvider(budget);
    const scheduler = new PollScheduler({ budget });
    const creates: number[] = [];
    const watches: Promise<TaskSnapshot>[] = [];
    for (let i = 0; i < 80; i++) {
      const id = `t${i}`;
      watches.push(
        (async () => {
          await budget.acquire('create');
          creates.push(Date.now());
          provider.doneAt.set(id, Date.now() + 7_000 + ((i * 2_711) % 23_000));
          return scheduler.watch(id, provider.pollFor(id), { expectedMs: 15_000, startedAt: Date.now() });
        })(),
      );
    }
    await vi.advanceTimersByTimeAsync(600_000);
    const snaps = await Promise.all(watches);
    expect(snaps.every((s) => s.status === 'succeeded')).toBe(true);
    const all = [...creates, ...provider.polls.map((p) => p.at)];
    expect(maxInWindow(all, 10_000)).toBeLessThanOrEqual(18);
    // Polls are spent where they pay off: few per task even though the budget binds.
    expect(provider.polls.length / 80).toBeLessThan(4);
  });

  it('when the budget binds, polls the task expected to finish first', async () => {
    const budget = new RateBudget({ requests: 1, windowMs: 1_000, reserve: 0, windowPaddingMs: 0 });
    const provider = fakeProvider(budget);
    const scheduler = new PollScheduler({ budget, maxInFlight: 1 });
    const start = Date.now();
    await budget.acquire('create'); // the only token of this window is gone
    provider.doneAt.set('late', start);
    provider.doneAt.set('early', start);
    const late = scheduler.watch('late', provider.pollFor('late'), { expectedMs: 20_000, startedAt: start - 30_000 });
    const early = scheduler.watch('early', provider.pollFor('early'), { expectedMs: 5_000, startedAt: start - 30_000 });
    await vi.advanceTimersByTimeAsync(3_000);
    await Promise.all([late, early]);
    expect(provider.polls.map((p) => p.taskId)).toEqual(['early', 'late']);
  });

  it('nudge polls a task at once instead of waiting for its schedule', async () => {
    const budget = new RateBudget({ requests: 20, windowMs: 10_000 });
    const provider = fakeProvider(budget);
    const scheduler = new PollScheduler({ budget });
    const start = Date.now();
    provider.doneAt.set('cb', start + 2_000);
    const result = scheduler.watch('cb', provider.pollFor('cb'), { expectedMs: 60_000, startedAt: start });
    await vi.advanceTimersByTimeAsync(2_500);
    expect(provider.polls).toHaveLength(0);
    scheduler.nudge('cb'); // a RunBlob callback arrived
    scheduler.nudge('unknown-task'); // ignored
    await vi.advanceTimersByTimeAsync(10);
    await expect(result).resolves.toMatchObject({ status: 'succeeded' });
    expect(provider.polls).toHaveLength(1);
  });

  it('a nudge during an in-flight poll polls again right after it', async () => {
    const budget = new RateBudget({ requests: 20, windowMs: 10_000 });
    const scheduler = new PollScheduler({ budget });
    const start = Date.now();
    let polls = 0;
    let done = false;
    const poll = async (): Promise<TaskSnapshot> => {
      await budget.acquire('poll');
      polls++;
      const status = done ? 'succeeded' : 'running';
      await new Promise((r) => setTimeout(r, 200)); // slow answer, computed before completion
      return { taskId: 'x', status, outputUrls: [] };
    };
    const result = scheduler.watch('x', poll, { expectedMs: 60_000, startedAt: start });
    scheduler.nudge('x');
    await vi.advanceTimersByTimeAsync(50);
    expect(polls).toBe(1);
    done = true;
    scheduler.nudge('x');
    await vi.advanceTimersByTimeAsync(500);
    await expect(result).resolves.toMatchObject({ status: 'succeeded' });
    expect(polls).toBe(2);
  });

  it('backs off after retryable errors, then succeeds', async () => {
    const budget = new RateBudget({ requests: 20, windowMs: 10_000 });
    const scheduler = new PollScheduler({ budget, errorBackoffMs: 1_000, random: () => 0.5 });
    const start = Date.now();
    const attempts: number[] = [];
    const poll = async (): Promise<TaskSnapshot> => {
      await budget.acquire('poll');
      attempts.push(Date.now());
      if (attempts.length <= 3) throw new ProviderServerError({ provider: 'runbase', status: 500, message: 'boom' });
      return { taskId: 'e', status: 'failed', outputUrls: [], failure: { code: 'MODERATION_FAILED', message: 'no' } };
    };
    const result = scheduler.watch('e', poll, { expectedMs: 2_000, startedAt: start });
    await vi.advanceTimersByTimeAsync(30_000);
    await expect(result).resolves.toMatchObject({ status: 'failed', failure: { code: 'MODERATION_FAILED' } });
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
    expect(gaps).toEqual([750, 1_500, 3_000]); // exponential: ceiling 1 s, 2 s, 4 s, with jitter 0.5
  });

  it('pauses the whole key budget after an unexpected 429 (someone else shares the key)', async () => {
    const budget = new RateBudget({ requests: 20, windowMs: 10_000 });
    const scheduler = new PollScheduler({ budget, rateLimitPauseMs: 3_000, random: () => 0 });
    let calls = 0;
    const poll = async (): Promise<TaskSnapshot> => {
      await budget.acquire('poll');
      calls++;
      if (calls === 1) throw new RateLimitedError({ provider: 'runbase', status: 429, providerCode: 'RATE_LIMITED', message: 'slow down' });
      return { taskId: 'r', status: 'succeeded', outputUrls: [] };
    };
    const result = scheduler.watch('r', poll, { expectedMs: 1_000, startedAt: Date.now() - 5_000 });
    await vi.advanceTimersByTimeAsync(10);
    expect(calls).toBe(1);
    expect(budget.available()).toBe(0);
    let created = false;
    void budget.acquire('create').then(() => (created = true));
    await vi.advanceTimersByTimeAsync(2_900);
    expect(created).toBe(false);
    await vi.advanceTimersByTimeAsync(200);
    expect(created).toBe(true);
    await vi.advanceTimersByTimeAsync(5_000);
    await expect(result).resolves.toMatchObject({ status: 'succeeded' });
  });

  it('rejects the watch on a non-retryable provider error', async () => {
    const budget = new RateBudget({ requests: 20, windowMs: 10_000 });
    const scheduler = new PollScheduler({ budget });
    let calls = 0;
    const poll = async (): Promise<TaskSnapshot> => {
      calls++;
      throw new TaskNotFoundError({ provider: 'runbase', status: 404, providerCode: 'run_not_found', message: 'gone' });
    };
    const result = scheduler.watch('gone', poll, { expectedMs: 1_000, startedAt: Date.now() });
    const assertion = expect(result).rejects.toBeInstanceOf(TaskNotFoundError);
    await vi.advanceTimersByTimeAsync(60_000);
    await assertion;
    expect(calls).toBe(1);
  });

  it('rejects on abort and stops polling that task; close() rejects the rest', async () => {
    const budget = new RateBudget({ requests: 20, windowMs: 10_000 });
    const provider = fakeProvider(budget);
    const scheduler = new PollScheduler({ budget });
    const ctrl = new AbortController();
    const a = scheduler.watch('a', provider.pollFor('a'), { expectedMs: 2_000, startedAt: Date.now(), signal: ctrl.signal });
    const b = scheduler.watch('b', provider.pollFor('b'), { expectedMs: 2_000, startedAt: Date.now() });
    const aRejected = expect(a).rejects.toThrow('deadline');
    const bRejected = expect(b).rejects.toBeInstanceOf(SchedulerClosedError);
    await vi.advanceTimersByTimeAsync(3_000);
    ctrl.abort(new Error('deadline'));
    await aRejected;
    const pollsOfA = provider.polls.filter((p) => p.taskId === 'a').length;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(provider.polls.filter((p) => p.taskId === 'a').length).toBe(pollsOfA);
    scheduler.close();
    await bRejected;
    const total = provider.polls.length;
    await vi.advanceTimersByTimeAsync(30_000);
    expect(provider.polls.length).toBe(total);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('bounds the polls outstanding at once', async () => {
    const budget = new RateBudget({ requests: 100, windowMs: 1_000 });
    const scheduler = new PollScheduler({ budget, maxInFlight: 2 });
    let outstanding = 0;
    let peak = 0;
    const poll = (id: string) => async (): Promise<TaskSnapshot> => {
      outstanding++;
      peak = Math.max(peak, outstanding);
      await new Promise((r) => setTimeout(r, 300));
      outstanding--;
      return { taskId: id, status: 'succeeded', outputUrls: [] };
    };
    const watches = Array.from({ length: 10 }, (_, i) => scheduler.watch(`w${i}`, poll(`w${i}`), { expectedMs: 1_000, startedAt: Date.now() }));
    await vi.advanceTimersByTimeAsync(10_000);
    await Promise.all(watches);
    expect(peak).toBe(2);
  });
});
