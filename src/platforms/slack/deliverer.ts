/**
 * Renders a Slack job's life into its one public message (the placeholder) and delivers the
 * result: the images with files.uploadV2 (getUploadURLExternal → upload → completeUploadExternal
 * with channel_id + thread_ts) into the placeholder's channel/thread, then the placeholder
 * updated with the summary and buttons. Works for jobs resumed after a restart: everything
 * needed is in job.request.location (channel, thread, placeholder ts, uploaded file ids).
 * Progress edits of the placeholder are throttled in placeholder-edits.ts.
 */
import type { Deliverer, JobRecord, ProgressEvent } from '../../engine/job.ts';
import { failedMessage, imagesOf, placeholderMessage, queuedEvent, resultMessage, undeliverableMessage, type SlackMessageContent } from './blocks.ts';
import {
  background,
  inChannel,
  interactive,
  retryAfterMs,
  slackErrorCode,
  slackLocationSchema,
  tellUser,
  type SlackContext,
  type SlackLocation,
  type Where,
} from './context.ts';
import { PlaceholderEdits, type Placeholder } from './placeholder-edits.ts';
import { UploadRefusedError, uploadImages } from './upload.ts';

export type { Placeholder } from './placeholder-edits.ts';

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

/** A placeholder rate limited for longer than this is not posted late (the result will do). */
const PLACEHOLDER_RETRY_MAX_MS = 60_000;

/** The engine link from a result's thread (its root message) to the latest result in it. */
export const resultThreadKey = (channel: string, threadTs: string) => `slack:thread:${channel}:${threadTs}`;

export class SlackDeliverer implements Deliverer {
  readonly #ctx: SlackContext;
  /** Placeholders being posted or posted by this process (resumed jobs read location.ts). */
  readonly #placeholders = new Map<string, Promise<Placeholder | undefined>>();
  /** Submissions in flight: a job can finish before its submitter registered the placeholder. */
  readonly #submitting = new Set<Promise<unknown>>();
  readonly #edits: PlaceholderEdits;
  /** Jobs waiting to post a placeholder that was rate limited (until delivery starts). */
  readonly #late = new Set<string>();
  /** Placeholders whose location the store did not take: #placeholders is their only record here. */
  readonly #unsaved = new Set<string>();

  /** Only given a RecentResults (without the results thread: ctx.uploadFile) does the upload take bytes from it. */
  readonly takesKeptResults: boolean;

  constructor(ctx: SlackContext) {
    this.#ctx = ctx;
    this.#edits = new PlaceholderEdits(ctx, (job) => this.#currentPlaceholder(job));
    this.takesKeptResults = ctx.recentResults !== undefined;
  }

