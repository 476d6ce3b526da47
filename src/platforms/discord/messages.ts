/**
 * The REST calls the adapter makes, in one place, over @discordjs/rest (the same REST client
 * discord.js uses, so 429s are queued and retried per bucket). Interaction-token calls go without
 * the bot token (`auth: false`), as Discord expects, and through a REST client of their own (see
 * interactionRestFor).
 */
import { DiscordAPIError, REST, Routes } from 'discord.js';
import { multipartBody } from '../../util/multipart.ts';
import { multipartRequest } from './rest-request.ts';
import { sleep } from '../../util/sleep.ts';
import { INTERACTION_TOKEN_LIFETIME_MS, type DiscordLocation } from './location.ts';

export interface SentMessage {
  id: string;
  channel_id: string;
}

export interface OutgoingFile {
  name: string;
  data: Buffer;
  contentType: string;
}

/**
 * A message's request options: its JSON body, or with files one multipart body, `payload_json`
 * then `files[n]` (docs/discord.md "Files"), each file's bytes sent as they are (rest-request.ts).
 */
function messageRequest(body: object, files: readonly OutgoingFile[] | undefined): { body: unknown; passThroughBody?: true; headers?: Record<string, string> } {
  if (!files || files.length === 0) return { body };
  return multipartRequest(
    multipartBody([
      { name: 'payload_json', contentType: 'application/json', data: Buffer.from(JSON.stringify(body)) },
      ...files.map((f, n) => ({ name: `files[${n}]`, filename: f.name, contentType: f.contentType, data: f.data })),
    ]),
  );
}

/**
 * With HTTP interactions (http-interactions.ts) the first response is the HTTP answer, and the
 * next webhook call travels separately: it can reach Discord before the answer is applied, and
 * Discord then says 10015 Unknown Webhook (or 10008 Unknown Message). For an interaction younger
 * than this (3 s to answer, then some slack) those mean "not yet", in whichever process makes
 * the call, and the call is tried again after these pauses.
 */
export const HTTP_ANSWER_SETTLE_MS = 8_000;
const SETTLE_PAUSES_MS = [50, 100, 250, 500, 1_000, 2_000];

/** How often the interaction client drops its idle per-token handlers (interactionRestFor). */
export const INTERACTION_HANDLER_SWEEP_MS = 5 * 60_000;

/**
 * A REST client for the interaction endpoints this module calls with the interaction's token (the
 * original response's edit and deletion, follow-ups): `rest`'s options, without its global limit.
 *
 * Discord does not count those endpoints against a bot's global limit of 50 requests per second
 * ("Interaction endpoints are not bound to the bot's Global Rate Limit",
 * https://discord.com/developers/docs/topics/rate-limits#global-rate-limit; docs/discord.md "Rate
 * limits and errors"), but @discordjs/rest counts every request it sends against its own copy of
 * that limit, interaction callbacks excepted. Through the bot's client, every placeholder edit and
 * result waited its turn behind 50 a second: while jobs finished faster than that, the queue grew,
 * each waiting result holding its image's bytes. Per-route buckets still apply here
 * (webhook routes are queued per token), and so does a global 429 if Discord ever answers one.
 *
 * Queued per token means one request handler per job, which @discordjs/rest drops once idle at
 * its next sweep: every hour by default, so an hour of jobs' handlers stayed (about 0.6-0.9 KB
 * each, measured in the running bot). A token lives 15 minutes (INTERACTION_TOKEN_LIFETIME_MS);
 * the sweep runs every INTERACTION_HANDLER_SWEEP_MS, and only drops handlers with nothing queued
 * and no rate limit pending.
 */
export function interactionRestFor(rest: REST): REST {
  return new REST({ ...rest.options, globalRequestsPerSecond: Infinity, handlerSweepInterval: INTERACTION_HANDLER_SWEEP_MS });
}

export interface DiscordMessagesOptions {
  /** First responses go out as HTTP answers (DISCORD_PUBLIC_KEY): webhook calls may overtake them. */
  httpAnswers?: boolean;
  /** The REST client for interaction-token calls; default: interactionRestFor(rest). */
  interactionRest?: REST;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

type WebhookTarget = Pick<DiscordLocation, 'applicationId' | 'interactionToken' | 'tokenExpiresAt' | 'receivedAt'>;

export class DiscordMessages {
  /** The bot's REST client (bot-token calls: channel messages, DMs, directories). */
  readonly rest: REST;
  /** Interaction-token calls (interactionRestFor). */
  readonly interactionRest: REST;
  readonly #httpAnswers: boolean;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;

