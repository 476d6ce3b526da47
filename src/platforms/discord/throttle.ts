/**
 * Per-message edit throttling for placeholders (docs/discord.md "Rate limits and errors": about 5 edits per few
 * seconds per message). Per key (a job's placeholder):
 *  - at most one edit in flight;
 *  - a state change (`urgent`) goes out at once — right after the edit in flight, and never
 *    less than `minGapMs` after the previous edit, so a burst of state changes cannot overflow
 *    the message's bucket (then the latest state wins);
 *  - an elapsed-time tick goes out at most once per `intervalMs`;
 *  - only the latest pending edit is kept: a stale edit is never sent after a newer one;
 *  - `finish` drops whatever is pending, waits for the edit in flight, then runs the final
 *    write (the result) and closes the key, so no progress edit can overwrite a result.
 */
import { ExpiringMap } from '../../util/expiring-map.ts';

export const EDIT_INTERVAL_MS = 2_500;
/** The least time between two edits of one message, even for state changes (~5 per 5 s bucket). */
export const MIN_EDIT_GAP_MS = 1_000;
/** How long a finished key keeps ignoring late progress events. */
const CLOSED_MEMORY_MS = 60 * 60_000;

export type EditFn = () => Promise<void>;

interface Slot {
  inFlight: Promise<void> | undefined;
  pending: { edit: EditFn; urgent: boolean } | undefined;
  lastStartedAt: number;
  timer: NodeJS.Timeout | undefined;
  timerDueAt: number;
  /** Dropped (drop) while an edit was in flight: the slot goes when that edit ends. */
  dropped?: boolean;
}

export interface EditThrottleOptions {
  intervalMs?: number;
  minGapMs?: number;
  now?: () => number;
  /** Called when an edit throws (edits are best-effort; the final write's errors go to its caller). */
  onError?: (err: unknown, key: string) => void;
}

export class EditThrottle {
  readonly intervalMs: number;
  readonly minGapMs: number;
  readonly #now: () => number;
  readonly #onError: (err: unknown, key: string) => void;
  readonly #slots = new Map<string, Slot>();
  /** Keys finished within CLOSED_MEMORY_MS. */
  readonly #closed: ExpiringMap<string, true>;

  constructor(opts: EditThrottleOptions = {}) {
    this.intervalMs = opts.intervalMs ?? EDIT_INTERVAL_MS;
    this.minGapMs = Math.min(opts.minGapMs ?? MIN_EDIT_GAP_MS, this.intervalMs);
    this.#now = opts.now ?? Date.now;
    this.#closed = new ExpiringMap(CLOSED_MEMORY_MS, this.#now);
    this.#onError = opts.onError ?? (() => {});
  }

  /** Asks for an edit of `key`'s message. Never throws, never waits. */
  submit(key: string, edit: EditFn, urgent: boolean): void {
    if (this.#closed.has(key)) return;
    let slot = this.#slots.get(key);
    if (!slot) {
      slot = { inFlight: undefined, pending: undefined, lastStartedAt: -Infinity, timer: undefined, timerDueAt: Infinity };
      this.#slots.set(key, slot);
    }
    slot.dropped = false;
    // The latest edit replaces any pending one (it renders the newest state); urgency is kept.
    slot.pending = { edit, urgent: urgent || (slot.pending?.urgent ?? false) };
    if (!slot.inFlight) this.#schedule(key, slot);
  }

  /** Whether an edit for `key` waits for its turn (or `key` is closed): a newer one would only replace it. */
  waitingOrClosed(key: string): boolean {
    return this.#closed.has(key) || this.#slots.get(key)?.pending !== undefined;
  }

  /** Whether an edit for `key` is running or waiting. */
  busy(key: string): boolean {
    const slot = this.#slots.get(key);
    return !!slot && (!!slot.inFlight || !!slot.pending);
  }

  /**
   * Closes `key`: pending edits are dropped, the edit in flight is awaited, then `final` runs and
   * its result (or error) is returned. Later submits for `key` are ignored.
   */
  async finish<T>(key: string, final: () => Promise<T>): Promise<T> {
    this.#closed.set(key, true);
    const slot = this.#slots.get(key);
    if (slot) {
      if (slot.timer) clearTimeout(slot.timer);
      slot.timer = undefined;
      slot.pending = undefined;
      await slot.inFlight;
      this.#slots.delete(key);
    }
    return final();
  }

  /** Re-opens a key closed by `finish` (a delivery that failed and will be retried may edit again). */
  reopen(key: string): void {
    this.#closed.delete(key);
  }

  /**
   * Forgets `key` (its job's run here ended): a waiting edit is dropped. One in flight keeps its
   * slot until it ends, so that a finish (or a new edit) for the key still waits for it: no
   * progress edit may land after a result.
   */
  drop(key: string): void {
    const slot = this.#slots.get(key);
    if (!slot) return;
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = undefined;
    slot.timerDueAt = Infinity;
    slot.pending = undefined;
    if (slot.inFlight) slot.dropped = true;
    else this.#slots.delete(key);
  }

  /** Cancels every timer (shutdown). Edits in flight finish on their own. */
  stop(): void {
    for (const slot of this.#slots.values()) {
      if (slot.timer) clearTimeout(slot.timer);
      slot.timer = undefined;
      slot.pending = undefined;
    }
    this.#slots.clear();
  }

  /** Starts the pending edit now if it is due, else arms (or advances) the timer for it. */
  #schedule(key: string, slot: Slot): void {
    const next = slot.pending;
    if (!next) return;
    const dueAt = slot.lastStartedAt + (next.urgent ? this.minGapMs : this.intervalMs);
    const wait = dueAt - this.#now();
    if (wait <= 0) {
      if (slot.timer) clearTimeout(slot.timer);
      slot.timer = undefined;
      slot.timerDueAt = Infinity;
      slot.pending = undefined;
      this.#start(key, slot, next.edit);
      return;
    }
    if (slot.timer && slot.timerDueAt <= dueAt) return;
    if (slot.timer) clearTimeout(slot.timer);
    slot.timerDueAt = dueAt;
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      slot.timerDueAt = Infinity;
      if (this.#slots.get(key) === slot && !slot.inFlight) this.#schedule(key, slot);
    }, wait);
  }

  #start(key: string, slot: Slot, edit: EditFn): void {
    slot.lastStartedAt = this.#now();
    const run = (async () => {
      try {
        await edit();
      } catch (err) {
        this.#onError(err, key);
      }
    })();
    slot.inFlight = run;
    void run.then(() => {
      slot.inFlight = undefined;
      if (this.#slots.get(key) !== slot) return;
      if (slot.dropped) this.#slots.delete(key);
      else this.#schedule(key, slot);
    });
  }
}
