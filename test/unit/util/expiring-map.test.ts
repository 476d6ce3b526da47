import { describe, expect, it } from 'vitest';
import { ExpiringMap } from '../../../src/util/expiring-map.ts';

function clock() {
  let now = 1_000;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('ExpiringMap', () => {
  it('answers an entry for ttlMs after it was set, with its age', () => {
    const c = clock();
    const m = new ExpiringMap<string, number>(100, c.now);
    m.set('a', 1);
    c.advance(99);
    expect(m.entry('a')).toEqual({ value: 1, ageMs: 99 });
    c.advance(1);
    expect(m.get('a')).toBeUndefined();
    expect(m.has('a')).toBe(false);
  });

  it('holds no more than ttlMs worth of sets, however many keys come and go', () => {
    const c = clock();
    const m = new ExpiringMap<string, number>(1_000, c.now);
    // A new key every 10 ms for a while: 100 live at a time.
    for (let n = 0; n < 10_000; n++) {
      m.set(`k${n}`, n);
      c.advance(10);
    }
    expect(m.size).toBe(100);
  });

  it('sweeps by when a key was last set: a key set again stays, an older one goes', () => {
    const c = clock();
    const m = new ExpiringMap<string, number>(100, c.now);
    m.set('a', 1);
    c.advance(40);
    m.set('b', 2);
    c.advance(40);
    m.set('a', 3);
    c.advance(61);
    m.set('c', 4);
    // 'b' was set 101 ms ago, 'a' 61: only 'b' was swept.
    expect(m.size).toBe(2);
    expect(m.get('a')).toBe(3);
  });

  it('reuses a promise while it counts, and drops one that rejects so the next ask loads again', async () => {
    const c = clock();
    const m = new ExpiringMap<string, Promise<string>>(100, c.now);
    let loads = 0;
    const load = () => (++loads === 1 ? Promise.reject(new Error('down')) : Promise.resolve(`v${loads}`));
    await expect(m.reuseOrLoad('k', load)).rejects.toThrow('down');
    expect(m.size).toBe(0);
    expect(await m.reuseOrLoad('k', load)).toBe('v2');
    expect(await m.reuseOrLoad('k', load)).toBe('v2');
    c.advance(100);
    expect(await m.reuseOrLoad('k', load)).toBe('v3');
    expect(loads).toBe(3);
  });

  it('keeps a newer promise when an older one for the same key rejects', async () => {
    const m = new ExpiringMap<string, Promise<string>>(100);
    let fail!: (e: Error) => void;
    const older = m.keepUnlessFailed('k', new Promise<string>((_, reject) => (fail = reject)));
    const newer = m.keepUnlessFailed('k', Promise.resolve('new'));
    fail(new Error('late failure'));
    await expect(older).rejects.toThrow('late failure');
    expect(m.get('k')).toBe(newer);
  });
});