  constructor(rest: REST, opts: DiscordMessagesOptions = {}) {
    this.rest = rest;
    this.interactionRest = opts.interactionRest ?? interactionRestFor(rest);
    this.#httpAnswers = opts.httpAnswers ?? false;
    this.#now = opts.now ?? Date.now;
    this.#sleep = opts.sleep ?? sleep;
  }

  async editOriginal(loc: DiscordLocation, body: object, files?: readonly OutgoingFile[]): Promise<SentMessage> {
    const request = messageRequest(body, files);
    return this.#viaWebhook(loc, async () =>
      (await this.interactionRest.patch(Routes.webhookMessage(loc.applicationId, loc.interactionToken, '@original'), { ...request, auth: false })) as SentMessage,
    );
  }

  async deleteOriginal(loc: WebhookTarget): Promise<void> {
    await this.#viaWebhook(loc, () => this.interactionRest.delete(Routes.webhookMessage(loc.applicationId, loc.interactionToken, '@original'), { auth: false }));
  }

  async followUp(loc: WebhookTarget, body: object): Promise<SentMessage> {
    return this.#viaWebhook(loc, async () => (await this.interactionRest.post(Routes.webhook(loc.applicationId, loc.interactionToken), { body, auth: false })) as SentMessage);
  }

  /** A webhook call, tried again while Discord may still be applying an HTTP answer. */
  async #viaWebhook<T>(loc: WebhookTarget, call: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        // When it arrived by this host's clock (the id's timestamp is Discord's, possibly skewed).
        const arrivedAt = loc.receivedAt ?? loc.tokenExpiresAt - INTERACTION_TOKEN_LIFETIME_MS;
        const settling = this.#httpAnswers && this.#now() - arrivedAt < HTTP_ANSWER_SETTLE_MS;
        const code = discordCode(err);
        const pause = SETTLE_PAUSES_MS[attempt];
        if (!settling || (code !== 10015 && code !== 10008) || pause === undefined) throw err;
        await this.#sleep(pause);
      }
    }
  }

  async postToChannel(channelId: string, body: object, files?: readonly OutgoingFile[]): Promise<SentMessage> {
    return (await this.rest.post(Routes.channelMessages(channelId), messageRequest(body, files))) as SentMessage;
  }

  async editInChannel(channelId: string, messageId: string, body: object): Promise<SentMessage> {
    return (await this.rest.patch(Routes.channelMessage(channelId, messageId), { body })) as SentMessage;
  }

  async deleteInChannel(channelId: string, messageId: string): Promise<void> {
    await this.rest.delete(Routes.channelMessage(channelId, messageId));
  }

  /** The DM channel with a user (created by Discord if needed). */
  async openDm(userId: string): Promise<string> {
    const channel = (await this.rest.post(Routes.userChannels(), { body: { recipient_id: userId } })) as { id: string };
    return channel.id;
  }
}

/** Discord's JSON error code, when the error is a Discord API answer. */
export function discordCode(err: unknown): number | string | undefined {
  return err instanceof DiscordAPIError ? err.code : undefined;
}

export function httpStatus(err: unknown): number | undefined {
  return typeof (err as { status?: unknown })?.status === 'number' ? (err as { status: number }).status : undefined;
}

/** The interaction token no longer works (expired: 401/50027, or unknown webhook 10015). */
export function isTokenGone(err: unknown): boolean {
  const code = discordCode(err);
  return code === 50027 || code === 10015 || (err instanceof DiscordAPIError && err.status === 401);
}

/** The message is gone (deleted, or an ephemeral one the user dismissed). */
export function isUnknownMessage(err: unknown): boolean {
  return discordCode(err) === 10008;
}

/** The bot cannot post there (no access, no permission, unknown channel, DMs closed). */
export function isNoAccess(err: unknown): boolean {
  const code = discordCode(err);
  return code === 50001 || code === 50013 || code === 10003 || code === 50007 || httpStatus(err) === 403;
}
