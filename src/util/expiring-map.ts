/**
 * A Map whose entries count for `ttlMs` after they were set. Each `set` also drops the entries
 * that have expired, oldest first: a Map iterates in insertion order and `set` re-inserts, so the
 * sweep stops at the first live entry and looks at each key about once. Right after a set, the
 * map holds only what the last `ttlMs` of sets put in, however many keys (users, channels, jobs)
 * come and go; expired entries wait for the next set. `now` must not go back (Date.now, or a
 * test's clock).
 */
export class ExpiringMap<K, V> {
  readonly ttlMs: number;
  readonly #now: () => number;
  readonly #entries = new Map<K, { at: number; value: V }>();

  constructor(ttlMs: number, now: () => number = Date.now) {
    this.ttlMs = ttlMs;
    this.#now = now;
  }

  /** The value and how long ago it was set, while that is less than ttlMs. */
  entry(key: K): { value: V; ageMs: number } | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    const ageMs = this.#now() - e.at;
    return ageMs < this.ttlMs ? { value: e.value, ageMs } : undefined;
  }

  get(key: K): V | undefined {
    return this.entry(key)?.value;
  }

  has(key: K): boolean {
    return this.entry(key) !== undefined;
  }

  set(key: K, value: V): void {
    const now = this.#now();
    for (const [old, e] of this.#entries) {
      if (now - e.at < this.ttlMs) break;
      this.#entries.delete(old);
    }
    this.#entries.delete(key);
    this.#entries.set(key, { at: now, value });
  }

  delete(key: K): void {
    this.#entries.delete(key);
  }

  /** Entries held, expired ones not swept yet included. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * `key`'s promise while it counts, else `load()`'s, kept for the next asks. A promise that
   * rejects is dropped (unless replaced meanwhile), so the next ask tries again.
   */
  reuseOrLoad<T>(this: ExpiringMap<K, Promise<T>>, key: K, load: () => Promise<T>): Promise<T> {
    return this.get(key) ?? this.keepUnlessFailed(key, load());
  }

  /** Sets `key` to `value` and drops it again if it rejects (unless replaced meanwhile); returns `value`. */
  keepUnlessFailed<T>(this: ExpiringMap<K, Promise<T>>, key: K, value: Promise<T>): Promise<T> {
    this.set(key, value);
    value.catch(() => {
      if (this.#entries.get(key)?.value === value) this.#entries.delete(key);
    });
    return value;
  }
}
