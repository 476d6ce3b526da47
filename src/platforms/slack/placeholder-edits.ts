/**
 * Progress shown in a job's placeholder, throttled: per message, a state change edits at once and
 * elapsed-time ticks at most every `editIntervalMs`; edits of one message are serialised so an
 * old state never overwrites a newer one; a 429 pauses ticks until Retry-After has passed; and
 * the whole workspace shares one edit budget (chat.update is Tier 3: docs/slack.md "Posting").
 */
import type { JobRecord, ProgressEvent } from '../../engine/job.ts';
import { placeholderMessage } from './blocks.ts';
import type { SlackContext } from './context.ts';

/** Tokens a tick needs in the bucket: it leaves the last one to a state change. */
const TICK_TOKEN_RESERVE = 2;

/** A job's placeholder message. */
export interface Placeholder {
  channel: string;
  ts: string;
  threadTs?: string;
}

/** Per job: the latest progress not yet shown, and the edit loop's state. */
interface EditState {
  latest: { job: JobRecord; event: ProgressEvent } | undefined;
  /** A state change arrived that the placeholder does not show yet. */
  changePending: boolean;
  lastEditAt: number;
  running: Promise<void> | undefined;
  closed: boolean;
}

export class PlaceholderEdits {
  readonly #ctx: SlackContext;
  /** The job's placeholder once known (waiting for one being posted). */
  readonly #placeholderOf: (job: JobRecord) => Promise<Placeholder | undefined>;
  readonly #edits = new Map<string, EditState>();
  /** chat.update was rate limited: no elapsed-time ticks before this time. */
  #ticksPausedUntil = 0;
  /** Token bucket for placeholder edits across the workspace (tuning.progressEditsPerMinute). */
  #editTokens: number;
  #editTokensAt: number;

  constructor(ctx: SlackContext, placeholderOf: (job: JobRecord) => Promise<Placeholder | undefined>) {
    this.#ctx = ctx;
    this.#placeholderOf = placeholderOf;
    this.#editTokens = this.#editCapacity();
    this.#editTokensAt = ctx.tuning.now();
  }

  /** Ten seconds' worth of edits may be spent at once. */
  #editCapacity(): number {
    return Math.max(2, Math.ceil(this.#ctx.tuning.progressEditsPerMinute / 6));
  }

  /**
   * Takes one edit from the workspace budget. Elapsed-time ticks leave the last tokens to state
   * changes, so under load users still see "generating" → "downloading", just fewer clock ticks.
   */
  #takeEditToken(forChange: boolean): boolean {
    const now = this.#ctx.tuning.now();
    this.#editTokens = this.#tokensAt(now);
    this.#editTokensAt = now;
    const reserve = forChange ? 1 : TICK_TOKEN_RESERVE;
    if (this.#editTokens < reserve) return false;
    this.#editTokens -= 1;
    return true;
  }

  /** The workspace budget's tokens at `now`, refilled since it was last taken from. */
  #tokensAt(now: number): number {
    const refill = ((now - this.#editTokensAt) * this.#ctx.tuning.progressEditsPerMinute) / 60_000;
    return Math.min(this.#editCapacity(), this.#editTokens + refill);
  }

  /** A tick is due for a job whose last edit was at `lastEditAt`: the interval has passed and no 429 pauses ticks. */
  #tickTimeDue(lastEditAt: number, now: number): boolean {
    return now - lastEditAt >= this.#ctx.tuning.editIntervalMs && now >= this.#ticksPausedUntil;
  }

  /**
   * Whether an elapsed-time tick of this job would be edited now: its last edit is editIntervalMs
   * old, ticks are not paused by a 429, and the workspace budget has a token to spare for a tick.
   * Reads the budget without taking from it.
   */
  tickDue(jobId: string): boolean {
    const state = this.#edits.get(jobId);
    if (state?.closed) return false;
    const now = this.#ctx.tuning.now();
    return this.#tickTimeDue(state?.lastEditAt ?? 0, now) && this.#tokensAt(now) >= TICK_TOKEN_RESERVE;
  }

  progress(job: JobRecord, event: ProgressEvent): void {
    let state = this.#edits.get(job.id);
    if (!state) {
      state = { latest: undefined, changePending: false, lastEditAt: 0, running: undefined, closed: false };
      this.#edits.set(job.id, state);
    }
    if (state.closed) return;
    const tickDue = this.#tickTimeDue(state.lastEditAt, this.#ctx.tuning.now());
    // A tick that would not be shown is dropped, not kept: the next one brings fresher numbers, and
    // a job that only waits holds no copy of its record here (`npm run bench -- jobs`, memory).
    if (!event.changed && !state.changePending && !tickDue) return;
    state.latest = { job, event };
    if (event.changed) state.changePending = true;
    if (!event.changed && !tickDue) return;
    this.kick(job.id);
  }

  /** Shows the latest progress of a job now (e.g. once its placeholder exists). */
  kick(jobId: string): void {
    const state = this.#edits.get(jobId);
    if (!state || state.running || state.closed || !state.latest) return;
    const run = this.#editLoop(jobId, state).finally(() => {
      state.running = undefined;
    });
    state.running = run;
    this.#ctx.track(run, 'placeholder edit');
  }

  async #editLoop(jobId: string, state: EditState): Promise<void> {
    const ctx = this.#ctx;
    while (state.latest && !state.closed) {
      await ctx.ackFirst.turn();
      if (!state.latest || state.closed) return;
      const { job, event } = state.latest;
      const placeholder = await this.#placeholderOf(job);
      if (!placeholder || state.closed) return; // kept in `latest`; shown once the placeholder exists
      // Over budget: a state change stays in `latest` for the engine's next tick; a tick is dropped.
      if (!this.#takeEditToken(state.changePending)) {
        if (!state.changePending) state.latest = undefined;
        return;
      }
      state.latest = undefined;
      state.changePending = false;
      try {
        // Progress edits never wait on a rate limit: the next tick shows the newer state anyway.
        await ctx.web.chat.update({ channel: placeholder.channel, ts: placeholder.ts, ...placeholderMessage(job, event) });
        state.lastEditAt = ctx.tuning.now();
      } catch (err) {
        const retryAfter = (err as { retryAfter?: number }).retryAfter;
        if (typeof retryAfter === 'number') this.#ticksPausedUntil = ctx.tuning.now() + retryAfter * 1000;
        ctx.log.warn({ err: String(err), jobId }, 'placeholder edit failed');
        return;
      }
    }
  }

  /** Stops a job's edits and waits for one in flight, so that it cannot overwrite the result. */
  async stop(jobId: string): Promise<void> {
    const edit = this.#edits.get(jobId);
    if (!edit) return;
    edit.closed = true;
    await edit.running;
  }

  /** Drops a job's state; an edit in flight finishes, and nothing more follows it. */
  forget(jobId: string): void {
    const state = this.#edits.get(jobId);
    if (!state) return;
    state.closed = true;
    this.#edits.delete(jobId);
  }

  /** The jobs whose edits' state is kept (until forget). */
  jobIds(): IterableIterator<string> {
    return this.#edits.keys();
  }

  /** Stops every job's edits and waits for those in flight (the adapter's stop()). */
  async close(): Promise<void> {
    const running = [...this.#edits.values()].map((s) => {
      s.closed = true;
      return s.running;
    });
    await Promise.allSettled(running);
  }
}
