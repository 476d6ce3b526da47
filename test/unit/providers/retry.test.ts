import { describe, expect, it } from 'vitest';
import {
  InvalidRequestError,
  KeyPolicyError,
  ProviderNetworkError,
  ProviderServerError,
  RateLimitedError,
  type ProviderError,
} from '../../../src/providers/errors.ts';
import { isRetryable, withRetry, type CallKind } from '../../../src/providers/retry.ts';
import { recordingSleep } from './script-server.ts';

const rateLimited = (retryAfterS?: number) =>
  new RateLimitedError({ provider: 'runbase', status: 429, providerCode: 'RATE_LIMITED', message: 'rl', retryAfterS });
const serverError = () => new ProviderServerError({ provider: 'runbase', status: 500, message: '500' });
const refused = () => new ProviderNetworkError({ provider: 'runbase', message: 'refused', notSent: true });
const reset = () => new ProviderNetworkError({ provider: 'runbase', message: 'reset', notSent: false });
const usageExceeded = () => new KeyPolicyError({ provider: 'runbase', status: 429, providerCode: 'USAGE_EXCEEDED', message: 'ue' });

/** Fails with the given errors in turn, then answers 'ok'. */
function script(...errors: ProviderError[]) {
  let calls = 0;
  const fn = async (n: number) => {
    calls++;
    expect(n).toBe(calls);
    const err = errors[calls - 1];
    if (err) throw err;
    return 'ok';
  };
  return { fn, calls: () => calls };
}

