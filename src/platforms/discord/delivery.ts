/**
 * The Discord Deliverer: renders the engine's progress into the placeholder (throttled per
 * message) and posts the result once the job is terminal — also for jobs resumed after a restart,
 * since everything needed is in `job.request.location`.
 *
 * Where the result goes:
 *  1. the placeholder, through the interaction token (PATCH …/messages/@original), while the
 *     token works (15 minutes);
 *  2. otherwise (expired, or the placeholder was deleted) a new message in the channel through
 *     the bot's own endpoints, mentioning the requester and replying to the parent message;
 *  3. for private jobs, or when the bot cannot post in the channel, a DM to the requester.
 * A result is never dropped silently: when every route fails, `deliver` throws and the engine
 * retries with backoff.
 */
import { DiscordAPIError, MessageFlags } from 'discord.js';
import type { EngineApi } from '../../engine/api.ts';
import type { Deliverer, JobRecord, ProgressEvent } from '../../engine/job.ts';
import type { Logger } from '../../log.ts';
import type { RecentResults } from '../../engine/recent-results.ts';
import { fitImagesForUpload, type UploadFile } from './fit-upload.ts';
import { UPLOAD_SAFETY_MARGIN_MS, parseLocation, tokenUsable, type DiscordLocation } from './location.ts';
import { isNoAccess, isTokenGone, isUnknownMessage, type DiscordMessages, type SentMessage } from './messages.ts';
import { undeliverableText } from '../../../commands/render.ts';
import { DISCORD_FORMAT, NO_MENTIONS, clipContent, placeholderComponentsJson, progressContent, resultBody, type OriginalLink } from './render.ts';
import { EditThrottle } from './throttle.ts';
import { resultMessageKey } from './replies.ts';
import { AckFirst } from '../ack-first.ts';
import { concurrencyLimit } from '../../util/limit.ts';

export const ORIGINALS_PATH_PREFIX = '/discord/originals/';
/**
 * Elapsed-time ticks are skipped while this many progress edits are already on their way: with
 * hundreds of jobs running, ticks would otherwise crowd the REST client's queues and sockets and
 * hold back state changes and results. (The limit dates from when discord.js held every edit to
 * the bot's 50 requests a second; interaction-token calls no longer wait for that: messages.ts.)
 */
export const MAX_PROGRESS_EDITS_IN_FLIGHT = 10;
/**
 * Results (and /show answers) read and uploaded at once by this process. The others wait before
 * their files are read: a wave of finished jobs (a restart resuming hundreds the provider completed
 * meanwhile) holds few results' bytes and opens few upload connections, and each upload gets its
 * share of the uplink within @discordjs/rest's request timeout. Interaction-token calls are not
 * held to the bot's 50 requests a second (messages.ts, interactionRestFor), so nothing else paces
 * them. Small edits never wait for a slot (docs/discord.md "Rate limits and errors").
 */
export const RESULT_UPLOADS_AT_ONCE = 8;

export interface DeliveryDeps {
  engine: Pick<EngineApi, 'models' | 'updateLocation'> & Partial<Pick<EngineApi, 'linkJob'>>;
  log: Logger;
  messages: DiscordMessages;
  /** PUBLIC_URL: when set, links to full-size originals point at the bot's own server. */
  publicUrl?: string | undefined;
  throttle?: EditThrottle;
  /** Shared with the interaction handler: edits and uploads wait while acknowledgements are in flight. */
  ackFirst?: AckFirst;
  /** Results' bytes the engine just downloaded (recent-results.ts); undefined: read from disk. */
  recentResults?: RecentResults | undefined;
  now?: () => number;
}

/** What DiscordDelivery keeps for one job until it is done with it. */
interface JobMarks {
  /** The token proved dead before its time (so progress goes through the channel, or stops). */
  deadToken?: boolean;
  /** The placeholder cannot be edited at all (deleted, dismissed, no access). */
  noProgress?: boolean;
  /** The placeholder's id has been stored. */
  knownMessage?: boolean;
  /** A private notice waiting for the placeholder to be shown (tellAfterPlaceholder), and the timer that drops it when its token expires. */
  notice?: { loc: DiscordLocation; content: string; expiry: NodeJS.Timeout } | undefined;
}

export class DiscordDelivery implements Deliverer {
  readonly throttle: EditThrottle;
  readonly #engine: DeliveryDeps['engine'];
  readonly #log: Logger;
  readonly #messages: DiscordMessages;
  readonly #publicUrl: string | undefined;
  readonly #recentResults: RecentResults | undefined;
  readonly #now: () => number;
  readonly #ackFirst: AckFirst;
  /**
   * What was learned about each job's placeholder while its run here lasts. An edit holds its
   * job's entry from its start, so one that ends after `forget` writes into a dropped object.
   */
  readonly #jobs = new Map<string, JobMarks>();
  #progressInFlight = 0;
  readonly #uploadSlot = concurrencyLimit(RESULT_UPLOADS_AT_ONCE);

