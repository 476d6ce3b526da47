/**
 * Renders a Slack job's life into its one public message (the placeholder) and delivers the
 * result: the images with files.uploadV2 (getUploadURLExternal → upload → completeUploadExternal
 * with channel_id + thread_ts) into the placeholder's channel/thread, then the placeholder
 * updated with the summary and buttons. Works for jobs resumed after a restart: everything
 * needed is in job.request.location (channel, thread, placeholder ts, uploaded file ids).
 *
 * Edits are throttled per message: a state change edits at once, elapsed-time ticks at most
 * every `editIntervalMs`; edits of one message are serialised so an old state never overwrites a
 * newer one, and a 429 pauses ticks until Retry-After has passed.
 */
import { stat } from 'node:fs/promises';
import { EXTENSION_BY_MIME } from '../../engine/image-sniff.ts';
import type { Deliverer, JobRecord, ProgressEvent } from '../../engine/job.ts';
import { truncatePrompt } from '../../../commands/render.ts';
import { failedMessage, imagesOf, placeholderMessage, queuedEvent, resultMessage, undeliverableMessage, type SlackMessageContent } from './blocks.ts';
import {
  background,
  inChannel,
  interactive,
  retryAfterMs,
  slackApiUrl,
  slackErrorCode,
  slackLocationSchema,
  tellUser,
  type SlackContext,
  type SlackLocation,
  type Where,
} from './context.ts';
import { UploadRefusedError, postToUploadUrl } from './files.ts';

export interface Placeholder {
  channel: string;
  ts: string;
  threadTs?: string;
}


function locationOf(job: JobRecord): SlackLocation | undefined {
  const parsed = slackLocationSchema.safeParse(job.request.location);
  return parsed.success ? parsed.data : undefined;
}

