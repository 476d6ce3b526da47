/**
 * Result images just written to disk, kept in memory for the moment between their download and
 * their delivery, so the deliverer sends the bytes it already has instead of reading the file
 * back (an open, reads and a close in libuv's thread pool per image: about as much main-thread
 * CPU as the rest of a result's trip; README.md, "A result's way through the bot").
 *
 * The file stays the source of truth: it is written and renamed into place first, a restart
 * delivers from it, and a deliverer that finds nothing here (a retry, a restart, a result larger
 * than an entry may be) reads it as before. An entry is handed over once (`take`) and lives at
 * most `ttlMs`; all entries together hold at most `maxBytes` (the oldest go first), so a bot whose
 * deliverer does not take them, or a burst of results, costs bounded memory.
 */

import { stat } from 'node:fs/promises';

export const RECENT_RESULTS_MAX_BYTES = 32 * 1024 * 1024;
/** Larger results are not kept: read from disk when delivered. */
export const RECENT_RESULT_MAX_ENTRY_BYTES = 8 * 1024 * 1024;
/** Longer than a delivery takes after its download, short enough that leftovers go soon. */
export const RECENT_RESULTS_TTL_MS = 30_000;

export class RecentResults {
  readonly #entries = new Map<string, { bytes: Buffer; at: number }>();
  #total = 0;
  readonly #maxBytes: number;
  readonly #ttlMs: number;
  readonly #now: () => number;
  #sweep: NodeJS.Timeout | undefined;

  constructor(opts: { maxBytes?: number; ttlMs?: number; now?: () => number } = {}) {
    this.#maxBytes = opts.maxBytes ?? RECENT_RESULTS_MAX_BYTES;
    this.#ttlMs = opts.ttlMs ?? RECENT_RESULTS_TTL_MS;
    this.#now = opts.now ?? Date.now;
  }

  /** Keeps `bytes`, the content of the file at `path`, evicting the oldest entries past the budget. */
  remember(path: string, bytes: Buffer): void {
    this.#drop(path);
    if (bytes.length > Math.min(RECENT_RESULT_MAX_ENTRY_BYTES, this.#maxBytes)) return;
    this.#entries.set(path, { bytes, at: this.#now() });
    this.#total += bytes.length;
    this.#evict();
    this.#armSweep();
  }

  /** The bytes of the file at `path`, if kept and fresh; handed over once. */
  take(path: string): Buffer | undefined {
    const entry = this.#entries.get(path);
    if (!entry) return undefined;
    this.#drop(path);
    return this.#now() - entry.at <= this.#ttlMs ? entry.bytes : undefined;
  }

  /** The file was renamed: its entry follows it. */
  move(from: string, to: string): void {
    const entry = this.#entries.get(from);
    if (!entry) return;
    this.#drop(from);
    this.remember(to, entry.bytes);
  }

  /** Bytes held now (for tests and the bench). */
  get bytes(): number {
    return this.#total;
  }

  #drop(path: string): void {
    const entry = this.#entries.get(path);
    if (!entry) return;
    this.#entries.delete(path);
    this.#total -= entry.bytes.length;
  }

  #evict(): void {
    const now = this.#now();
    // Map order is insertion order: the oldest first.
    for (const [path, entry] of this.#entries) {
      if (this.#total <= this.#maxBytes && now - entry.at <= this.#ttlMs) break;
      this.#drop(path);
    }
  }

  /** Leftovers go after their time even when no other result comes to push them out. */
  #armSweep(): void {
    if (this.#sweep || this.#entries.size === 0) return;
    this.#sweep = setTimeout(() => {
      this.#sweep = undefined;
      this.#evict();
      this.#armSweep();
    }, this.#ttlMs + 1).unref();
  }
}

/** The process's one instance: result paths are absolute and unique per data directory. */
export const recentResults = new RecentResults();

/** What a deliverer sends for the result file at `path`: its bytes when still in hand, else its size (to stream it). */
export async function resultContent(path: string): Promise<{ bytes?: Buffer; size: number }> {
  const bytes = recentResults.take(path);
  return bytes ? { bytes, size: bytes.length } : { size: (await stat(path)).size };
}
