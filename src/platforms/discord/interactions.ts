/**
 * The one dispatcher for Discord interactions. Slash commands are looked up in the command
 * registry (commands/index.ts) and prepared first: parsing and validation are pure CPU, so a bad
 * option is refused with an ephemeral reply before anything public exists. Then the interaction is
 * acknowledged (deferReply, ephemeral when private; deferUpdate for Delete) before any I/O, so the
 * 3-second deadline holds whatever the engine, the store or a provider is doing. Handlers throw;
 * the one catch (#fail) logs with context and tells the user privately, removing a public
 * placeholder first. Every reply call is guarded.
 */
import {
  MessageFlags,
  PermissionFlagsBits,
  type ButtonInteraction,
  type ChatInputCommandInteraction,
  type Interaction,
  type ModalSubmitInteraction,
  type StringSelectMenuInteraction,
} from 'discord.js';
import {
  COMMAND_NAMES,
  cancelJob,
  FORM_TEXT_ID,
  decodeAction,
  editForm,
  remixForm,
  findCommand,
  requestForAction,
  type ActionRef,
  type Command,
  type CommandInput,
  type CommandSurface,
} from '../../../commands/index.ts';
import type { EngineApi } from '../../engine/api.ts';
import { PREFERENCES_READ_BUDGET_MS, UNREAD_PREFERENCES, unreadPreferencesNotice } from '../../engine/governance/api.ts';
import { JobNotFoundError } from '../../engine/errors.ts';
import type { JobRecord } from '../../engine/job.ts';
import type { ReferenceInput, Requester } from '../../engine/request.ts';
import { UserFacingError, errorCode, toUserMessage } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { Metrics } from '../../metrics.ts';
import { AckFirst } from '../ack-first.ts';
import { DiscordDirectories } from './directory.ts';
import { DEFAULT_ATTACHMENT_SIZE_LIMIT_BYTES } from './fit-upload.ts';
import { INTERACTION_TOKEN_LIFETIME_MS, type DiscordLocation } from './location.ts';
import type { DiscordMessages } from './messages.ts';
import { DISCORD_FORMAT, NO_MENTIONS, clipContent, errorContent, modalJson } from './render.ts';

type ComponentInteraction = ButtonInteraction | StringSelectMenuInteraction;
type Answerable = ChatInputCommandInteraction | ComponentInteraction | ModalSubmitInteraction;
/** What starts a job from a result: a click (Vary, Upscale…) or a form's submission (Edit, Remix). */
type FromResult = ComponentInteraction | ModalSubmitInteraction;

export interface InteractionDeps {
  engine: EngineApi;
  log: Logger;
  messages: DiscordMessages;
  ackFirst?: AckFirst;
  /** Counts refusals by code (#fail). */
  metrics?: Metrics;
  /** Posts a finished job's result again at `location` (/show): DiscordDelivery.showAt. */
  show?: (job: JobRecord, location: DiscordLocation) => Promise<void>;
  /** Tells the requester something privately once the job's placeholder is shown: DiscordDelivery.tellAfterPlaceholder. */
  tellAfterPlaceholder?: (jobId: string, location: DiscordLocation, content: string) => void;
  /** Guilds' channels, roles and members for admin mentions; default: from `messages.rest`. */
  directories?: DiscordDirectories;
}

/**
 * Who asked, and where: the guild (the server whose rules apply), the channel, and the member's
 * role ids (for role tiers). discord.js gives a cached GuildMember (its role manager also holds
 * @everyone, whose id is the guild's) or the raw member object of the interaction payload
 * (https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-object).
 */
export function requesterOf(i: Interaction): Requester {
  const member = i.member;
  const roles = !member ? undefined : Array.isArray(member.roles) ? [...member.roles] : [...member.roles.cache.keys()].filter((id) => id !== i.guildId);
  return {
    platform: 'discord',
    userId: i.user.id,
    name: i.user.globalName ?? i.user.username,
    ...(i.guildId && { scope: i.guildId }),
    ...(i.channelId && { channelId: i.channelId }),
    ...(roles && { roles }),
  };
}

/** Who may use an admin command (docs/governance.md): Discord's own permission names. */
export const DISCORD_ADMINS = 'members with the Manage Server permission';
/** Manage Server, or Administrator (which implies every permission). */
const ADMIN_PERMISSIONS = [PermissionFlagsBits.ManageGuild, PermissionFlagsBits.Administrator];

/**
 * Discord already hides an admin command from members without Manage Server
 * (default_member_permissions, command-json.ts), but a server can re-assign it in its Integrations
 * settings, and a misconfigured override must not hand the rules to anyone: the member's
 * permissions in the interaction (member.permissions) are checked here too.
 */