describe('withRetry', () => {
  it('honours Retry-After (seconds) instead of backing off', async () => {
    const { sleep, delays } = recordingSleep();
    const s = script(rateLimited(3), rateLimited(0.25));
    await expect(withRetry(s.fn, { kind: 'billable', sleep, random: () => 0.99 })).resolves.toBe('ok');
    expect(delays).toEqual([3000, 250]);
    expect(s.calls()).toBe(3);
  });

  it('backs off exponentially with full jitter, capped, when no Retry-After is given', async () => {
    const { sleep, delays } = recordingSleep();
    const s = script(serverError(), serverError(), serverError());
    await withRetry(s.fn, { kind: 'idempotent', sleep, random: () => 0.5 });
    // ceilings 500, 1000, 2000 ms; full jitter picks random() × ceiling
    expect(delays).toEqual([250, 500, 1000]);

    const capped = recordingSleep();
    const many = script(...Array.from({ length: 7 }, serverError));
    await withRetry(many.fn, { kind: 'idempotent', sleep: capped.sleep, random: () => 0.999, maxAttempts: 8 });
    expect(capped.delays).toHaveLength(7);
    expect(Math.max(...capped.delays)).toBeLessThanOrEqual(8000);
    expect(capped.delays.at(-1)).toBeGreaterThan(7900);

    const zero = recordingSleep();
    await withRetry(script(serverError()).fn, { kind: 'idempotent', sleep: zero.sleep, random: () => 0 });
    expect(zero.delays).toEqual([0]);
  });

  it('gives up after maxAttempts (default 4) and rethrows the last error', async () => {
    const { sleep } = recordingSleep();
    const last = serverError();
    const s = script(serverError(), serverError(), serverError(), last, serverError());
    await expect(withRetry(s.fn, { kind: 'idempotent', sleep })).rejects.toBe(last);
    expect(s.calls()).toBe(4);

    const two = script(serverError(), serverError(), serverError());
    await expect(withRetry(two.fn, { kind: 'idempotent', sleep, maxAttempts: 2 })).rejects.toBeInstanceOf(ProviderServerError);
    expect(two.calls()).toBe(2);
  });

  it('a billable create that got a 500 is not repeated; a poll is', async () => {
    const { sleep } = recordingSleep();
    const create = script(serverError());
    await expect(withRetry(create.fn, { kind: 'billable', sleep })).rejects.toBeInstanceOf(ProviderServerError);
    expect(create.calls()).toBe(1);
    const poll = script(serverError());
    await expect(withRetry(poll.fn, { kind: 'idempotent', sleep })).resolves.toBe('ok');
    expect(poll.calls()).toBe(2);
  });

  it('a billable create is repeated after a refused connection, not after a reset', async () => {
    const { sleep } = recordingSleep();
    const refusedOnce = script(refused());
    await expect(withRetry(refusedOnce.fn, { kind: 'billable', sleep })).resolves.toBe('ok');
    expect(refusedOnce.calls()).toBe(2);
    const resetOnce = script(reset());
    await expect(withRetry(resetOnce.fn, { kind: 'billable', sleep })).rejects.toBeInstanceOf(ProviderNetworkError);
    expect(resetOnce.calls()).toBe(1);
  });

  it('never repeats permanent errors (USAGE_EXCEEDED, invalid request)', async () => {
    const { sleep, delays } = recordingSleep();
    for (const kind of ['billable', 'idempotent'] as CallKind[]) {
      const s = script(usageExceeded());
      await expect(withRetry(s.fn, { kind, sleep })).rejects.toBeInstanceOf(KeyPolicyError);
      expect(s.calls()).toBe(1);
      const bad = script(new InvalidRequestError({ provider: 'runblob', message: 'bad' }));
      await expect(withRetry(bad.fn, { kind, sleep })).rejects.toBeInstanceOf(InvalidRequestError);
      expect(bad.calls()).toBe(1);
    }
    expect(delays).toEqual([]);
  });

  it('does not wait out an excessive Retry-After', async () => {
    const { sleep, delays } = recordingSleep();
    const s = script(rateLimited(3600));
    await expect(withRetry(s.fn, { kind: 'idempotent', sleep })).rejects.toBeInstanceOf(RateLimitedError);
    expect(delays).toEqual([]);
    expect(s.calls()).toBe(1);
  });

  it('reports each retry', async () => {
    const { sleep } = recordingSleep();
    const seen: [number, number][] = [];
    await withRetry(script(rateLimited(1)).fn, { kind: 'idempotent', sleep, onRetry: (i) => seen.push([i.attempt, i.delayMs]) });
    expect(seen).toEqual([[1, 1000]]);
  });

  it('stops waiting at once when the signal aborts, with the caller’s reason', async () => {
    const ac = new AbortController();
    const reason = new Error('job canceled');
    let calls = 0;
    const started = Date.now();
    const run = withRetry(
      async () => {
        calls++;
        throw serverError();
      },
      { kind: 'idempotent', signal: ac.signal, random: () => 1, baseDelayMs: 5_000 },
    );
    setTimeout(() => ac.abort(reason), 20);
    await expect(run).rejects.toBe(reason);
    expect(calls).toBe(1);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('does not start when already aborted', async () => {
    const ac = new AbortController();
    ac.abort(new Error('gone'));
    let calls = 0;
    await expect(withRetry(async () => ++calls, { kind: 'idempotent', signal: ac.signal })).rejects.toThrow('gone');
    expect(calls).toBe(0);
  });
});

describe('isRetryable on raw transport errors (engine downloads)', () => {
  const withCode = (code: string) => Object.assign(new Error(code), { code });
  it('classifies undici/node errors by code', () => {
    expect(isRetryable(withCode('ECONNREFUSED'), 'billable')).toBe(true);
    expect(isRetryable(withCode('ECONNRESET'), 'idempotent')).toBe(true);
    expect(isRetryable(withCode('ECONNRESET'), 'billable')).toBe(false);
    expect(isRetryable(withCode('UND_ERR_BODY_TIMEOUT'), 'idempotent')).toBe(true);
    expect(isRetryable(new Error('bug'), 'idempotent')).toBe(false);
    expect(isRetryable(new DOMException('aborted', 'AbortError'), 'idempotent')).toBe(false);
  });
});
