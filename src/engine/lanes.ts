/**
 * Provider lanes: the provider side of one API key, its client with the key's RateBudget and
 * PollScheduler. The budget comes from the client's traits (ProviderTraits.rateLimit); a limit
 * the provider counts per key whoever sends is shared with every process on the store
 * (docs/rate-budget.md).
 */
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { ProviderClient, ProviderName, RequestGate } from '../providers/types.ts';
import { PollScheduler, type PollSchedulerOptions } from './poll-scheduler.ts';
import { RateBudget, type RateBudgetOptions, type SharedRateBudget } from './rate-budget.ts';
import type { Store } from './store.ts';

/** A provider's limit as RateBudgetOptions (reserve/padding, shared buckets' k and m included). */
export type RateLimitOptions = Omit<RateBudgetOptions, 'now' | 'shared'>;

export interface Lane {
  client: ProviderClient;
  budget: RateBudget;
  scheduler: PollScheduler;
  /** The budget's acquire, as the client's RequestGate. */
  gate: RequestGate;
}

export interface LanesOptions {
  providers: readonly ProviderClient[];
  store: Store;
  log: Logger;
  now: () => number;
  /** Per provider: replaces the limit its traits give (tests and benches scale time down). */
  rateLimits?: Partial<Record<ProviderName, RateLimitOptions>> | undefined;
  /** Poll plan overrides for every scheduler. */
  scheduler?: Omit<PollSchedulerOptions, 'budget' | 'log' | 'now'> | undefined;
  /** Observes every wait for a budget (imagine_rate_budget_wait_seconds). */
  metrics?: Metrics | undefined;
}

/** How often a failing store is reported by a shared budget (it fails closed, so requests wait meanwhile). */
const BUDGET_STORE_ERROR_LOG_INTERVAL_MS = 60_000;

export class Lanes {
  readonly #byProvider = new Map<ProviderName, Lane>();

  constructor(opts: LanesOptions) {
    // One budget and one scheduler per API key (the bot runs one key per provider).
    const byKey = new Map<string, Lane>();
    for (const client of opts.providers) {
      let lane = byKey.get(client.keyId);
      if (!lane) {
        const { requests, windowMs, sharedAcrossProcesses } = client.traits.rateLimit;
        const budget = new RateBudget({
          ...(opts.rateLimits?.[client.name] ?? { requests, windowMs }),
          now: opts.now,
          // A per-key limit, whoever sends: every process on this store (other bot processes,
          // `npm run imagine`, a restarted process and its predecessor's last grants) takes its
          // tokens from the same store buckets, so their sum stays within the provider's limit.
          ...(sharedAcrossProcesses ? { shared: sharedBudget(opts.store, client.keyId, opts.log) } : {}),
        });
        const scheduler = new PollScheduler({
          ...opts.scheduler,
          budget,
          now: opts.now,
          log: opts.log.child({ provider: client.name, keyId: client.keyId }),
        });
        lane = { client, budget, scheduler, gate: gateOf(budget, client, opts.metrics) };
        byKey.set(client.keyId, lane);
      }
      if (!this.#byProvider.has(client.name)) this.#byProvider.set(client.name, lane);
    }
  }

  /** The configured providers. */
  get providers(): Set<ProviderName> {
    return new Set(this.#byProvider.keys());
  }

  get(provider: ProviderName): Lane | undefined {
    return this.#byProvider.get(provider);
  }

  /** Rejects every pending poll and stops the schedulers' timers. */
  close(): void {
    for (const lane of new Set(this.#byProvider.values())) lane.scheduler.close();
  }
}

/** The budget's acquire as a RequestGate, timing each wait when there are metrics. */
function gateOf(budget: RateBudget, client: ProviderClient, metrics: Metrics | undefined): RequestGate {
  if (!metrics) return (kind, signal) => budget.acquire(kind, signal);
  const waited = metrics.rateBudgetWait.labels({ provider: client.name, key: client.keyId });
  return async (kind, signal) => {
    const started = performance.now();
    await budget.acquire(kind, signal);
    waited.observe((performance.now() - started) / 1000);
  };
}

function sharedBudget(store: Store, keyId: string, log: Logger): SharedRateBudget {
  let loggedAt = -Infinity;
  return {
    counters: store,
    keyId,
    onError: (err) => {
      const now = Date.now();
      if (now - loggedAt < BUDGET_STORE_ERROR_LOG_INTERVAL_MS) return;
      loggedAt = now;
      log.warn({ err, keyId }, 'rate budget: store unavailable; provider requests wait for it');
    },
  };
}