  constructor(deps: DeliveryDeps) {
    this.#engine = deps.engine;
    this.#log = deps.log;
    this.#messages = deps.messages;
    this.#publicUrl = deps.publicUrl?.replace(/\/+$/, '');
    this.#recentResults = deps.recentResults;
    this.#now = deps.now ?? Date.now;
    this.#ackFirst = deps.ackFirst ?? new AckFirst();
    this.throttle = deps.throttle ?? new EditThrottle({ onError: (err, key) => this.#log.debug({ err, jobId: key }, 'discord progress edit failed') });
  }

  /** Jobs this deliverer keeps something for (their edits' state, a notice): none once each is delivered or given up. */
  get jobsKept(): number {
    return this.#jobs.size;
  }

  /** The job's run here ended (Deliverer.forget): a progress edit still waiting is dropped with the rest. */
  forget(jobId: string): void {
    this.throttle.drop(jobId);
    this.#forget(jobId);
  }

  /** Drops what was kept for a job this process is done with (delivered, or given up until the next start). */
  #forget(jobId: string): void {
    clearTimeout(this.#jobs.get(jobId)?.notice?.expiry);
    this.#jobs.delete(jobId);
  }

  /** The job's entry, made when first needed. */
  #marks(jobId: string): JobMarks {
    let marks = this.#jobs.get(jobId);
    if (!marks) this.#jobs.set(jobId, (marks = {}));
    return marks;
  }

  /**
   * Whether the engine should build an elapsed-time tick for this job now: not while one already
   * waits in the throttle (a waiting edit renders the elapsed time when it is sent), nor when
   * progress is off for the job or too many edits are on their way (progress() drops it then).
   */
  wantsTick(jobId: string): boolean {
    return !this.#jobs.get(jobId)?.noProgress && this.#progressInFlight < MAX_PROGRESS_EDITS_IN_FLIGHT && !this.throttle.waitingOrClosed(jobId);
  }

  progress(job: JobRecord, event: ProgressEvent): void {
    const loc = parseLocation(job.request.location);
    if (!loc || this.#jobs.get(job.id)?.noProgress) return;
    if (!event.changed && this.#progressInFlight >= MAX_PROGRESS_EDITS_IN_FLIGHT) return;
    this.throttle.submit(
      job.id,
      async () => {
        // Taken before any wait: an edit that ends after `forget` must not bring the entry back.
        const marks = this.#marks(job.id);
        this.#progressInFlight += 1;
        try {
          await this.#ackFirst.turn();
          await this.#editProgress(job, event, loc, marks);
        } finally {
          this.#progressInFlight -= 1;
        }
      },
      event.changed,
    );
  }

  /**
   * Tells the requester `content` privately (an ephemeral follow-up) once the job's placeholder
   * has replaced the deferred reply: until then Discord turns the first follow-up into that reply
   * (public when the reply is), and the placeholder's next edit would overwrite it. Best effort;
   * dropped when the result goes out past the interaction's token, and when the token expires
   * first (a follow-up needs it): so a notice for a job whose run here already ended, or that
   * another process runs, is not kept either.
   */
  tellAfterPlaceholder(jobId: string, loc: DiscordLocation, content: string): void {
    const marks = this.#marks(jobId);
    if (marks.knownMessage) {
      void this.#tell(loc, jobId, content);
      return;
    }
    clearTimeout(marks.notice?.expiry);
    const expiry = setTimeout(() => {
      marks.notice = undefined;
      // Nothing else kept: the entry goes too. (An edit on its way might still set a mark in it,
      // now detached; past the token, edits go through the channel or not at all anyway.)
      if (this.#jobs.get(jobId) === marks && !marks.deadToken && !marks.noProgress && !marks.knownMessage) this.#jobs.delete(jobId);
    }, Math.max(0, loc.tokenExpiresAt - this.#now()));
    expiry.unref();
    marks.notice = { loc, content, expiry };
  }

  async #tellPending(jobId: string, marks: JobMarks): Promise<void> {
    const notice = marks.notice;
    if (!notice) return;
    clearTimeout(notice.expiry);
    marks.notice = undefined;
    await this.#tell(notice.loc, jobId, notice.content);
  }

  async #tell(loc: DiscordLocation, jobId: string, content: string): Promise<void> {
    await this.#messages
      .followUp(loc, { content: clipContent(content), flags: MessageFlags.Ephemeral, allowed_mentions: NO_MENTIONS })
      .catch((err: unknown) => this.#log.warn({ err, jobId }, 'discord private notice failed'));
  }

  async deliver(job: JobRecord): Promise<void> {
    try {
      await this.throttle.finish(job.id, () =>
        this.#uploadSlot(async () => {
          await this.#ackFirst.turn();
          await this.#deliverNow(job);
        }),
      );
      // A notice not sent with the result never will be: the token was gone.
      this.#forget(job.id);
    } catch (err) {
      // The engine retries: let progress edits be ignored until then, but allow a later deliver.
      this.throttle.reopen(job.id);
      throw err;
    }
  }

  /**
   * The engine stopped retrying: the placeholder says the images are made but Discord refused
   * them (it tries again at the next start). Best effort, never throws.
   */
  async undeliverable(job: JobRecord, err: unknown): Promise<void> {
    const loc = parseLocation(job.request.location);
    if (!loc) return;
    // Discord's own message ("Missing Permissions"…), else a plain phrase: internal errors stay in the log.
    const reason = err instanceof DiscordAPIError ? err.message.slice(0, 120) : 'an error while posting them';
    const body = { content: clipContent(`⚠️ ${undeliverableText(job, 'Discord', reason, DISCORD_FORMAT)}`), components: [], allowed_mentions: NO_MENTIONS };
    try {
      if (tokenUsable(loc, this.#now()) && !this.#jobs.get(job.id)?.deadToken) await this.#messages.editOriginal(loc, body);
      else if (!loc.ephemeral && loc.messageId) await this.#messages.editInChannel(loc.channelId, loc.messageId, body);
    } catch (e) {
      this.#log.warn({ err: e, jobId: job.id }, 'could not show the delivery failure in the discord placeholder');
    }
    // The next start delivers it, in a process of its own.
    this.#forget(job.id);
  }

  /**
   * /show: the job's result (images, summary, buttons pointing at the same job) as the answer at
   * `loc`, a new interaction's deferred reply. The job's own record and messages are untouched.
   */
  /**
   * Posts `text` in a channel (a server's log channel, docs/governance.md). Mentions are shown but
   * ping nobody (allowed_mentions parse [],
   * https://discord.com/developers/docs/resources/message#allowed-mentions-object). Best effort.
   */
  async notify(channelId: string, text: string): Promise<void> {
    try {
      await this.#messages.postToChannel(channelId, { content: clipContent(text), allowed_mentions: NO_MENTIONS });
    } catch (err) {
      this.#log.warn({ err, channelId }, 'discord log channel post failed');
    }
  }

  async showAt(job: JobRecord, loc: DiscordLocation): Promise<void> {
    await this.#uploadSlot(async () => {
      const { files, originals } = await this.#prepareFiles(job, loc);
      await this.#ackFirst.turn();
      await this.#messages.editOriginal(loc, resultBody(job, files, originals, this.#engine.models), files);
    });
  }

  async #editProgress(job: JobRecord, event: ProgressEvent, loc: DiscordLocation, marks: JobMarks): Promise<void> {
    const body = { content: progressContent(job, event, this.#now()), components: placeholderComponentsJson(job), allowed_mentions: NO_MENTIONS };
    if (tokenUsable(loc, this.#now()) && !marks.deadToken) {
      try {
        const sent = await this.#messages.editOriginal(loc, body);
        await this.#rememberMessage(job, loc, sent, marks);
        await this.#tellPending(job.id, marks);
        return;
      } catch (err) {
        if (isUnknownMessage(err)) {
          marks.noProgress = true;
          return;
        }
        if (!isTokenGone(err)) throw err;
        marks.deadToken = true;
      }
    }
    // Past the token: a public placeholder can still be edited as the bot's own message.
    if (loc.ephemeral || !loc.messageId || !loc.guildId) return;
    try {
      await this.#messages.editInChannel(loc.channelId, loc.messageId, body);
    } catch (err) {
      // One failure is enough: never loop on a refused call (docs/discord.md "Rate limits and errors").
      marks.noProgress = true;
      this.#log.debug({ err, jobId: job.id }, 'discord progress edit through the channel failed; progress stops');
    }
  }

  async #rememberMessage(job: JobRecord, loc: DiscordLocation, sent: SentMessage, marks: JobMarks): Promise<void> {
    if (loc.messageId || marks.knownMessage || !sent?.id) return;
    marks.knownMessage = true;
    loc.messageId = sent.id;
    await this.#engine.updateLocation(job.id, { messageId: sent.id }).catch((err: unknown) => {
      this.#log.warn({ err, jobId: job.id }, 'could not store the discord placeholder id');
    });
  }

  async #deliverNow(job: JobRecord): Promise<void> {
    const loc = parseLocation(job.request.location);
    const log = this.#log.child({ jobId: job.id, state: job.state });
    if (!loc) {
      // Nothing to retry: the record cannot say where the result goes.
      log.error({ location: Object.keys(job.request.location) }, 'discord job has no usable location; result cannot be delivered');
      return;
    }
    const { files, originals } = await this.#prepareFiles(job, loc);
    const body = resultBody(job, files, originals, this.#engine.models);
    // Nothing kept for the job (its first delivery here, or a resumed one): nothing to keep either, deliver drops it.
    const marks = this.#jobs.get(job.id) ?? {};

    if (tokenUsable(loc, this.#now(), UPLOAD_SAFETY_MARGIN_MS) && !marks.deadToken) {
      try {
        const sent = await this.#messages.editOriginal(loc, body, files);
        await this.#rememberMessage(job, loc, sent, marks);
        await this.#tellPending(job.id, marks);
        await this.#linkResult(job, sent);
        log.info({ via: 'interaction', messageId: sent.id, files: files.length, reencoded: originals.length }, 'discord result delivered');
        return;
      } catch (err) {
        if (!isTokenGone(err) && !isUnknownMessage(err)) throw err;
        log.info({ code: (err as { code?: unknown }).code }, 'discord interaction token unusable; posting through the channel');
      }
    }
    await this.#postOutsideInteraction(job, loc, files, originals, log);
  }

  /** After the token: the channel (public jobs), else a DM. */
  async #postOutsideInteraction(job: JobRecord, loc: DiscordLocation, files: UploadFile[], originals: OriginalLink[], log: Logger): Promise<void> {
    const userId = job.request.requester.userId;
    if (!loc.ephemeral && loc.channelId) {
      const body = {
        ...resultBody(job, files, originals, this.#engine.models, `<@${userId}> `),
        allowed_mentions: { parse: [] as never[], users: [userId] },
        ...((loc.parentMessageId ?? loc.messageId) && {
          message_reference: { message_id: (loc.parentMessageId ?? loc.messageId)!, channel_id: loc.channelId, fail_if_not_exists: false },
        }),
      };
      try {
        const sent = await this.#messages.postToChannel(loc.channelId, body, files);
        await this.#linkResult(job, sent);
        log.info({ via: 'channel', messageId: sent.id }, 'discord result delivered');
        await this.#pointPlaceholderAt(loc, sent, log);
        return;
      } catch (err) {
        if (!isNoAccess(err)) throw err;
        log.info({ err }, 'discord channel post refused; sending the result by DM');
      }
    }
    const dm = await this.#messages.openDm(userId);
    const why = loc.ephemeral ? 'Your private /imagine result' : 'Your /imagine result (I could not post it in the channel)';
    const body = resultBody(job, files, originals, this.#engine.models, `-# ${why}\n`);
    const sent = await this.#messages.postToChannel(dm, body, files);
    log.info({ via: 'dm', messageId: sent.id }, 'discord result delivered');
  }

  /** A reply to this result that mentions the bot edits it (replies.ts): remember which job the message shows. */
  async #linkResult(job: JobRecord, sent: SentMessage): Promise<void> {
    if (!sent?.id || !job.tasks.some((t) => t.status === 'succeeded' && t.image)) return;
    await this.#engine.linkJob?.(resultMessageKey(sent.id), job.id).catch((err: unknown) => this.#log.warn({ err, jobId: job.id }, 'could not link the discord result message'));
  }

  /** Best effort: the stale placeholder says where the result went. */
  async #pointPlaceholderAt(loc: DiscordLocation, sent: SentMessage, log: Logger): Promise<void> {
    if (!loc.messageId || !loc.guildId) return;
    const link = `https://discord.com/channels/${loc.guildId}/${sent.channel_id}/${sent.id}`;
    await this.#messages
      .editInChannel(loc.channelId, loc.messageId, { content: clipContent(`✅ Done: the result is posted below (${link}).`), allowed_mentions: NO_MENTIONS })
      .catch((err: unknown) => log.debug({ err }, 'discord placeholder pointer edit failed'));
  }

  async #prepareFiles(job: JobRecord, loc: DiscordLocation): Promise<{ files: UploadFile[]; originals: OriginalLink[] }> {
    const made = job.tasks.filter((t) => t.status === 'succeeded' && t.image);
    if (made.length === 0) return { files: [], originals: [] };
    const files = await fitImagesForUpload(
      made.map((t) => ({ path: t.image!.path, mime: t.image!.mime, bytes: t.image!.bytes, baseName: `imagine-${job.id}-${t.index + 1}` })),
      loc.attachmentSizeLimit,
      this.#recentResults,
    );
    const originals: OriginalLink[] = [];
    files.forEach((f, n) => {
      const task = made[n]!;
      if (!f.reencoded) return;
      const url = this.#publicUrl ? `${this.#publicUrl}${ORIGINALS_PATH_PREFIX}${job.id}/${task.index}` : task.image!.sourceUrl;
      originals.push({ index: task.index, url, bytes: f.originalBytes });
    });
    return { files, originals };
  }
}