function checkAdmin(i: ChatInputCommandInteraction, command: Command): void {
  if (!command.admin) return;
  if (!i.guildId) throw new UserFacingError('ADMIN_NEEDS_SERVER', { command: command.name });
  if (!i.memberPermissions?.any(ADMIN_PERMISSIONS)) throw new UserFacingError('NOT_ADMIN', { who: DISCORD_ADMINS });
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

/**
 * What a slash command's options hold. The values are read from the options the user gave
 * (`i.options.data`: Discord sends only those), not by asking discord.js for each declared one,
 * which cost a search and its garbage per option on every command (docs/benchmarks.md, "What
 * changed, release by release"); the reference images in the command's own declaration order
 * (image, then image2…), whatever order they were filled in. Commands have no subcommands
 * (command-json.ts declares none): with one, `data` would hold it, its options inside.
 */
export function commandInputOf(i: ChatInputCommandInteraction, command: Command): CommandInput {
  const options: Record<string, unknown> = {};
  let attachments = false;
  for (const given of i.options.data) {
    const def = Object.hasOwn(command.options, given.name) ? command.options[given.name] : undefined;
    if (def?.type === 'attachment') attachments = true;
    else if (def && given.value !== undefined) options[given.name] = given.value;
  }
  const refs: ReferenceInput[] = [];
  if (attachments) {
    for (const [name, def] of Object.entries(command.options)) {
      const a = def.type === 'attachment' ? i.options.getAttachment(name) : null;
      if (a) refs.push({ kind: 'url', url: a.url, name: a.name });
    }
  }
  return { options, refs, requester: requesterOf(i) };
}

/** How far an interaction has been answered: what the one catch can still do. */
interface Answer {
  state: 'none' | 'deferred' | 'updated';
  location?: DiscordLocation;
}

export class InteractionHandler {
  readonly #engine: EngineApi;
  readonly #log: Logger;
  readonly #messages: DiscordMessages;
  readonly #ackFirst: AckFirst;
  readonly #metrics: Metrics | undefined;
  readonly #show: InteractionDeps['show'];
  readonly #tellAfterPlaceholder: InteractionDeps['tellAfterPlaceholder'];
  #directories: DiscordDirectories | undefined;

  constructor(deps: InteractionDeps) {
    this.#show = deps.show;
    this.#tellAfterPlaceholder = deps.tellAfterPlaceholder;
    this.#directories = deps.directories;
    this.#engine = deps.engine;
    this.#log = deps.log;
    this.#messages = deps.messages;
    this.#ackFirst = deps.ackFirst ?? new AckFirst();
    this.#metrics = deps.metrics;
  }

  /** Entry point for discord.js's interactionCreate. Never throws, never rejects. */
  handle(i: Interaction): Promise<void> {
    if (!i.isChatInputCommand() && !i.isButton() && !i.isStringSelectMenu() && !i.isModalSubmit()) return Promise.resolve();
    const answer: Answer = { state: 'none' };
    let work: Promise<void>;
    try {
      work = i.isChatInputCommand() ? this.#command(i, answer) : i.isModalSubmit() ? this.#form(i, answer) : this.#component(i, answer);
    } catch (err) {
      work = Promise.reject(err);
    }
    return work.catch((err: unknown) => this.#fail(i, answer, err));
  }

  async #command(i: ChatInputCommandInteraction, answer: Answer): Promise<void> {
    const command = findCommand(i.commandName);
    if (!command) throw new UserFacingError('UNKNOWN_COMMAND', { command: i.commandName, known: COMMAND_NAMES });
    checkAdmin(i, command);
    const input = commandInputOf(i, command);
    // A command that uses the requester's /settings reads them before the answer (`private`
    // decides whether the defer is ephemeral): at once on SQLite, else one store read (a few ms of
    // Discord's 3 s; docs/governance.md); prepare itself is synchronous: the option values are in
    // memory. A refusal here is answered ephemerally.
    const governance = this.#engine.governance;
    const preferences = command.usesPreferences
      ? (governance.preferencesNow(input.requester) ?? (await governance.preferences(input.requester, PREFERENCES_READ_BUDGET_MS)))
      : undefined;
    const invocation = command.prepare(input, {
      models: this.#engine.models,
      defaultModel: this.#engine.defaultModel,
      ...(preferences && { preferences }),
    });
    const ephemeral = invocation.visibility === 'private';
    if (!(await this.#defer(i, answer, ephemeral))) return;
    const location = answer.location ?? locationOf(i, ephemeral);
    const surface: CommandSurface = {
      engine: this.#engine,
      submit: (request) => this.#engine.submit(request),
      format: DISCORD_FORMAT,
      location,
      ...(i.guildId && { directory: this.#directoriesOf().forGuild(i.guildId) }),
      reply: async (text) => void (await this.#messages.editOriginal(location, { content: clipContent(text), allowed_mentions: NO_MENTIONS })),
      ...(this.#show && { show: (job: JobRecord) => this.#show!(job, location) }),
    };
    const job = await invocation.run(surface);
    if (!job) return;
    this.#log.info({ interactionId: i.id, userId: i.user.id, command: command.name, jobId: job.id, model: job.request.model, count: job.request.count, ephemeral }, 'discord command submitted');
    // Not a follow-up now: while the deferred reply is "thinking", Discord would make it that reply.
    if (preferences === UNREAD_PREFERENCES) this.#tellAfterPlaceholder?.(job.id, location, unreadPreferencesNotice({ private: ephemeral }));
  }

  #directoriesOf(): DiscordDirectories {
    this.#directories ??= new DiscordDirectories(this.#messages.rest);
    return this.#directories;
  }

  async #component(i: ComponentInteraction, answer: Answer): Promise<void> {
    const value = i.isStringSelectMenu() ? i.values[0] : undefined;
    const ref = decodeAction(i.customId, value);
    if (!ref) throw new UserFacingError('UNKNOWN_CONTROL');
    if (ref.action === 'delete') return this.#delete(i, answer, ref.jobId);
    if (ref.action === 'cancel') return this.#cancel(i, answer, ref.jobId);
    if (ref.action === 'edit') return this.#showForm(i, answer, modalJson(editForm(ref.jobId, ref.index)));
    if (ref.action === 'remix') {
      // A modal can only be the first response, so this one store read comes before it (a few ms
      // of the 3 s): the form is prefilled with the job's prompt and flags.
      const job = await this.#engine.getJob(ref.jobId);
      if (!job) throw new JobNotFoundError(ref.jobId);
      return this.#showForm(i, answer, modalJson(remixForm(job)));
    }
    return this.#action(i, answer, ref);
  }

  async #showForm(i: ComponentInteraction, answer: Answer, modal: Record<string, unknown>): Promise<void> {
    await this.#ackFirst.ack(() => i.showModal(modal as never));
    answer.state = 'updated';
  }

  /** Edit and Remix forms: their id is the button's, the one field holds the instruction or the prompt. */
  async #form(i: ModalSubmitInteraction, answer: Answer): Promise<void> {
    const ref = decodeAction(i.customId);
    if (!ref || (ref.action !== 'edit' && ref.action !== 'remix')) throw new UserFacingError('UNKNOWN_CONTROL');
    return this.#action(i, answer, ref, i.fields.getTextInputValue(FORM_TEXT_ID));
  }

  /**
   * Upscale, ratio, rerun, vary, and the Edit and Remix forms (`text`): a new job charged to the
   * clicker, replying to the result it came from.
   */
  async #action(i: FromResult, answer: Answer, ref: Exclude<ActionRef, { action: 'delete' | 'cancel' }>, text?: string): Promise<void> {
    // A click on a private result stays private.
    const ephemeral = i.message?.flags.has(MessageFlags.Ephemeral) ?? false;
    if (!(await this.#defer(i, answer, ephemeral))) return;
    const location: DiscordLocation = { ...locationOf(i, ephemeral), ...(i.message && { parentMessageId: i.message.id }) };
    answer.location = location;
    const parent = await this.#engine.getJob(ref.jobId);
    if (!parent) throw new JobNotFoundError(ref.jobId);
    const request = requestForAction(parent, ref.action, {
      ...('index' in ref && { index: ref.index }),
      ...('ratio' in ref && ref.ratio !== undefined && { ratio: ref.ratio }),
      ...(text !== undefined && { text }),
      clicker: requesterOf(i),
      location,
      models: this.#engine.models,
    });
    const job = await this.#engine.submit(request);
    this.#log.info({ interactionId: i.id, userId: i.user.id, parentJobId: ref.jobId, action: ref.action, jobId: job.id, model: job.request.model }, 'discord click submitted');
  }

  /**
   * Cancel on a placeholder: the requester, or a member who can manage messages. The click only
   * acknowledges (deferUpdate); the job's own delivery then turns the placeholder into what
   * happened (refunded, or charged for what the provider had accepted), on whichever process runs it.
   */
  async #cancel(i: ComponentInteraction, answer: Answer, jobId: string): Promise<void> {
    if (!(await this.#deferUpdate(i, answer))) return;
    const moderator = i.inGuild() && (i.memberPermissions?.has(PermissionFlagsBits.ManageMessages) ?? false);
    const job = await cancelJob(this.#engine, jobId, requesterOf(i), { moderator, moderatorsExist: i.inGuild() });
    this.#log.info({ jobId, userId: i.user.id, state: job.state, interactionId: i.id }, 'discord cancel requested');
  }

  async #delete(i: ComponentInteraction, answer: Answer, jobId: string): Promise<void> {
    if (!(await this.#deferUpdate(i, answer))) return;
    const job = await this.#engine.getJob(jobId);
    // Who asked for the image: the job's requester, else the user the message answered.
    const owner = job?.request.requester.userId ?? i.message.interactionMetadata?.user.id;
    const moderator = i.inGuild() && (i.memberPermissions?.has(PermissionFlagsBits.ManageMessages) ?? false);
    if (owner !== i.user.id && !moderator) {
      throw owner ? new UserFacingError('NOT_OWNER', { owner: `<@${owner}>`, moderatorsToo: true }) : new JobNotFoundError(jobId);
    }
    try {
      // After deferUpdate, "@original" is the message holding the button.
      await this.#messages.deleteOriginal(answer.location ?? locationOf(i, false));
    } catch (err) {
      this.#log.warn({ err, jobId, interactionId: i.id }, 'discord delete failed');
      throw new UserFacingError('DELETE_FAILED');
    }
    this.#log.info({ jobId, userId: i.user.id, messageId: i.message.id }, 'discord result deleted');
  }

  /** The first response. False when it failed (too late, already answered): nothing more can be said. */
  async #defer(i: Answerable, answer: Answer, ephemeral: boolean): Promise<boolean> {
    try {
      await this.#ackFirst.ack(() => i.deferReply(ephemeral ? { flags: MessageFlags.Ephemeral } : {}));
    } catch (err) {
      this.#log.warn({ err, interactionId: i.id }, 'discord defer failed');
      return false;
    }
    answer.state = 'deferred';
    answer.location = locationOf(i, ephemeral);
    await this.#ackFirst.turn();
    return true;
  }

  async #deferUpdate(i: ComponentInteraction, answer: Answer): Promise<boolean> {
    try {
      await this.#ackFirst.ack(() => i.deferUpdate());
    } catch (err) {
      this.#log.warn({ err, interactionId: i.id }, 'discord deferUpdate failed');
      return false;
    }
    answer.state = 'updated';
    answer.location = locationOf(i, i.message.flags.has(MessageFlags.Ephemeral));
    await this.#ackFirst.turn();
    return true;
  }

  /**
   * The one catch: logs the refusal (the whole error when it is not one the bot explains) and
   * tells the user privately, however far the interaction was answered. Never throws.
   */
  async #fail(i: Answerable, answer: Answer, err: unknown): Promise<void> {
    const code = errorCode(err);
    const context = { interactionId: i.id, userId: i.user.id, code, ...(i.isChatInputCommand() ? { command: i.commandName } : { customId: i.customId }) };
    if (code === 'INTERNAL') this.#log.error({ ...context, err }, 'discord interaction failed');
    else this.#log.info(context, 'discord interaction refused');
    this.#metrics?.refusals.inc({ platform: 'discord', code });
    const content = errorContent(toUserMessage(err));
    try {
      if (answer.state === 'none') {
        await this.#ackFirst.ack(() => i.reply({ content, flags: MessageFlags.Ephemeral, allowedMentions: { parse: [] } }));
      } else if (answer.location) {
        await this.#answerPrivately(answer.location, content, answer.state === 'deferred');
      }
    } catch (e) {
      this.#log.warn({ err: e, interactionId: i.id }, 'discord error reply failed');
    }
  }

  /**
   * The answer only the requester sees. A private placeholder is simply edited; a public one is
   * removed and the sentence sent as an ephemeral follow-up, so the channel never reads someone
   * else's mistake. After deferUpdate (a click that edits its own message) it is a follow-up.
   */
  async #answerPrivately(location: DiscordLocation, content: string, placeholderShown: boolean): Promise<void> {
    const followUp = async () => void (await this.#messages.followUp(location, { content, flags: MessageFlags.Ephemeral, allowed_mentions: NO_MENTIONS }));
    const editPlaceholder = async () => void (await this.#messages.editOriginal(location, { content, components: [], allowed_mentions: NO_MENTIONS }));
    if (!placeholderShown) return followUp();
    if (location.ephemeral) return editPlaceholder();
    // Delete first: while the deferred reply is still "thinking", Discord turns the first
    // follow-up into that (public) reply instead of a new ephemeral message.
    try {
      await this.#messages.deleteOriginal(location);
    } catch (err) {
      this.#log.warn({ err, interactionId: location.interactionId }, 'discord placeholder delete failed; editing it instead');
      return editPlaceholder();
    }
    await followUp();
  }
}