  /** Jobs this deliverer keeps something for (a placeholder, its edits' state): none once each is delivered or given up. */
  get jobsKept(): number {
    return new Set([...this.#placeholders.keys(), ...this.#late, ...this.#edits.jobIds()]).size;
  }

  /**
   * The job's run here ended (Deliverer.forget): what was kept for it goes, except a placeholder
   * the store did not record (this process may run the job again, and must find it then).
   */
  forget(jobId: string): void {
    if (this.#unsaved.has(jobId)) {
      this.#late.delete(jobId);
      this.#edits.forget(jobId);
    } else this.#forget(jobId);
  }

  /** Drops what was kept for a job this process is done with (delivered, or given up until the next start). */
  #forget(jobId: string): void {
    this.#placeholders.delete(jobId);
    this.#unsaved.delete(jobId);
    this.#late.delete(jobId);
    this.#edits.forget(jobId);
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
          ctx.web.chat.postMessage({ channel, ...(threadTs ? { thread_ts: threadTs } : {}), ...content, unfurl_links: false, unfurl_media: false }),
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
        await ctx.engine.updateLocation(job.id, patch).catch((err: unknown) => {
          this.#unsaved.add(job.id);
          ctx.log.warn({ err, jobId: job.id }, 'could not save the placeholder');
        });
        if (moved) {
          await tellUser(ctx, where, "I'm not a member of this conversation, so I'll post your images in our direct messages. To get them here, invite me (/invite) and try again.");
        }
        return placeholder;
      } catch (err) {
        ctx.log.warn({ err: String(err), jobId: job.id, channel: where.channel }, 'could not post the placeholder');
        // Rate limited for longer than an interactive path waits (a busy channel): post it once
        // Slack allows, unless the result came first (then the result is posted as a new message).
        const wait = retryAfterMs(err);
        // Not for a job this process let go of meanwhile (forget): another one may be showing it.
        const stillOurs = this.#placeholders.has(job.id);
        if (wait !== undefined && wait <= PLACEHOLDER_RETRY_MAX_MS && stillOurs) this.#postLater(job, where, wait);
        return undefined;
      }
    })();
    this.#placeholders.set(job.id, posting);
    // A state change that arrived while posting is shown as soon as the placeholder exists.
    void posting.then(() => this.#edits.kick(job.id));
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

  /** The placeholder being posted by this process, else the one the job records (progress never waits for a submission). */
  async #currentPlaceholder(job: JobRecord): Promise<Placeholder | undefined> {
    return (await this.#placeholders.get(job.id)) ?? this.#knownPlaceholder(job);
  }

  progress(job: JobRecord, event: ProgressEvent): void {
    if (job.request.requester.platform === 'slack') this.#edits.progress(job, event);
  }

  wantsTick(jobId: string): boolean {
    return this.#edits.tickDue(jobId);
  }

  async deliver(job: JobRecord): Promise<void> {
    const ctx = this.#ctx;
    await ctx.ackFirst.turn();
    const log = ctx.log.child({ jobId: job.id });
    const loc = locationOf(job);
    if (!loc) {
      log.error({ location: job.request.location }, 'slack job without a usable location; nothing to deliver to');
      this.#forget(job.id);
      return;
    }
    this.#late.delete(job.id);
    // Stop progress edits, and let an edit in flight finish so it cannot overwrite the result.
    await this.#edits.stop(job.id);
    const where = whereOf(loc);
    const placeholder = await this.#placeholderFor(job, loc);
    // A placeholder post that was still on its way may have failed on a 429 meanwhile and set up a
    // late post: the result is posted now, so no "Queued" placeholder may follow it.
    this.#late.delete(job.id);
    const channel = placeholder?.channel ?? loc.channel;
    const threadTs = placeholder?.threadTs ?? loc.threadTs;

    const images = imagesOf(job);
    let content: SlackMessageContent;
    if (job.state === 'succeeded' && images.length > 0) {
      if (!loc.fileIds) {
        const fileIds = await uploadImages(ctx, job, images, channel, threadTs);
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

    const finalTs = await this.#showFinal(job, placeholder, channel, threadTs, content);
    // A mention of the bot in this result's thread edits its latest result (listeners/mention.ts).
    const root = threadTs ?? finalTs;
    if (root && images.length > 0) await ctx.engine.linkJob(resultThreadKey(channel, root), job.id).catch((err: unknown) => log.warn({ err }, 'could not link the thread to its result'));
    this.#forget(job.id);
    log.info({ state: job.state, images: images.length, channel }, 'slack result delivered');
  }

  /**
   * /show: the job's images uploaded again where the command was typed, then its summary and
   * buttons (pointing at the same job) as a new message. The job's own record is untouched.
   */
  async showAt(job: JobRecord, where: Where): Promise<void> {
    const ctx = this.#ctx;
    await uploadImages(ctx, job, imagesOf(job), where.channel, where.threadTs);
    const content = resultMessage(job, ctx.engine.models);
    await inChannel(ctx, where.channel, () =>
      interactive(ctx, () =>
        ctx.web.chat.postMessage({ channel: where.channel, ...(where.threadTs ? { thread_ts: where.threadTs } : {}), ...content, unfurl_links: false, unfurl_media: false }),
      ),
    );
  }

  /**
   * A workspace's log channel (docs/governance.md): every admin change and filter refusal, posted
   * as the bot. Slack only notifies a whole channel for `<!here>`, `<!channel>`, `<!everyone>` and
   * a user group's `<!subteam^…>` ("Formatting text for app surfaces", special mentions); they are
   * written out as plain words, so a log line never pings anyone but a member it names. Best
   * effort: a failure is logged, never thrown.
   */
  async notify(channelId: string, text: string): Promise<void> {
    const ctx = this.#ctx;
    try {
      await inChannel(ctx, channelId, () =>
        background(ctx, () => ctx.web.chat.postMessage({ channel: channelId, text: withoutBroadcasts(text), unfurl_links: false, unfurl_media: false })),
      );
    } catch (err) {
      ctx.log.warn({ err: String(err), code: slackErrorCode(err), channel: channelId }, 'could not post to the log channel');
    }
  }

  /**
   * The engine stopped retrying this job's delivery: the placeholder says the images are made
   * but Slack refused them, and the requester is told privately. Never throws.
   */
  async undeliverable(job: JobRecord, err: unknown): Promise<void> {
    const ctx = this.#ctx;
    const loc = locationOf(job);
    if (!loc) {
      this.#forget(job.id);
      return;
    }
    // Slack's own error code, else a plain phrase: internal errors (paths, addresses) stay in the log.
    const reason = slackErrorCode(err) ?? (err instanceof UploadRefusedError ? `the upload was refused with HTTP ${err.status}` : 'an error while posting them');
    const content = undeliverableMessage(job, reason);
    const placeholder = await this.#placeholderFor(job, loc).catch(() => undefined);
    if (placeholder) {
      await interactive(ctx, () => ctx.web.chat.update({ channel: placeholder.channel, ts: placeholder.ts, ...content })).catch((e: unknown) =>
        ctx.log.warn({ err: String(e), jobId: job.id }, 'could not show the delivery failure in the placeholder'),
      );
    }
    await tellUser(ctx, { ...whereOf(loc), channel: placeholder?.channel ?? loc.channel }, content.text);
    // The next start delivers it, in a process of its own.
    this.#forget(job.id);
  }

  /** Turns the placeholder into the final message; posts a new one when it is gone or never existed. */
  async #showFinal(job: JobRecord, placeholder: Placeholder | undefined, channel: string, threadTs: string | undefined, content: SlackMessageContent): Promise<string | undefined> {
    const ctx = this.#ctx;
    if (placeholder) {
      try {
        await background(ctx, () => ctx.web.chat.update({ channel: placeholder.channel, ts: placeholder.ts, ...content }));
        return placeholder.ts;
      } catch (err) {
        const code = slackErrorCode(err);
        if (code !== 'message_not_found' && code !== 'cant_update_message') throw err;
        ctx.log.warn({ jobId: job.id, code }, 'placeholder gone; posting the result as a new message');
      }
    }
    const res = await inChannel(ctx, channel, () =>
      background(ctx, () =>
        ctx.web.chat.postMessage({ channel, ...(threadTs ? { thread_ts: threadTs } : {}), ...content, unfurl_links: false, unfurl_media: false }),
      ),
    );
    if (res.ts) await ctx.engine.updateLocation(job.id, { ts: res.ts }).catch(() => undefined);
    return res.ts;
  }

  /** Waits for in-flight edits (stop()). */
  close(): Promise<void> {
    return this.#edits.close();
  }
}

/** `<!here>` → `@here`, `<!subteam^S1|@artists>` → `@artists`: the text stays, the broadcast goes. */
export function withoutBroadcasts(text: string): string {
  return text.replace(/<!([^>|]*)(?:\|([^>]*))?>/g, (_, command: string, label: string | undefined) =>
    label ?? (command.startsWith('subteam^') ? `@${command.slice('subteam^'.length)}` : command.startsWith('date^') ? command : `@${command}`),
  );
}
