import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DiscordDelivery } from '../../../../src/platforms/discord/delivery.ts';
import type { DiscordMessages } from '../../../../src/platforms/discord/messages.ts';
import { EditThrottle } from '../../../../src/platforms/discord/throttle.ts';
import { createLogger } from '../../../../src/log.ts';

/** An edit that records when it started and what it showed, and takes `ms` to complete. */
function recorder(ms = 50) {
  const sent: { at: number; text: string }[] = [];
  const edit = (text: string) => () =>
    new Promise<void>((resolve) => {
      sent.push({ at: Date.now(), text });
      setTimeout(resolve, ms);
    });
  return { sent, edit };
}

/** A Discord deliverer over its own throttle (no messages are sent through it). */
function deliveryWithThrottle() {
  const throttle = new EditThrottle({ intervalMs: 2_500, minGapMs: 1_000 });
  const delivery = new DiscordDelivery({
    engine: { models: [], updateLocation: async () => undefined },
    log: createLogger({ level: 'silent', pretty: false, destination: { write: () => undefined } }),
    messages: {} as DiscordMessages,
    throttle,
  });
  return { throttle, delivery };
}

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('EditThrottle', () => {
  it('remembers a finished key for an hour (a late edit is ignored), then forgets it', async () => {
    const t = new EditThrottle({ intervalMs: 2_500, minGapMs: 1_000 });
    const { sent, edit } = recorder();
    for (const key of ['a', 'b']) await t.finish(key, async () => undefined);
    t.submit('a', edit('late'), true);
    await vi.advanceTimersByTimeAsync(100);
    expect(sent).toEqual([]);
    expect(t.waitingOrClosed('b')).toBe(true);
    await vi.advanceTimersByTimeAsync(60 * 60_000);
    // The next finish forgets what was closed over an hour ago.
    await t.finish('c', async () => undefined);
    expect(t.waitingOrClosed('a')).toBe(false);
    expect(t.waitingOrClosed('b')).toBe(false);
    expect(t.waitingOrClosed('c')).toBe(true);
  });

  it("drops a key whose job's run ended here (another process has it): the waiting edit never goes, the one in flight ends", async () => {
    const { throttle, delivery } = deliveryWithThrottle();
    const { sent, edit } = recorder();
    throttle.submit('job', edit('queued'), true);
    throttle.submit('job', edit('generating'), true);
    expect(throttle.waitingOrClosed('job')).toBe(true);
    delivery.forget('job');
    expect(throttle.waitingOrClosed('job')).toBe(false);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(sent.map((s) => s.text)).toEqual(['queued']);
    // Not closed: a later run of the job here (taken back) edits again.
    throttle.submit('job', edit('running'), true);
    await vi.advanceTimersByTimeAsync(100);
    expect(sent.map((s) => s.text)).toEqual(['queued', 'running']);
  });

  it('a result after a drop still waits for the edit that was in flight', async () => {
    const { throttle, delivery } = deliveryWithThrottle();
    const order: string[] = [];
    throttle.submit('job', () => new Promise<void>((resolve) => setTimeout(() => (order.push('progress'), resolve()), 500)), true);
    delivery.forget('job');
    const final = throttle.finish('job', async () => void order.push('result'));
    await vi.advanceTimersByTimeAsync(1_000);
    await final;
    expect(order).toEqual(['progress', 'result']);
    expect(throttle.busy('job')).toBe(false);
  });

  it('forgets finished keys by when they were last finished, a key finished again included', async () => {
    const t = new EditThrottle({ intervalMs: 2_500, minGapMs: 1_000 });
    await t.finish('a', async () => undefined);
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    await t.finish('b', async () => undefined);
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    await t.finish('a', async () => undefined);
    // 'b' was finished an hour and 1 ms before the next finish, 'a' 50 minutes: only 'b' is forgotten.
    await vi.advanceTimersByTimeAsync(50 * 60_000 + 1);
    await t.finish('c', async () => undefined);
    expect(t.waitingOrClosed('b')).toBe(false);
    expect(t.waitingOrClosed('a')).toBe(true);
  });

  it('tells the Discord deliverer a tick is not wanted while one already waits (it renders the time when sent) or the key is closed', async () => {
    const { throttle, delivery } = deliveryWithThrottle();
    const { edit } = recorder();
    expect(delivery.wantsTick('job')).toBe(true);
    throttle.submit('job', edit('queued'), true);
    expect(delivery.wantsTick('job')).toBe(true); // one in flight, none waiting: a tick would be next
    throttle.submit('job', edit('tick 0:01'), false);
    expect(delivery.wantsTick('job')).toBe(false);
    await vi.advanceTimersByTimeAsync(2_600);
    expect(delivery.wantsTick('job')).toBe(true);
    await throttle.finish('job', async () => undefined);
    expect(delivery.wantsTick('job')).toBe(false);
  });

  it('sends a state change at once and holds ticks to one per interval', async () => {
    const t = new EditThrottle({ intervalMs: 2_500, minGapMs: 1_000 });
    const { sent, edit } = recorder();
    t.submit('job', edit('queued'), true);
    expect(sent.map((s) => s.text)).toEqual(['queued']);
    await vi.advanceTimersByTimeAsync(500);
    t.submit('job', edit('tick 0:01'), false);
    await vi.advanceTimersByTimeAsync(1_000);
    t.submit('job', edit('tick 0:02'), false);
    expect(sent).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1_100);
    // One tick, the latest, at 2.5 s after the first edit.
    expect(sent.map((s) => [s.at, s.text])).toEqual([
      [0, 'queued'],
      [2_500, 'tick 0:02'],
    ]);
  });

  it('never sends a stale edit: only the newest pending one goes out after the edit in flight', async () => {
    const t = new EditThrottle({ intervalMs: 2_500, minGapMs: 0 });
    const { sent, edit } = recorder(300);
    t.submit('job', edit('queued'), true);
    t.submit('job', edit('generating'), true);
    t.submit('job', edit('downloading'), true);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(sent.map((s) => s.text)).toEqual(['queued', 'downloading']);
    expect(sent[1]!.at).toBe(300);
  });

  it('spaces bursts of state changes by the minimum gap', async () => {
    const t = new EditThrottle({ intervalMs: 2_500, minGapMs: 1_000 });
    const { sent, edit } = recorder(10);
    for (let n = 0; n < 6; n++) {
      t.submit('job', edit(`state ${n}`), true);
      await vi.advanceTimersByTimeAsync(200);
    }
    await vi.advanceTimersByTimeAsync(2_000);
    // Six state changes in one second: three edits, a second apart, ending with the newest state.
    expect(sent.map((s) => s.at)).toEqual([0, 1_000, 2_000]);
    expect(sent.at(-1)!.text).toBe('state 5');
  });

  it('finish drops pending edits, waits for the one in flight, runs the final write, then ignores late edits', async () => {
    const t = new EditThrottle({ intervalMs: 2_500, minGapMs: 1_000 });
    const { sent, edit } = recorder(400);
    t.submit('job', edit('generating'), true);
    t.submit('job', edit('downloading'), true);
    const done = t.finish('job', async () => {
      sent.push({ at: Date.now(), text: 'result' });
      return 'ok';
    });
    await vi.advanceTimersByTimeAsync(500);
    await expect(done).resolves.toBe('ok');
    t.submit('job', edit('late tick'), false);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(sent.map((s) => [s.at, s.text])).toEqual([
      [0, 'generating'],
      [400, 'result'],
    ]);
  });

  it('keeps messages independent and survives failing edits', async () => {
    const errors: string[] = [];
    const t = new EditThrottle({ intervalMs: 2_500, onError: (_e, key) => errors.push(key) });
    const { sent, edit } = recorder(10);
    t.submit('a', () => Promise.reject(new Error('429')), true);
    t.submit('b', edit('b queued'), true);
    await vi.advanceTimersByTimeAsync(1_100);
    t.submit('a', edit('a generating'), true);
    await vi.advanceTimersByTimeAsync(10);
    expect(errors).toEqual(['a']);
    expect(sent.map((s) => s.text)).toEqual(['b queued', 'a generating']);
  });
});