function whereOf(loc: SlackLocation): Where {
  return {
    channel: loc.channel,
    user: loc.user,
    ...(loc.team ? { team: loc.team } : {}),
    ...(loc.threadTs ? { threadTs: loc.threadTs } : {}),
    ...(loc.responseUrl ? { responseUrl: loc.responseUrl } : {}),
  };
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

/** A placeholder rate limited for longer than this is not posted late (the result will do). */
const PLACEHOLDER_RETRY_MAX_MS = 60_000;

export class SlackDeliverer implements Deliverer {
  readonly #ctx: SlackContext;
  /** Placeholders being posted or posted by this process (resumed jobs read location.ts). */
  readonly #placeholders = new Map<string, Promise<Placeholder | undefined>>();
  /** Submissions in flight: a job can finish before its submitter registered the placeholder. */
  readonly #submitting = new Set<Promise<unknown>>();
  readonly #edits = new Map<string, EditState>();
  /** Jobs waiting to post a placeholder that was rate limited (until delivery starts). */
  readonly #late = new Set<string>();
  /** chat.update was rate limited: no elapsed-time ticks before this time. */
  #ticksPausedUntil = 0;
  /** Token bucket for placeholder edits across the workspace (tuning.progressEditsPerMinute). */
  #editTokens: number;
  #editTokensAt: number;

  constructor(ctx: SlackContext) {
    this.#ctx = ctx;
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
    const refill = ((now - this.#editTokensAt) * this.#ctx.tuning.progressEditsPerMinute) / 60_000;
    this.#editTokens = Math.min(this.#editCapacity(), this.#editTokens + refill);
    this.#editTokensAt = now;
    const reserve = forChange ? 1 : 2;
    if (this.#editTokens < reserve) return false;
    this.#editTokens -= 1;
    return true;
  }

  /** Wraps a submission so deliveries wait for the placeholder it is about to post. */
  trackSubmission<T>(p: Promise<T>): Promise<T> {
    this.#submitting.add(p);
    const done = () => this.#submitting.delete(p);
    p.then(done, done);
    return p;
  }

  /**
   * Posts the first placeholder of a freshly submitted job, records it, and returns it. When the
   * bot cannot post in the conversation (a private channel or a DM it is not part of), the job
   * moves to the requester's direct messages with the bot, so its result is never lost.
   */
  postPlaceholder(job: JobRecord, where: Where): Promise<Placeholder | undefined> {
    const posting = (async (): Promise<Placeholder | undefined> => {
      const ctx = this.#ctx;
      const content = placeholderMessage(job, queuedEvent(job, ctx.tuning.now()));
      const post = (channel: string, threadTs: string | undefined) =>
        interactive(ctx, () =>
          ctx.client.chat.postMessage({ channel, ...(threadTs ? { thread_ts: threadTs } : {}), ...content, unfurl_links: false, unfurl_media: false }),
        );
      try {
        let res;
        let moved = false;
        try {
          res = await inChannel(ctx, where.channel, () => post(where.channel, where.threadTs));
        } catch (err) {
          const code = slackErrorCode(err);
          if (code !== 'not_in_channel' && code !== 'channel_not_found') throw err;
          ctx.log.info({ jobId: job.id, channel: where.channel, code }, 'cannot post in the conversation; using a direct message');
          // chat.postMessage to a user id posts in the app's DM with them (answering with the D… id).
          res = await post(where.user, undefined);
          moved = true;
        }
        if (!res.ts) return undefined;
        // A DM's id comes back in `channel`; without it, the user id still addresses that DM.
        const channel = res.channel ?? (moved ? where.user : where.channel);
        const placeholder: Placeholder = { channel, ts: res.ts, ...(!moved && where.threadTs ? { threadTs: where.threadTs } : {}) };
        const patch = moved ? { ts: res.ts, channel, threadTs: '' } : { ts: res.ts };
        await ctx.engine.updateLocation(job.id, patch).catch((err: unknown) => ctx.log.warn({ err, jobId: job.id }, 'could not save the placeholder'));
        if (moved) {
          await tellUser(ctx, where, "I'm not a member of this conversation, so I'll post your images in our direct messages. To get them here, invite me (/invite) and try again.");
        }
        return placeholder;
      } catch (err) {
        ctx.log.warn({ err: String(err), jobId: job.id, channel: where.channel }, 'could not post the placeholder');
        // Rate limited for longer than an interactive path waits (a busy channel): post it once
        // Slack allows, unless the result came first (then the result is posted as a new message).
        const wait = retryAfterMs(err);
        if (wait !== undefined && wait <= PLACEHOLDER_RETRY_MAX_MS) this.#postLater(job, where, wait);
        return undefined;
      }
    })();
    this.#placeholders.set(job.id, posting);
    // A state change that arrived while posting is shown as soon as the placeholder exists.
    void posting.then(() => this.#kick(job.id));
    return posting;
  }

  #postLater(job: JobRecord, where: Where, waitMs: number): void {
    const ctx = this.#ctx;
    this.#late.add(job.id);
    ctx.track(
      (async () => {
        await ctx.tuning.sleep(waitMs);
        // Delivery started meanwhile (and took the mark): it posts the result itself.
        if (!this.#late.delete(job.id)) return;
        await this.postPlaceholder(job, where);
      })(),
      'late placeholder',
    );
  }

  async #placeholderFor(job: JobRecord, loc: SlackLocation | undefined): Promise<Placeholder | undefined> {
    if (!this.#placeholders.has(job.id) && this.#submitting.size > 0) await Promise.allSettled([...this.#submitting]);
    const pending = this.#placeholders.get(job.id);
    if (pending) {
      const p = await pending;
      if (p) return p;
    }
    if (loc?.ts) return { channel: loc.channel, ts: loc.ts, ...(loc.threadTs ? { threadTs: loc.threadTs } : {}) };
    return undefined;
  }

  /** The placeholder only if already known (no waiting): progress must never block. */
  #knownPlaceholder(job: JobRecord): Placeholder | undefined {
    const loc = locationOf(job);
    return loc?.ts ? { channel: loc.channel, ts: loc.ts, ...(loc.threadTs ? { threadTs: loc.threadTs } : {}) } : undefined;
  }

  progress(job: JobRecord, event: ProgressEvent): void {
    if (job.request.requester.platform !== 'slack') return;
    let state = this.#edits.get(job.id);
    if (!state) {
      state = { latest: undefined, changePending: false, lastEditAt: 0, running: undefined, closed: false };
      this.#edits.set(job.id, state);
    }
    if (state.closed) return;
    state.latest = { job, event };
    if (event.changed) state.changePending = true;
    const now = this.#ctx.tuning.now();
    if (!event.changed && (now - state.lastEditAt < this.#ctx.tuning.editIntervalMs || now < this.#ticksPausedUntil)) return;
    this.#kick(job.id);
  }

  #kick(jobId: string): void {
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
      const placeholder = (await this.#placeholders.get(jobId)) ?? this.#knownPlaceholder(job);
      if (!placeholder || state.closed) return; // kept in `latest`; shown once the placeholder exists
      // Over budget: keep it in `latest`; the engine's next tick tries again.
      if (!this.#takeEditToken(state.changePending)) return;
      state.latest = undefined;
      state.changePending = false;
      try {
        // Progress edits never wait on a rate limit: the next tick shows the newer state anyway.
        await ctx.client.chat.update({ channel: placeholder.channel, ts: placeholder.ts, ...placeholderMessage(job, event) });
        state.lastEditAt = ctx.tuning.now();
      } catch (err) {
        const retryAfter = (err as { retryAfter?: number }).retryAfter;
        if (typeof retryAfter === 'number') this.#ticksPausedUntil = ctx.tuning.now() + retryAfter * 1000;
        ctx.log.warn({ err: String(err), jobId }, 'placeholder edit failed');
        return;
      }
    }
  }

  async deliver(job: JobRecord): Promise<void> {
    const ctx = this.#ctx;
    await ctx.ackFirst.turn();
    const log = ctx.log.child({ jobId: job.id });
    const loc = locationOf(job);
    if (!loc) {
      log.error({ location: job.request.location }, 'slack job without a usable location; nothing to deliver to');
      return;
    }
    this.#late.delete(job.id);
    // Stop progress edits, and let an edit in flight finish so it cannot overwrite the result.
    const edit = this.#edits.get(job.id);
    if (edit) {
      edit.closed = true;
      await edit.running;
    }
    const where = whereOf(loc);
    const placeholder = await this.#placeholderFor(job, loc);
    const channel = placeholder?.channel ?? loc.channel;
    const threadTs = placeholder?.threadTs ?? loc.threadTs;

    const images = imagesOf(job);
    let content: SlackMessageContent;
    if (job.state === 'succeeded' && images.length > 0) {
      if (!loc.fileIds) {
        const fileIds = await this.#upload(job, images, channel, threadTs);
        await ctx.engine.updateLocation(job.id, { fileIds });
      }
      content = resultMessage(job, ctx.engine.models);
    } else {
      content = failedMessage(job, ctx.engine.models);
      if (!loc.failureNotified) {
        const sentence = job.error?.userMessage ?? job.tasks.find((t) => t.error)?.error?.userMessage;
        if (sentence) await tellUser(ctx, { ...where, channel }, sentence);
        await ctx.engine.updateLocation(job.id, { failureNotified: true }).catch(() => undefined);
      }
    }

    await this.#showFinal(job, placeholder, channel, threadTs, content);
    this.#placeholders.delete(job.id);
    this.#edits.delete(job.id);
    log.info({ state: job.state, images: images.length, channel }, 'slack result delivered');
  }

  /**
   * The engine stopped retrying this job's delivery: the placeholder says the images are made
   * but Slack refused them, and the requester is told privately. Never throws.
   */
  async undeliverable(job: JobRecord, err: unknown): Promise<void> {
    const ctx = this.#ctx;
    const loc = locationOf(job);
    if (!loc) return;
    // Slack's own error code, else a plain phrase: internal errors (paths, addresses) stay in the log.
    const reason = slackErrorCode(err) ?? (err instanceof UploadRefusedError ? `the upload was refused with HTTP ${err.status}` : 'an error while posting them');
    const content = undeliverableMessage(job, reason);
    const placeholder = await this.#placeholderFor(job, loc).catch(() => undefined);
    if (placeholder) {
      await interactive(ctx, () => ctx.client.chat.update({ channel: placeholder.channel, ts: placeholder.ts, ...content })).catch((e: unknown) =>
        ctx.log.warn({ err: String(e), jobId: job.id }, 'could not show the delivery failure in the placeholder'),
      );
    }
    await tellUser(ctx, { ...whereOf(loc), channel: placeholder?.channel ?? loc.channel }, content.text);
  }

  /**
   * The external upload flow (what files.uploadV2 does), with the bytes streamed from disk:
   * files.getUploadURLExternal per image → POST the bytes → one files.completeUploadExternal
   * sharing them all into the channel (and thread), so they arrive as one message.
   */
  async #upload(job: JobRecord, images: ReturnType<typeof imagesOf>, channel: string, threadTs: string | undefined): Promise<string[]> {
    const ctx = this.#ctx;
    const prompt = truncatePrompt(job.request.prompt, 200);
    const files = await Promise.all(
      images.map(async ({ index, image }) => {
        const filename = `imagine-${job.id.slice(0, 12)}-${index + 1}.${EXTENSION_BY_MIME[image.mime]}`;
        const { size } = await stat(image.path);
        const target = await background(ctx, () => ctx.client.files.getUploadURLExternal({ filename, length: size, alt_text: prompt }));
        if (!target.upload_url || !target.file_id) throw new Error('files.getUploadURLExternal gave no upload_url');
        await postToUploadUrl({ uploadUrl: target.upload_url, path: image.path, filename, mime: image.mime, token: ctx.botToken, apiUrl: slackApiUrl(ctx.config) });
        return { id: target.file_id, title: images.length > 1 ? `${prompt} (${index + 1})` : prompt };
      }),
    );
    await inChannel(ctx, channel, () =>
      background(ctx, () => ctx.client.files.completeUploadExternal({ files: files as [{ id: string; title: string }], channel_id: channel, ...(threadTs ? { thread_ts: threadTs } : {}) })),
    );
    return files.map((f) => f.id);
  }

  /** Turns the placeholder into the final message; posts a new one when it is gone or never existed. */
  async #showFinal(job: JobRecord, placeholder: Placeholder | undefined, channel: string, threadTs: string | undefined, content: SlackMessageContent) {
    const ctx = this.#ctx;
    if (placeholder) {
      try {
        await background(ctx, () => ctx.client.chat.update({ channel: placeholder.channel, ts: placeholder.ts, ...content }));
        return;
      } catch (err) {
        const code = slackErrorCode(err);
        if (code !== 'message_not_found' && code !== 'cant_update_message') throw err;
        ctx.log.warn({ jobId: job.id, code }, 'placeholder gone; posting the result as a new message');
      }
    }
    const res = await inChannel(ctx, channel, () =>
      background(ctx, () =>
        ctx.client.chat.postMessage({ channel, ...(threadTs ? { thread_ts: threadTs } : {}), ...content, unfurl_links: false, unfurl_media: false }),
      ),
    );
    if (res.ts) await ctx.engine.updateLocation(job.id, { ts: res.ts }).catch(() => undefined);
  }

  /** Waits for in-flight edits (stop()). */
  async close(): Promise<void> {
    const running = [...this.#edits.values()].map((s) => {
      s.closed = true;
      return s.running;
    });
    await Promise.allSettled(running);
  }
}
