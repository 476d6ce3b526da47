import { describe, expect, it } from 'vitest';
import { abortPromise, sleep } from '../../../src/util/sleep.ts';

describe('sleep', () => {
  it('waits, and rejects with the reason on abort', async () => {
    const t0 = Date.now();
    await sleep(30);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(25);
    const ac = new AbortController();
    const p = sleep(10_000, ac.signal);
    ac.abort(new Error('stop'));
    await expect(p).rejects.toThrow('stop');
  });

  it('rejects at once when the signal has already aborted', async () => {
    const ac = new AbortController();
    ac.abort(new Error('before'));
    await expect(sleep(10_000, ac.signal)).rejects.toThrow('before');
  });
});

describe('abortPromise', () => {
  it('rejects with the reason when the signal aborts, now or later', async () => {
    const ac = new AbortController();
    const p = abortPromise(ac.signal);
    ac.abort(new Error('later'));
    await expect(p).rejects.toThrow('later');
    await expect(abortPromise(ac.signal)).rejects.toThrow('later');
  });
});
