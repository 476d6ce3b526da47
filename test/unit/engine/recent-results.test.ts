import { afterEach, describe, expect, test, vi } from 'vitest';
import { RECENT_RESULT_MAX_ENTRY_BYTES, RecentResults, resultContent } from '../../../src/engine/recent-results.ts';

const bytes = (n: number, fill = 1) => Buffer.alloc(n, fill);

afterEach(() => {
  vi.useRealTimers();
});

describe('results kept between their download and their delivery', () => {
  test('an entry is handed over once', () => {
    const r = new RecentResults();
    r.remember('/data/j1/0.png', bytes(10));
    expect(r.take('/data/j1/0.png')).toEqual(bytes(10));
    expect(r.take('/data/j1/0.png')).toBeUndefined();
    expect(r.bytes.held).toBe(0);
  });

  test('past its time an entry is not handed over', () => {
    let now = 1_000;
    const r = new RecentResults({ ttlMs: 100, now: () => now });
    r.remember('/a', bytes(10));
    now += 101;
    expect(r.take('/a')).toBeUndefined();
    expect(r.bytes.held).toBe(0);
  });

  test('over the budget the oldest entries go first', () => {
    const r = new RecentResults({ maxBytes: 25 });
    r.remember('/a', bytes(10));
    r.remember('/b', bytes(10));
    r.remember('/c', bytes(10));
    expect(r.bytes.held).toBe(20);
    expect(r.take('/a')).toBeUndefined();
    expect(r.take('/b')).toBeDefined();
    expect(r.take('/c')).toBeDefined();
  });

  test('a result larger than an entry may be is not kept; remembering a path again replaces its bytes', () => {
    const r = new RecentResults({ maxBytes: 4 * RECENT_RESULT_MAX_ENTRY_BYTES });
    r.remember('/big', Buffer.alloc(RECENT_RESULT_MAX_ENTRY_BYTES + 1));
    expect(r.bytes.held).toBe(0);
    r.remember('/p', bytes(10, 1));
    r.remember('/p', bytes(5, 2));
    expect(r.bytes.held).toBe(5);
    expect(r.take('/p')).toEqual(bytes(5, 2));
  });

  test('a download reserves room for the body it copies: entries and copies together stay within the budget', () => {
    const r = new RecentResults({ maxBytes: 30 });
    r.remember('/a', bytes(10));
    r.remember('/b', bytes(10));
    expect(r.reserve(15)).toBe(true); // /a goes to make room
    expect(r.bytes).toEqual({ held: 10, reserved: 15 });
    expect(r.take('/a')).toBeUndefined();
    expect(r.reserve(20)).toBe(false); // 15 + 20 copying at once would pass 30
    r.release(15);
    expect(r.reserve(RECENT_RESULT_MAX_ENTRY_BYTES + 1)).toBe(false); // never kept, whatever the room
    expect(r.bytes).toEqual({ held: 10, reserved: 0 });
  });

  test("a download's reservation becomes its entry in one step", () => {
    const r = new RecentResults({ maxBytes: 30 });
    expect(r.reserve(10)).toBe(true);
    r.commit('/c', bytes(10), 10);
    expect(r.bytes).toEqual({ held: 10, reserved: 0 });
    expect(r.take('/c')).toEqual(bytes(10));
  });

  test('leftovers nobody takes are let go after their time, with no new result to push them out', () => {
    vi.useFakeTimers();
    const r = new RecentResults({ ttlMs: 1_000 });
    r.remember('/left', bytes(100));
    vi.advanceTimersByTime(500);
    r.remember('/later', bytes(100));
    vi.advanceTimersByTime(600);
    expect(r.bytes.held).toBe(100); // the first gone, the second still within its time
    vi.advanceTimersByTime(1_000);
    expect(r.bytes.held).toBe(0);
  });

  test("gives a reserved body memory of its own, small ones too (not a slice of Node's pool): a thread can transfer it", () => {
    for (const size of [10_000, 100]) {
      const own = new RecentResults().allocate(size);
      expect(own.length).toBe(size);
      expect(own.byteOffset).toBe(0);
      expect(own.buffer.byteLength).toBe(size);
      // Not shared memory: posted across threads it was not freed (recent-results.ts, allocate).
      expect(own.buffer).toBeInstanceOf(ArrayBuffer);
    }
  });

  test('a deliverer is given the bytes in hand, else the size the download recorded: the file is not looked at here (no stat on the event loop)', () => {
    const kept = new RecentResults();
    kept.remember('/images/job/0.png', bytes(300));
    expect(resultContent(kept, { path: '/images/job/0.png', bytes: 300 })).toEqual({ bytes: bytes(300), size: 300 });
    // Taken once; a path that does not exist on disk still gets its recorded size.
    expect(resultContent(kept, { path: '/images/job/0.png', bytes: 300 })).toEqual({ size: 300 });
    expect(resultContent(undefined, { path: '/nowhere/on/disk.png', bytes: 1234 })).toEqual({ size: 1234 });
  });
});
