import { describe, expect, it } from 'vitest';
import { concurrencyLimit } from '../../../src/util/limit.ts';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('concurrencyLimit', () => {
  it('runs at most max tasks at once, in arrival order, and a failed task frees its slot', async () => {
    const limit = concurrencyLimit(2);
    let running = 0;
    let most = 0;
    const started: number[] = [];
    const finishers = new Map<number, { ok: () => void; fail: () => void }>();
    const runs = [1, 2, 3, 4, 5].map((n) =>
      limit(
        () =>
          new Promise<number>((resolve, reject) => {
            started.push(n);
            running += 1;
            most = Math.max(most, running);
            const end = () => (running -= 1);
            finishers.set(n, { ok: () => (end(), resolve(n)), fail: () => (end(), reject(new Error(`task ${n}`))) });
          }),
      ).catch((err: Error) => err.message),
    );
    await tick();
    expect(started).toEqual([1, 2]);
    finishers.get(1)!.fail();
    // A caller arriving after the queue formed waits behind it.
    const late = limit(async () => (started.push(6), 6));
    await tick();
    expect(started).toEqual([1, 2, 3]);
    for (const n of [2, 3, 4, 5]) {
      await tick();
      finishers.get(n)?.ok();
    }
    expect(await Promise.all(runs)).toEqual(['task 1', 2, 3, 4, 5]);
    expect(await late).toBe(6);
    expect(started).toEqual([1, 2, 3, 4, 5, 6]);
    expect(most).toBe(2);
  });

  it('refuses a limit below one', () => {
    expect(() => concurrencyLimit(0)).toThrow(RangeError);
  });
});
