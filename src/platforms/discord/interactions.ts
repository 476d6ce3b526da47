/**
 * The one dispatcher for Discord interactions (STYLE.md #6). Every interaction is acknowledged
 * first — deferReply (ephemeral when private), or deferUpdate for Delete — before any I/O, so the
 * 3-second deadline holds whatever the engine, the store or a provider is doing. Then the
 * handler parses, validates and submits; every error becomes its user sentence in the
 * placeholder (or an ephemeral answer for clicks), and the reply calls themselves are guarded.
 */
import {
  MessageFlags,
  PermissionFlagsBits,
  type ButtonInteraction,
  type ChatInputCommandInteraction,
  type Interaction,
  type StringSelectMenuInteraction,
} from 'discord.js';
import {
  buildImagineRequest,
  decodeAction,
  parseOptionValues,
  quotaText,
  requestForAction,
  wantsPrivate,
  type ActionRef,
} from '../../../commands/index.ts';
import type { EngineApi } from '../../engine/api.ts';
import { JobNotFoundError } from '../../engine/errors.ts';
import type { ReferenceInput, Requester } from '../../engine/request.ts';
import { errorCode, toUserMessage } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { AckFirst } from '../ack-first.ts';
import { DEFAULT_ATTACHMENT_SIZE_LIMIT_BYTES } from './fit-upload.ts';
import { INTERACTION_TOKEN_LIFETIME_MS, type DiscordLocation } from './location.ts';
import type { DiscordMessages } from './messages.ts';
import { DISCORD_FORMAT, NO_MENTIONS, clipContent, errorContent } from './render.ts';

export const IMAGE_OPTION_NAMES = ['image', 'image2', 'image3', 'image4'] as const;
const VALUE_OPTION_NAMES = ['model', 'ratio', 'resolution', 'count', 'creativity'] as const;

type ComponentInteraction = ButtonInteraction | StringSelectMenuInteraction;

export interface InteractionDeps {
  engine: EngineApi;
  log: Logger;
  messages: DiscordMessages;
  ackFirst?: AckFirst;
}

export function requesterOf(i: Interaction): Requester {
  return { platform: 'discord', userId: i.user.id, name: i.user.globalName ?? i.user.username };
}

/** Everything needed to find this interaction's messages again, also from another process. */
export function locationOf(i: Interaction, ephemeral: boolean): DiscordLocation {
  return {
    applicationId: i.applicationId,
    interactionId: i.id,
    interactionToken: i.token,
    tokenExpiresAt: i.createdTimestamp + INTERACTION_TOKEN_LIFETIME_MS,
    channelId: i.channelId ?? '',
    ...(i.guildId && { guildId: i.guildId }),
    ephemeral,
    attachmentSizeLimit: i.attachmentSizeLimit ?? DEFAULT_ATTACHMENT_SIZE_LIMIT_BYTES,
    receivedAt: Date.now(),
  };
}

export class InteractionHandler {
  readonly #engine: EngineApi;
  readonly #log: Logger;
  readonly #messages: DiscordMessages;
  readonly #ackFirst: AckFirst;

  constructor(deps: InteractionDeps) {
    this.#engine = deps.engine;
    this.#log = deps.log;
    this.#messages = deps.messages;
    this.#ackFirst = deps.ackFirst ?? new AckFirst();
  }

  /** Entry point for discord.js's interactionCreate. Never throws, never rejects. */
  handle(i: Interaction): Promise<void> {
    let work: Promise<void>;
    try {
      if (i.isChatInputCommand()) {
        if (i.commandName === 'imagine') work = this.#imagine(i);
        else if (i.commandName === 'quota') work = this.#quota(i);
        else work = this.#replyEphemeral(i, `I don't know the command /${i.commandName}. Try /imagine or /quota.`);
      } else if (i.isButton() || i.isStringSelectMenu()) {
        work = this.#component(i);
      } else {
        return Promise.resolve();
      }
    } catch (err) {
      work = Promise.reject(err);
    }
    return work.catch((err: unknown) => {
      this.#log.error({ err, interactionId: i.id, userId: i.user.id }, 'discord interaction handler failed');
    });
  }

