/** The placeholder's estimates (src/engine/estimates.ts, RateBudget.queuePosition, commands/render.ts). */
import { describe, expect, it } from 'vitest';
import { formatWait, progressBar, progressText } from '../../../commands/render.ts';
import { DURATION_SAMPLES, DurationEstimates, estimateWaitMs } from '../../../src/engine/estimates.ts';
import { RateBudget } from '../../../src/engine/rate-budget.ts';
import { makeJob } from '../commands/job-fixture.ts';

describe('estimateWaitMs: when the n-th next token of a rate budget comes', () => {
  const w = { now: 10_000, windowMs: 10_000, limit: 2, pausedUntil: 0 };
  it('at once while tokens are free', () => {
    expect(estimateWaitMs({ ...w, stamps: [] }, 1)).toBe(0);
    expect(estimateWaitMs({ ...w, stamps: [] }, 2)).toBe(0);
    expect(estimateWaitMs({ ...w, stamps: [9_000] }, 1)).toBe(0);
  });
  it('as each grant leaves the window, then one window per `limit` tokens', () => {
    const full = { ...w, stamps: [4_000, 7_000] };
    expect(estimateWaitMs(full, 1)).toBe(4_000); // 4 000 + 10 000 − 10 000
    expect(estimateWaitMs(full, 2)).toBe(7_000);
    expect(estimateWaitMs(full, 3)).toBe(14_000); // a window after the 1st
    expect(estimateWaitMs(full, 4)).toBe(17_000);
  });
  it('not before a pause ends', () => {
    expect(estimateWaitMs({ ...w, stamps: [], pausedUntil: 13_000 }, 1)).toBe(3_000);
  });
});

describe('RateBudget.queuePosition', () => {
  it('counts the other jobs whose creates wait before this one, and estimates from the window', async () => {
    let now = 0;
    const budget = new RateBudget({ requests: 1, windowMs: 10_000, reserve: 0, windowPaddingMs: 0, now: () => now, sleep: () => new Promise(() => {}) });
    await budget.acquire('create'); // the only token, at 0
    const [a, b, c] = [new AbortController(), new AbortController(), new AbortController()];
    for (const s of [a, a, b, c]) budget.acquire('create', s.signal).catch(() => undefined);
    now = 1_000;
    expect(budget.queuePosition(a.signal)).toEqual({ ahead: 0, etaMs: 9_000 });
    expect(budget.queuePosition(b.signal)).toEqual({ ahead: 1, etaMs: 29_000 });
    expect(budget.queuePosition(c.signal)).toEqual({ ahead: 2, etaMs: 39_000 });
    expect(budget.queuePosition(new AbortController().signal)).toBeUndefined();
    for (const s of [a, b, c]) s.abort();
  });
});

describe('DurationEstimates', () => {
  it('uses the documented default until it has samples, then their median, per model and resolution', () => {
    const d = new DurationEstimates((_key, res) => ({ '1K': 12_000, '2K': 18_000, '4K': 25_000 })[res]);
    expect(d.expectedMs('runbase-2', '1K')).toBe(12_000);
    for (const ms of [8_000, 30_000, 9_000]) d.record('runbase-2', '1K', ms);
    expect(d.expectedMs('runbase-2', '1K')).toBe(9_000);
    expect(d.expectedMs('runbase-2', '2K')).toBe(18_000);
    expect(d.expectedMs('runblob-pro', '1K')).toBe(12_000);
    for (let i = 0; i < DURATION_SAMPLES; i++) d.record('runbase-2', '1K', 20_000);
    expect(d.expectedMs('runbase-2', '1K')).toBe(20_000); // old samples forgotten
  });
});

describe('the placeholder says how long', () => {
  const base = { jobId: 'j', state: 'queued' as const, elapsedMs: 3_000, done: 0, total: 1, changed: true };
  it('while queued behind the budget: the place and the wait', () => {
    const job = makeJob({ state: 'queued' });
    expect(progressText(job, { ...base, phase: 'queued', queue: { ahead: 3, etaMs: 38_200 } })).toMatch(/^Queued: 3 jobs ahead, about 40 s · 0:03/);
    expect(progressText(job, { ...base, phase: 'queued', queue: { ahead: 0, etaMs: 200 } })).toMatch(/^Queued: next in line, about 5 s/);
    expect(progressText(job, { ...base, phase: 'queued' })).toMatch(/^Queued · /);
  });
  it('while generating: a bar and the time left against the usual time, then "longer than usual" without a bar', () => {
    const job = makeJob({ state: 'running' });
    const since = job.createdAt + 2_000;
    const at = (elapsedMs: number) => progressText(job, { ...base, state: 'running', phase: 'generating', elapsedMs, generating: { since, expectedMs: 20_000 } });
    expect(at(7_000)).toContain(`${progressBar(0.25)} about 15 s left`);
    expect(progressBar(0.25)).toBe('▰▰▱▱▱▱▱▱▱▱');
    expect(at(40_000)).toContain('(longer than the usual 20 s)');
    expect(at(40_000)).not.toContain('▰');
  });
  it('rounds waits so the text changes seldom', () => {
    expect([formatWait(0), formatWait(41_000), formatWait(89_000), formatWait(150_000)]).toEqual(['5 s', '45 s', '2 min', '3 min']);
  });
});
