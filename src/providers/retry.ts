/**
 * The one retry policy for provider calls, also used by the engine for result
 * downloads. What may be retried depends on whether repeating the call can cost money:
 *
 * - idempotent (status polls, balance, downloads): network errors, 408, 429 RATE_LIMITED, 5xx.
 * - billable (creates): only when the request surely did not land — a 429 RATE_LIMITED (the provider
 *   turned it away) or a connection that was never made (refused, DNS). A 500 or a reset after the
 *   request was written may have created a charged task, so it is not repeated.
 *
 * Delays honour `Retry-After` (seconds or HTTP date, see error-parsing.ts); otherwise exponential backoff
 * with full jitter. Sleep, randomness and the attempt limit are injectable so tests run in
 * milliseconds; every wait stops at once when the signal aborts.
 */
import { ProviderError, ProviderNetworkError, ProviderServerError, RateLimitedError } from './errors.ts';
import { classifyTransportFailure } from './error-parsing.ts';
import { sleep, type Sleep } from '../util/sleep.ts';

export { parseRetryAfterS } from './error-parsing.ts';

export type CallKind = 'idempotent' | 'billable';

export type { Sleep } from '../util/sleep.ts';

export interface RetryPolicy {
  /** Total attempts, the first included. */
  maxAttempts: number;
  /** First backoff ceiling; doubles each attempt (full jitter picks uniformly below it). */
  baseDelayMs: number;
  /** Largest backoff ceiling. */
  maxDelayMs: number;
  /** A Retry-After longer than this ends the retries (waiting that long would outlast a chat user). */
  maxRetryAfterMs: number;
  sleep: Sleep;
  /** Uniform in [0, 1), like Math.random. */
  random: () => number;
}

export const DEFAULT_MAX_ATTEMPTS = 4;
export const DEFAULT_BASE_DELAY_MS = 500;
export const DEFAULT_MAX_DELAY_MS = 8_000;
export const DEFAULT_MAX_RETRY_AFTER_MS = 60_000;

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: DEFAULT_MAX_ATTEMPTS,
  baseDelayMs: DEFAULT_BASE_DELAY_MS,
  maxDelayMs: DEFAULT_MAX_DELAY_MS,
  maxRetryAfterMs: DEFAULT_MAX_RETRY_AFTER_MS,
  sleep,
  random: Math.random,
};

/**
 * Whether repeating the failed call may succeed without risking a second charge.
 * Accepts any thrown value: raw undici/node transport errors (downloads) are classified too.
 */
export function isRetryable(err: unknown, kind: CallKind): boolean {
  if (err instanceof RateLimitedError) return true;
  if (err instanceof ProviderNetworkError) return kind === 'idempotent' || err.notSent;
  if (err instanceof ProviderServerError) return kind === 'idempotent';
  if (err instanceof ProviderError) return false;
  if (isAbort(err)) return false;
  const transport = classifyTransportFailure(err);
  if (!transport.network) return false;
  return kind === 'idempotent' || transport.notSent;
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || (err as { code?: unknown }).code === 'ABORT_ERR');
}

/** The wait before attempt `failedAttempt + 1`, or undefined when the provider asks for too long a wait. */
export function retryDelayMs(err: unknown, failedAttempt: number, policy: RetryPolicy): number | undefined {
  const retryAfterS = err instanceof ProviderError ? err.retryAfterS : undefined;
  if (retryAfterS !== undefined) {
    const ms = Math.ceil(retryAfterS * 1000);
    return ms > policy.maxRetryAfterMs ? undefined : ms;
  }
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (failedAttempt - 1));
  return Math.floor(policy.random() * ceiling);
}

export interface RetryInfo {
  /** The attempt that failed (1-based). */
  attempt: number;
  delayMs: number;
  error: unknown;
}

export interface RetryOptions extends Partial<RetryPolicy> {
  kind: CallKind;
  signal?: AbortSignal | undefined;
  /** Called before each wait (for logs and metrics). */
  onRetry?: (info: RetryInfo) => void;
}

/**
 * Runs `attempt(n)` (n from 1) until it succeeds, fails with an error the policy does not retry,
 * or the attempts run out; then rethrows the last error. An abort rethrows the signal's reason.
 */
export async function withRetry<T>(attempt: (n: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const policy: RetryPolicy = {
    maxAttempts: opts.maxAttempts ?? DEFAULT_RETRY_POLICY.maxAttempts,
    baseDelayMs: opts.baseDelayMs ?? DEFAULT_RETRY_POLICY.baseDelayMs,
    maxDelayMs: opts.maxDelayMs ?? DEFAULT_RETRY_POLICY.maxDelayMs,
    maxRetryAfterMs: opts.maxRetryAfterMs ?? DEFAULT_RETRY_POLICY.maxRetryAfterMs,
    sleep: opts.sleep ?? DEFAULT_RETRY_POLICY.sleep,
    random: opts.random ?? DEFAULT_RETRY_POLICY.random,
  };
  const maxAttempts = Math.max(1, Math.floor(policy.maxAttempts));
  for (let n = 1; ; n++) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    try {
      return await attempt(n);
    } catch (err) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      if (n >= maxAttempts || !isRetryable(err, opts.kind)) throw err;
      const delayMs = retryDelayMs(err, n, policy);
      if (delayMs === undefined) throw err;
      opts.onRetry?.({ attempt: n, delayMs, error: err });
      await policy.sleep(delayMs, opts.signal);
    }
  }
}
