/**
 * Learned prices: each model's and resolution's per-image price as the providers REPORT it
 * (Runbase `costUsd`, RunBlob `price`; docs/providers.md "Costs and what is billable"), used as
 * the next estimate when a job reserves against the spend caps. Starts from the catalog's
 * documented prices (models.ts `estimatedUsd`), so a reservation is never a guess twice: once a
 * provider has charged for a model and size, the next job reserves exactly that.
 *
 * Why learn at all: a reservation above the real price leaves part of a cap idle (issue 10: with
 * $0.04 reserved for a $0.02 image, a $0.10 cap admitted 2 jobs instead of 5). One below it
 * lets the cap be overshot by the difference until settlement corrects it.
 *
 * Shared and durable: each price is one Keyv record (`prices:<model>:<resolution>`, one key per
 * pair so two processes learning different pairs never overwrite each other), so every process
 * on the store and every restart starts from what was learned. estimate() is synchronous (read
 * from memory on the admission path); the memory is refreshed from the store at most every
 * `refreshMs` (fresh() before an estimate), so a price learned by another process applies here
 * within that time, for one store round trip per period rather than one per job.
 */
import { MODEL_CATALOG, type ModelSpec, type Resolution } from '../models.ts';
import type { Store } from '../store.ts';

/** How stale the in-memory prices may get before fresh() re-reads the store. */
export const PRICE_REFRESH_MS = 30_000;

/** What one learned price record holds. */
interface StoredPrice {
  usd: number;
  /** When it was reported (epoch ms). */
  at: number;
}

/** The catalog's documented price of one image of `model` at `resolution` (the highest listed when that size has none). */
export function documentedUsdPerImage(model: ModelSpec, resolution: Resolution): number {
  return model.estimatedUsd[resolution] ?? Math.max(0, ...Object.values(model.estimatedUsd));
}

const priceKey = (modelKey: string, resolution: Resolution) => `prices:${modelKey}:${resolution}`;

export interface PriceBookOptions {
  /** The models whose prices are kept; default the whole catalog. */
  models?: readonly ModelSpec[];
  refreshMs?: number;
  now?: () => number;
}

export class PriceBook {
  readonly #store: Store;
  readonly #models: readonly ModelSpec[];
  readonly #refreshMs: number;
  readonly #now: () => number;
  /** Learned prices by `model:resolution`; absent: the documented one. */
  readonly #learned = new Map<string, number>();
  #refreshedAt = Number.NEGATIVE_INFINITY;
  #refreshing: Promise<void> | undefined;

  constructor(store: Store, opts: PriceBookOptions = {}) {
    this.#store = store;
    this.#models = opts.models ?? MODEL_CATALOG;
    this.#refreshMs = opts.refreshMs ?? PRICE_REFRESH_MS;
    this.#now = opts.now ?? Date.now;
  }

  /** The per-image price the next reservation uses: the last reported one, else the documented one. */
  estimate(model: ModelSpec, resolution: Resolution): number {
    return this.#learned.get(`${model.key}:${resolution}`) ?? documentedUsdPerImage(model, resolution);
  }

  /**
   * Re-reads the learned prices when the memory is older than `refreshMs` (always the first
   * time). One store round trip; concurrent callers share it. A failing store keeps the prices
   * already known (the documented ones at worst): settlement corrects any estimate anyway.
   */
  async fresh(): Promise<void> {
    if (this.#now() - this.#refreshedAt < this.#refreshMs) return;
    this.#refreshing ??= this.refresh().finally(() => {
      this.#refreshing = undefined;
    });
    await this.#refreshing;
  }

  /** Reads every learned price from the store now. */
  async refresh(): Promise<void> {
    const pairs = this.#models.flatMap((m) => m.resolutions.map((r) => [m.key, r] as const));
    const values = await this.#store.kv.getMany<StoredPrice>(pairs.map(([key, r]) => priceKey(key, r)));
    pairs.forEach(([key, r], i) => {
      const stored = values[i];
      if (stored && typeof stored.usd === 'number' && stored.usd > 0) this.#learned.set(`${key}:${r}`, stored.usd);
    });
    this.#refreshedAt = this.#now();
  }

  /**
   * Records a price a provider reported for one image. Zero is not a price (Runbase reports 0
   * for a failed, refunded run: docs/providers.md "Runbase cost"), and a price equal to what is
   * known is not written again (few store writes per job, issue 13).
   */
  async learn(model: ModelSpec, resolution: Resolution, usd: number): Promise<boolean> {
    if (!Number.isFinite(usd) || usd <= 0) return false;
    const id = `${model.key}:${resolution}`;
    if (this.#learned.get(id) === usd) return false;
    this.#learned.set(id, usd);
    await this.#store.kv.set(priceKey(model.key, resolution), { usd, at: this.#now() } satisfies StoredPrice);
    return true;
  }
}
