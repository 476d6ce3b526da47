import { describe, expect, it } from 'vitest';
import { DEFAULT_POLL_PLAN, nextPollElapsedMs } from '../../../src/engine/poll-plan.ts';

describe('nextPollElapsedMs', () => {
  it('waits for a good chance of completion, polls densely around the expected time, then backs off to the cap', () => {
    const expected = 20_000;
    const times: number[] = [];
    let last: { elapsedMs: number; intervalMs: number } | undefined;
    for (let i = 0; i < 25; i++) {
      const t = nextPollElapsedMs(expected, last);
      times.push(t);
      last = { elapsedMs: t, intervalMs: last ? t - last.elapsedMs : 0 };
    }
    expect(times[0]).toBeGreaterThanOrEqual(DEFAULT_POLL_PLAN.firstPollFraction * expected);
    expect(times[0]).toBeLessThan(expected);
    const gaps = times.slice(1).map((t, i) => t - (times[i] as number));
    const near = gaps.filter((_, i) => Math.abs((times[i] as number) - expected) < 4_000);
    expect(near.length).toBeGreaterThan(1);
    for (const g of near) expect(g).toBeLessThanOrEqual(DEFAULT_POLL_PLAN.maxIntervalMs);
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(DEFAULT_POLL_PLAN.minIntervalMs);
    // Long after the expected time the gap grows to the cap and stays there.
    expect(gaps.at(-1)).toBe(DEFAULT_POLL_PLAN.tailCapMs);
    expect(gaps.at(-1)!).toBeGreaterThan(near[0]!);
  });
});
