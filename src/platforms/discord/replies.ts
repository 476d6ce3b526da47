/**
 * Reply to refine on Discord: a message that replies to one of the bot's results and mentions
 * the bot ("@Imagine make the sky purple", "@Imagine 2: …" for image 2) edits that result, like
 * its Edit button (commands/buttons.ts refineRequest), charged to the author of the reply.
 *
 * What Discord gives without privileged intents (docs/discord.md "Reply to refine"): with the
 * GUILD_MESSAGES intent the bot receives MESSAGE_CREATE in guild channels, and a message that
 * mentions the bot carries its content even without the Message Content intent
 * (discord.com/developers/docs/events/gateway#message-content-intent). The replied-to message
 * is found by `message_reference.message_id`; the deliverer links each result message to its
 * job in the store (engine.linkJob), so no message history is read.
 *
 * There is no interaction, so no token and no ephemeral answer: the placeholder is a reply to
 * the user's message in the channel, the result a new message replying to it (the deliverer's
 * channel route), and a refusal goes to the author by DM (in the channel, mentioning them, when
 * their DMs are closed).
 */
import type { Message } from 'discord.js';
import { refineRequest } from '../../../commands/buttons.ts';
import type { EngineApi } from '../../engine/api.ts';
import { JobNotFoundError } from '../../engine/errors.ts';
import { UserFacingError, errorCode, toUserMessage } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { Metrics } from '../../metrics.ts';
import { DEFAULT_ATTACHMENT_SIZE_LIMIT_BYTES } from './fit-upload.ts';
import type { DiscordLocation } from './location.ts';
import type { DiscordMessages } from './messages.ts';
import { DISCORD_FORMAT, NO_MENTIONS, errorContent } from './render.ts';

/** The engine link from a result message to its job (set by the deliverer). */
export const resultMessageKey = (messageId: string) => `discord:message:${messageId}`;
/** A message is handled once, even if a shard resumes and replays it. */
const REPLY_DEDUPE_MS = 60 * 60_000;

export interface ReplyDeps {
  engine: EngineApi;
  log: Logger;
  messages: DiscordMessages;
  metrics?: Metrics;
}

export class ReplyRefiner {
  readonly #deps: ReplyDeps;

  constructor(deps: ReplyDeps) {
    this.#deps = deps;
  }

  /** Entry point for discord.js's messageCreate. Never throws, never rejects. */
  async handle(message: Message): Promise<void> {
    try {
      const parentMessageId = message.reference?.messageId;
      const botId = message.client.user?.id;
      // The mention must be typed: a reply to the bot's message pings it by default (it is then in
      // `mentions`) without being addressed to it ("nice picture").
      const mention = botId === undefined ? undefined : new RegExp(`<@!?${botId}>`);
      if (message.author.bot || !message.inGuild() || !parentMessageId || !mention || !mention.test(message.content)) return;
      const jobId = await this.#deps.engine.linkedJob(resultMessageKey(parentMessageId));
      if (jobId === undefined) return; // a reply to something that is not one of our results
      if (!(await this.#deps.engine.claimOnce(`discord:reply:${message.id}`, REPLY_DEDUPE_MS))) return;
      await this.#refine(message, botId, jobId).catch((err: unknown) => this.#refuse(message, err));
    } catch (err) {
      this.#deps.log.error({ err, messageId: message.id }, 'discord reply handling failed');
    }
  }

  async #refine(message: Message<true>, botId: string, jobId: string): Promise<void> {
    const { engine, messages, log } = this.#deps;
    const text = message.content.replaceAll(new RegExp(`<@!?${botId}>`, 'g'), ' ').replace(/\s+/g, ' ').trim();
    if (text === '') throw new UserFacingError('REFINE_WITHOUT_TEXT');
    const parent = await engine.getJob(jobId);
    if (!parent) throw new JobNotFoundError(jobId);
    const base: Omit<DiscordLocation, 'messageId'> = {
      applicationId: message.client.application?.id ?? botId,
      // No interaction: the token fields hold the message and are expired from the start, so
      // progress and the result go through the channel (delivery.ts).
      interactionId: message.id,
      interactionToken: 'none',
      tokenExpiresAt: 0,
      channelId: message.channelId,
      guildId: message.guildId,
      ephemeral: false,
      attachmentSizeLimit: DEFAULT_ATTACHMENT_SIZE_LIMIT_BYTES,
      parentMessageId: message.id,
      receivedAt: Date.now(),
    };
    const request = refineRequest(parent, text, {
      // The server's rules (channels, filter, tiers) apply to a reply as to /imagine: the same scope, channel and roles.
      clicker: {
        platform: 'discord',
        userId: message.author.id,
        name: message.author.globalName ?? message.author.username,
        scope: message.guildId,
        channelId: message.channelId,
        ...(message.member && { roles: [...message.member.roles.cache.keys()].filter((id) => id !== message.guildId) }),
      },
      location: base,
      models: engine.models,
    });
    const placeholder = await messages.postToChannel(message.channelId, {
      content: `⏳ ${DISCORD_FORMAT.bold('Queued')}`,
      message_reference: { message_id: message.id, channel_id: message.channelId, fail_if_not_exists: false },
      allowed_mentions: NO_MENTIONS,
    });
    try {
      const job = await engine.submit({ ...request, location: { ...base, messageId: placeholder.id } });
      log.info({ messageId: message.id, userId: message.author.id, parentJobId: jobId, jobId: job.id }, 'discord reply submitted');
    } catch (err) {
      await messages.deleteInChannel(message.channelId, placeholder.id).catch(() => undefined);
      throw err;
    }
  }

  /** Tells the author privately (DM); in the channel, mentioning them, when the DM is refused. */
  async #refuse(message: Message<true>, err: unknown): Promise<void> {
    const { messages, log, metrics } = this.#deps;
    const code = errorCode(err);
    if (code === 'INTERNAL') log.error({ err, messageId: message.id }, 'discord reply failed');
    else log.info({ code, messageId: message.id, userId: message.author.id }, 'discord reply refused');
    metrics?.refusals.inc({ platform: 'discord', code });
    const content = errorContent(toUserMessage(err));
    try {
      const dm = await messages.openDm(message.author.id);
      await messages.postToChannel(dm, { content, allowed_mentions: NO_MENTIONS });
    } catch {
      await messages
        .postToChannel(message.channelId, {
          content: `<@${message.author.id}> ${content}`,
          message_reference: { message_id: message.id, channel_id: message.channelId, fail_if_not_exists: false },
          allowed_mentions: { parse: [], users: [message.author.id] },
        })
        .catch((e: unknown) => log.warn({ err: e, messageId: message.id }, 'discord reply refusal could not be sent'));
    }
  }
}
