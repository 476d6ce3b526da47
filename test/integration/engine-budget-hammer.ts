/**
 * One "process" spending one Runbase key as fast as its RateBudget allows: `concurrency` loops of
 * GET /runs/{id} through a RunbaseClient gated by a RateBudget built like the engine's (the
 * provider's limit; shared through `store` when given). Used in-process by budget-shared.test.ts
 * and, as a child process, by engine-budget-worker.ts. No retries: every 429 is seen and counted.
 */
import { RateBudget } from '../../src/engine/rate-budget.ts';
import type { Store } from '../../src/engine/store.ts';
import { RateLimitedError } from '../../src/providers/errors.ts';
import { RunbaseClient } from '../../src/providers/runbase/client.ts';

export interface HammerOptions {
  /** The budget is shared through this store (as the engine wires it); unshared without. */
  store?: Store;
  baseUrl: string;
  apiKey: string;
  /** A run of the key to poll. */
  runId: string;
  /** The provider's limit (scaled). */
  rateLimit: { requests: number; windowMs: number };
  /** Epoch ms after which no new request is asked for. */
  until: number;
  concurrency: number;
}

export interface HammerResult {
  ok: number;
  rateLimited: number;
  otherErrors: string[];
  sharedBuckets: { bucketMs: number; perBucket: number } | undefined;
}

export async function hammerKey(o: HammerOptions): Promise<HammerResult> {
  const client = new RunbaseClient({ apiKey: o.apiKey, baseUrl: o.baseUrl, maxAttempts: 1, timeoutMs: 10_000 });
  const budget = new RateBudget({
    ...o.rateLimit,
    ...(o.store ? { shared: { counters: o.store, keyId: client.keyId } } : {}),
  });
  const result: HammerResult = { ok: 0, rateLimited: 0, otherErrors: [], sharedBuckets: budget.sharedBuckets };
  try {
    await Promise.all(
      Array.from({ length: o.concurrency }, async () => {
        while (Date.now() < o.until) {
          try {
            await client.getTask(o.runId, { gate: budget.acquire });
            result.ok++;
          } catch (err) {
            if (err instanceof RateLimitedError) result.rateLimited++;
            else result.otherErrors.push(String(err));
          }
        }
      }),
    );
  } finally {
    await client.close();
  }
  return result;
}
