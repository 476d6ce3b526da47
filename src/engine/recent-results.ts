/**
 * Result images just written to disk, kept in memory for the moment between their download and
 * their delivery, so the deliverer sends the bytes it already has instead of reading the file
 * back (a stat, an open, reads and a close in libuv's thread pool per image; docs/benchmarks.md,
 * "A result's way through the bot", measures this together with the download's batched writes).
 *
 * The file stays the source of truth: it is written and renamed into place first, a restart
 * delivers from it, and a deliverer that finds nothing here (a retry, a restart, a result larger
 * than an entry may be, one pushed out by newer ones) reads it as before. An entry is handed over
 * once (`take`) and lives at most `ttlMs`. Downloads reserve their declared size before copying a
 * body (`reserve`), so the bodies being copied and the entries together never hold more than
 * `maxBytes`: a burst of results, or a bot whose deliverer takes none, costs bounded memory.
 *
 * One instance per app (src/app.ts), passed to the engine (DownloadResultOptions.keep) and to the
 * platforms' deliverers; the engine keeps bodies only for the jobs of a deliverer that takes them
 * (Deliverer.takesKeptResults: Discord's; Slack's has the results thread upload the file). The
 * results thread (results-worker.ts) copies bodies under a budget of its own, the same size, and
 * hands each over (moved, not copied) as it is whole: up to twice RECENT_RESULTS_MAX_BYTES per process.
 */
import type { JobImage } from './job.ts';
import { MiB } from '../util/units.ts';

export const RECENT_RESULTS_MAX_BYTES = 32 * MiB;
/** Larger results are not kept: read from disk when delivered. */
export const RECENT_RESULT_MAX_ENTRY_BYTES = 8 * MiB;
/** Longer than a delivery takes after its download, short enough that leftovers go soon. */
export const RECENT_RESULTS_TTL_MS = 30_000;

export class RecentResults {
  readonly #entries = new Map<string, { bytes: Buffer; at: number }>();
  /** Bytes held by entries. */
  #held = 0;
  /** Bytes reserved by downloads copying a body. */
  #reserved = 0;
  readonly #maxBytes: number;
  readonly #ttlMs: number;
  readonly #now: () => number;
  #sweep: NodeJS.Timeout | undefined;

  constructor(opts: { maxBytes?: number; ttlMs?: number; now?: () => number } = {}) {
    this.#maxBytes = opts.maxBytes ?? RECENT_RESULTS_MAX_BYTES;
    this.#ttlMs = opts.ttlMs ?? RECENT_RESULTS_TTL_MS;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * The buffer a reserved body of `bytes` is copied into: memory of its own (never a slice of
   * Node's shared pool), so a thread can move it to another by transfer (results-thread.ts), and
   * a small kept body holds no pool alive. Not a SharedArrayBuffer: in a bot that posted bodies
   * across threads that way, every burst of 300 results added about 170 MB that stayed
   * (docs/benchmarks.md, "A result's way through the bot", which gives our reading of why).
   */
  allocate(bytes: number): Buffer {
    return Buffer.allocUnsafeSlow(bytes);
  }

  /**
   * Room for a body of `bytes` about to be copied, if it may be kept at all: older entries are
   * let go to make it. The copy then `commit`s it as an entry, or `release`s it.
   */
  reserve(bytes: number): boolean {
    if (bytes > this.#maxEntryBytes || this.#reserved + bytes > this.#maxBytes) return false;
    this.#reserved += bytes;
    this.#evict();
    return true;
  }

  release(bytes: number): void {
    this.#reserved = Math.max(0, this.#reserved - bytes);
  }

  /** Keeps `bytes`, the content of the file at `path`, letting the oldest entries go past the budget. */
  remember(path: string, bytes: Buffer, at = this.#now()): void {
    this.#drop(path);
    if (bytes.length > this.#maxEntryBytes) return;
    this.#entries.set(path, { bytes, at });
    this.#held += bytes.length;
    this.#evict();
    this.#armSweep();
  }

  /** A download's copy becomes the entry for `path`, its reservation turned into what the entry holds, in one step. */
  commit(path: string, bytes: Buffer, reserved: number): void {
    this.release(reserved);
    this.remember(path, bytes);
  }

  /** The bytes of the file at `path`, if kept and fresh; handed over once. */
  take(path: string): Buffer | undefined {
    const entry = this.#entries.get(path);
    if (!entry) return undefined;
    this.#drop(path);
    return this.#now() - entry.at <= this.#ttlMs ? entry.bytes : undefined;
  }

  /** Bytes held by entries and reserved by downloads (for tests). */
  get bytes(): { held: number; reserved: number } {
    return { held: this.#held, reserved: this.#reserved };
  }

  get #maxEntryBytes(): number {
    return Math.min(RECENT_RESULT_MAX_ENTRY_BYTES, this.#maxBytes);
  }

  #drop(path: string): void {
    const entry = this.#entries.get(path);
    if (!entry) return;
    this.#entries.delete(path);
    this.#held -= entry.bytes.length;
  }

  #evict(): void {
    const now = this.#now();
    // Map order is insertion order: the oldest first.
    for (const [path, entry] of this.#entries) {
      if (this.#held + this.#reserved <= this.#maxBytes && now - entry.at <= this.#ttlMs) break;
      this.#drop(path);
    }
  }

  /** Leftovers go when their time is up even when no other result comes to push them out. */
  #armSweep(): void {
    const oldest = this.#entries.values().next().value;
    if (this.#sweep || !oldest) return;
    this.#sweep = setTimeout(
      () => {
        this.#sweep = undefined;
        this.#evict();
        this.#armSweep();
      },
      Math.max(0, oldest.at + this.#ttlMs - this.#now()) + 1,
    ).unref();
  }
}

/**
 * What a deliverer sends for a result image: its bytes when still in hand, else its size as the
 * download recorded it (the file is read where it is sent; no stat here, on the event loop).
 */
export function resultContent(kept: RecentResults | undefined, image: Pick<JobImage, 'path' | 'bytes'>): { bytes?: Buffer; size: number } {
  const bytes = kept?.take(image.path);
  return bytes ? { bytes, size: bytes.length } : { size: image.bytes };
}
