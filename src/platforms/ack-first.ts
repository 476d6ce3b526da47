/**
 * Acknowledgements before work, for both platforms (Discord: interaction callbacks; Slack:
 * requests to /slack/events). Under a burst of interactions, the work that follows each
 * acknowledgement (parsing, quota, store writes, provider calls) and the adapter's background writes
 * (progress edits, results) would otherwise run between the gateway events still waiting to be
 * acknowledged and push their acks back.
 *
 * Two rules:
 *  - work waits while an acknowledgement is in flight — bounded by `maxWaitMs`, so a steady
 *    stream of interactions delays it by at most that much;
 *  - waiting work is let go in small batches, one batch per event-loop turn, each after pending
 *    I/O has run, sized by how long the last turn took (TURN_BUDGET_MS): the rule reacts, so a
 *    batch grown on cheap pieces may hold heavier ones, at most MAX_BATCH, for one turn. With the embedded
 *    store, a job's submission is synchronous CPU work from start to its first network call
 *    (node:sqlite resolves every store promise at once): releasing hundreds of them together
 *    used to block the loop for hundreds of milliseconds while the next interactions sat unread
 *    in the gateway socket (bench/discord.ts measured the bot's p99 at 2–3× a bare client's).
 *    One piece per turn, the rule before, kept stalls short but capped the whole bot at one
 *    piece of work per turn: ~200 pieces/s under load, 30–35 jobs/s however idle the CPU
 *    (`npm run bench -- jobs`). So the batch grows by one piece per turn that stayed within the
 *    budget and halves after a turn that went over it (as TCP's congestion window does).
 */
export const ACK_PRIORITY_MAX_WAIT_MS = 1_000;
/**
 * The longest event-loop turn (pump to pump) after which the next batch of work may still grow;
 * a longer turn halves it. Half of ACK_QUIET_MS: an interaction arriving mid-turn waits less than
 * work is held for one. Measured side by side (`npm run bench -- slack jobs`): 10 ms with a
 * doubling batch raised the sustained ack p99 to 2.4× a bare Bolt app's; 5 ms with a growing one
 * measured 1.38–2.07× (one piece per turn: 1.52× the same hour) while jobs/s went from
 * 0.25–0.31× to 0.38–0.59× the floor script.
 */
export const TURN_BUDGET_MS = 5;
/** The most pieces of work let go in one turn. */
export const MAX_BATCH = 64;
/** See AckFirst.quietMs. */
export const ACK_QUIET_MS = 10;

export class AckFirst {
  readonly maxWaitMs: number;
  readonly #now: () => number;
  #acksInFlight = 0;
  /** Work waiting for its turn, oldest first. */
  readonly #waiting: { since: number; go: () => void }[] = [];
  #pumpScheduled = false;
  #holdTimer: NodeJS.Timeout | undefined;
  /** Pieces let go in the next turn (see TURN_BUDGET_MS): +1 after a short turn, halved after a long one. */
  #batch = 1;
  /** When the previous turn let work go (NaN when it let none go: no turn to measure). */
  #releasedAt = NaN;

  /**
   * Also hold work until no acknowledgement has begun for this long (0: off). A burst does not
   * arrive all at once (Slack: one HTTP connection at a time; Discord: gateway frames), so between
   * two of its interactions no ack may be in flight although more are on their way. 10 ms: the
   * bench's bursts (bench/discord.ts, bench/slack.ts) measured the bot's p99 at 0.7–1.2× the bare
   * client's with it, 1.2–3× without.
   */
  readonly quietMs: number;
  #lastBegunAt = -Infinity;
  readonly #onAck: ((seconds: number) => void) | undefined;

  /**
   * `onAck`: told how long each successful ack() took (imagine_ack_latency_seconds). The
   * adapters call ack() in the same turn as the interaction arrived (before any I/O), so this is
   * from receipt to the acknowledgement.
   */
  constructor(
    maxWaitMs = ACK_PRIORITY_MAX_WAIT_MS,
    now: () => number = () => performance.now(),
    opts: { quietMs?: number; onAck?: (seconds: number) => void } = {},
  ) {
    this.maxWaitMs = maxWaitMs;
    this.#now = now;
    this.quietMs = opts.quietMs ?? ACK_QUIET_MS;
    this.#onAck = opts.onAck;
  }

  /** Acknowledgements in flight (for tests and diagnostics). */
  get acksInFlight(): number {
    return this.#acksInFlight;
  }

  /** Pieces of work waiting for their turn. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Wraps the first response of an interaction (Discord: the interaction callback). */
  async ack<T>(send: () => Promise<T>): Promise<T> {
    const started = this.#now();
    const done = this.begin();
    try {
      const sent = await send();
      this.#onAck?.((this.#now() - started) / 1000);
      return sent;
    } finally {
      done();
    }
  }

  /**
   * Marks an acknowledgement in flight until the returned function is called (once; later calls
   * do nothing). Slack: from a request's arrival on /slack/events until its response is sent.
   */
  begin(): () => void {
    this.#acksInFlight += 1;
    this.#lastBegunAt = this.#now();
    let open = true;
    return () => {
      if (!open) return;
      open = false;
      this.#acksInFlight -= 1;
      if (this.#acksInFlight === 0) this.#schedulePump();
    };
  }

  /**
   * Resolves when it is this piece of work's turn: never in the same event-loop turn (pending
   * I/O runs first), never while an acknowledgement is in flight unless the work has waited
   * `maxWaitMs`, and with only as many other pieces in the same turn as TURN_BUDGET_MS allows.
   */
  turn(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#waiting.push({ since: this.#now(), go: resolve });
      this.#schedulePump();
    });
  }

  #schedulePump(): void {
    if (this.#pumpScheduled || this.#waiting.length === 0) return;
    this.#pumpScheduled = true;
    // setImmediate runs after the poll phase: gateway events and responses already received
    // are handled before the next piece of work.
    setImmediate(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  #pump(): void {
    const head = this.#waiting[0];
    if (!head) {
      this.#releasedAt = NaN;
      return;
    }
    if (this.#holdTimer) clearTimeout(this.#holdTimer);
    this.#holdTimer = undefined;
    const now = this.#now();
    const heldFor = now - head.since;
    const quietIn = this.#lastBegunAt + this.quietMs - now;
    if ((this.#acksInFlight > 0 || quietIn > 0) && heldFor < this.maxWaitMs) {
      // Woken again by the last ack in flight, when it has been quiet long enough, or when the
      // head has waited long enough.
      const untilMaxWait = this.maxWaitMs - heldFor;
      this.#holdTimer = setTimeout(
        () => {
          this.#holdTimer = undefined;
          this.#schedulePump();
        },
        Math.max(1, Math.ceil(this.#acksInFlight > 0 ? untilMaxWait : Math.min(untilMaxWait, quietIn))),
      );
      this.#releasedAt = NaN;
      return;
    }
    // The turn since the last release: the work it let go (up to its first I/O) and the I/O that came in.
    const turnMs = now - this.#releasedAt;
    // After a pause (nothing let go last turn) it starts again from one piece.
    if (Number.isNaN(turnMs)) this.#batch = 1;
    else if (turnMs <= TURN_BUDGET_MS) this.#batch = Math.min(MAX_BATCH, this.#batch + 1);
    else this.#batch = Math.max(1, this.#batch >> 1);
    for (let i = 0; i < this.#batch && this.#waiting.length > 0; i++) this.#waiting.shift()!.go();
    // Nothing left: the next work starts a new run of turns, from one piece.
    this.#releasedAt = this.#waiting.length > 0 ? now : NaN;
    this.#schedulePump();
  }
}