  async #imagine(i: ChatInputCommandInteraction): Promise<void> {
    // Only synchronous reads before the defer: the option values are already in memory.
    const prompt = i.options.getString('prompt') ?? '';
    const ephemeral = wantsPrivate(prompt, i.options.getBoolean('private') ?? undefined);
    if (!(await this.#defer(i, ephemeral))) return;
    const location = locationOf(i, ephemeral);
    const log = this.#log.child({ interactionId: i.id, userId: i.user.id });
    try {
      const raw: Record<string, unknown> = {};
      for (const name of VALUE_OPTION_NAMES) {
        const option = i.options.get(name);
        if (option?.value !== undefined) raw[name] = option.value;
      }
      const refs: ReferenceInput[] = [];
      for (const name of IMAGE_OPTION_NAMES) {
        const a = i.options.getAttachment(name);
        if (a) refs.push({ kind: 'url', url: a.url, name: a.name });
      }
      const request = buildImagineRequest(
        { prompt, options: parseOptionValues(raw), refs, requester: requesterOf(i), location },
        this.#engine.models,
        this.#engine.defaultModel,
      );
      const job = await this.#engine.submit(request);
      log.info({ jobId: job.id, model: job.request.model, count: job.request.count, ephemeral }, 'discord /imagine submitted');
    } catch (err) {
      log.info({ code: errorCode(err), err: errorCode(err) === 'INTERNAL' ? err : undefined }, 'discord /imagine refused');
      await this.#showInPlaceholder(location, toUserMessage(err));
    }
  }

  async #quota(i: ChatInputCommandInteraction): Promise<void> {
    if (!(await this.#defer(i, true))) return;
    const location = locationOf(i, true);
    try {
      const view = await this.#engine.quota(requesterOf(i));
      await this.#messages.editOriginal(location, { content: clipContent(quotaText(view, DISCORD_FORMAT)), allowed_mentions: NO_MENTIONS });
    } catch (err) {
      this.#log.warn({ err, interactionId: i.id }, 'discord /quota failed');
      await this.#showInPlaceholder(location, toUserMessage(err));
    }
  }

  async #component(i: ComponentInteraction): Promise<void> {
    const value = i.isStringSelectMenu() ? i.values[0] : undefined;
    const ref = decodeAction(i.customId, value);
    if (!ref) {
      await this.#replyEphemeral(i, "This control isn't one the bot knows anymore. Run /imagine again.");
      return;
    }
    if (ref.action === 'delete') {
      await this.#delete(i, ref.jobId);
      return;
    }
    await this.#action(i, ref);
  }

  /** Upscale, ratio, rerun: a new job charged to the clicker, replying to the clicked message. */
  async #action(i: ComponentInteraction, ref: Exclude<ActionRef, { action: 'delete' }>): Promise<void> {
    // A click on a private result stays private.
    const ephemeral = i.message.flags.has(MessageFlags.Ephemeral);
    if (!(await this.#defer(i, ephemeral))) return;
    const location: DiscordLocation = { ...locationOf(i, ephemeral), parentMessageId: i.message.id };
    const log = this.#log.child({ interactionId: i.id, userId: i.user.id, parentJobId: ref.jobId, action: ref.action });
    try {
      const parent = await this.#engine.getJob(ref.jobId);
      if (!parent) throw new JobNotFoundError(ref.jobId);
      const request = requestForAction(parent, ref.action, {
        ...('index' in ref && { index: ref.index }),
        ...('ratio' in ref && ref.ratio !== undefined && { ratio: ref.ratio }),
        clicker: requesterOf(i),
        location,
        models: this.#engine.models,
      });
      const job = await this.#engine.submit(request);
      log.info({ jobId: job.id, model: job.request.model }, 'discord click submitted');
    } catch (err) {
      log.info({ code: errorCode(err), err: errorCode(err) === 'INTERNAL' ? err : undefined }, 'discord click refused');
      await this.#answerPrivately(location, toUserMessage(err));
    }
  }

  async #delete(i: ComponentInteraction, jobId: string): Promise<void> {
    if (!(await this.#deferUpdate(i))) return;
    const location = locationOf(i, i.message.flags.has(MessageFlags.Ephemeral));
    try {
      const job = await this.#engine.getJob(jobId);
      // Who asked for the image: the job's requester, else the user the message answered.
      const owner = job?.request.requester.userId ?? i.message.interactionMetadata?.user.id;
      const moderator = i.inGuild() && (i.memberPermissions?.has(PermissionFlagsBits.ManageMessages) ?? false);
      if (owner !== i.user.id && !moderator) {
        const message = owner
          ? `Only <@${owner}> (who asked for this image) or members who can manage messages can delete it.`
          : new JobNotFoundError(jobId).userMessage;
        await this.#messages.followUp(location, { content: message, flags: MessageFlags.Ephemeral, allowed_mentions: NO_MENTIONS });
        return;
      }
      // After deferUpdate, "@original" is the message holding the button.
      await this.#messages.deleteOriginal(location);
      this.#log.info({ jobId, userId: i.user.id, messageId: i.message.id }, 'discord result deleted');
    } catch (err) {
      this.#log.warn({ err, jobId, interactionId: i.id }, 'discord delete failed');
      await this.#messages
        .followUp(location, { content: errorContent("The image couldn't be deleted. Please try again."), flags: MessageFlags.Ephemeral, allowed_mentions: NO_MENTIONS })
        .catch((e: unknown) => this.#log.warn({ err: e }, 'discord follow-up failed'));
    }
  }

  /** The first response. False when it failed (too late, already answered): nothing more can be said. */
  async #defer(i: ChatInputCommandInteraction | ComponentInteraction, ephemeral: boolean): Promise<boolean> {
    try {
      await this.#ackFirst.ack(() => i.deferReply(ephemeral ? { flags: MessageFlags.Ephemeral } : {}));
      await this.#ackFirst.turn();
      return true;
    } catch (err) {
      this.#log.warn({ err, interactionId: i.id }, 'discord defer failed');
      return false;
    }
  }

  async #deferUpdate(i: ComponentInteraction): Promise<boolean> {
    try {
      await this.#ackFirst.ack(() => i.deferUpdate());
      await this.#ackFirst.turn();
      return true;
    } catch (err) {
      this.#log.warn({ err, interactionId: i.id }, 'discord deferUpdate failed');
      return false;
    }
  }

  async #replyEphemeral(i: ChatInputCommandInteraction | ComponentInteraction, content: string): Promise<void> {
    try {
      await this.#ackFirst.ack(() => i.reply({ content, flags: MessageFlags.Ephemeral, allowedMentions: { parse: [] } }));
    } catch (err) {
      this.#log.warn({ err, interactionId: i.id }, 'discord reply failed');
    }
  }

  /** Puts an error sentence in the placeholder (guarded). */
  async #showInPlaceholder(location: DiscordLocation, userMessage: string): Promise<void> {
    try {
      await this.#messages.editOriginal(location, { content: errorContent(userMessage), components: [], allowed_mentions: NO_MENTIONS });
    } catch (err) {
      this.#log.warn({ err, interactionId: location.interactionId }, 'discord error reply failed');
    }
  }

  /**
   * For clicks: the answer only the clicker sees. A public placeholder is removed and the
   * sentence sent as an ephemeral follow-up; a private placeholder is simply edited.
   */
  async #answerPrivately(location: DiscordLocation, userMessage: string): Promise<void> {
    if (location.ephemeral) {
      await this.#showInPlaceholder(location, userMessage);
      return;
    }
    // Delete first: while the deferred reply is still "thinking", Discord turns the first
    // follow-up into that (public) reply instead of a new ephemeral message.
    try {
      await this.#messages.deleteOriginal(location);
    } catch (err) {
      this.#log.warn({ err, interactionId: location.interactionId }, 'discord placeholder delete failed; editing it instead');
      await this.#showInPlaceholder(location, userMessage);
      return;
    }
    try {
      await this.#messages.followUp(location, { content: errorContent(userMessage), flags: MessageFlags.Ephemeral, allowed_mentions: NO_MENTIONS });
    } catch (err) {
      this.#log.warn({ err, interactionId: location.interactionId }, 'discord private answer failed');
    }
  }
}
