/**
 * A fake Discord for end-to-end tests and the bench: REST (`/api/v10/…`), the gateway
 * (`/gateway`) and a CDN (`/cdn/…`) on one 127.0.0.1 port. Written from docs/discord.md (Discord's documentation) and
 * Discord's OpenAPI description (request bodies are checked with the `discord-api-spec` zod
 * schemas). It enforces what real Discord enforces and the bot must respect:
 *  - the first response to an interaction within 3 s (10062 after), only one (40060);
 *  - the interaction token for 15 minutes (401 / 50027 after);
 *  - ≤ 10 attachments (30015), each under the upload limit (413), 25 MiB per request (413);
 *  - component rules (≤ 5 action rows, ≤ 5 buttons per row, custom_id 1–100 chars and unique,
 *    select menus ≤ 25 options) and every other schema rule (400 / 50035);
 * and it records every request and every message as a user would see it.
 * Interactions go over the gateway, or, once `setInteractionsEndpoint()` has saved an
 * Interactions Endpoint URL, by signed POSTs to it (interactions-endpoint.ts), the app's answer
 * being applied as the first response.
 * Durations are options so tests can scale them down.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EventEmitter } from 'node:events';
import sharp from 'sharp';
import { FakeGateway, type ShardPair } from './gateway.ts';
import { InteractionsEndpointClient, type EndpointAnswer, type EndpointPostOptions } from './interactions-endpoint.ts';
import { boundaryOf, parseMultipart, type UploadedPart } from './multipart.ts';
import { snowflake } from './snowflake.ts';
import { ERRORS, invalidFormBody, validateBody, type DiscordErrorBody } from './validation.ts';

export const MiB = 1024 * 1024;
export const DEFAULT_UPLOAD_LIMIT_BYTES = 10 * MiB;
export const MAX_REQUEST_BYTES = 25 * MiB;
export const ACK_DEADLINE_MS = 3_000;
export const TOKEN_LIFETIME_MS = 15 * 60_000;
/** Guilds one gateway session may hold before Discord requires sharding (docs/discord.md "Sharding"). */
export const MAX_GUILDS_PER_SHARD = 2_500;

/** Permission bits used by the fake (https://discord.com/developers/docs/topics/permissions). */
export const Permission = {
  ViewChannel: 1n << 10n,
  SendMessages: 1n << 11n,
  ManageMessages: 1n << 13n,
  EmbedLinks: 1n << 14n,
  AttachFiles: 1n << 15n,
  ReadMessageHistory: 1n << 16n,
  UseApplicationCommands: 1n << 31n,
  Administrator: 1n << 3n,
  ManageChannels: 1n << 4n,
  ManageGuild: 1n << 5n,
  AddReactions: 1n << 6n,
  ManageRoles: 1n << 28n,
} as const;
/** Every permission bit Discord defines today (up to 1 << 52), what ADMINISTRATOR and the owner get. */
export const ALL_PERMISSIONS = (1n << 53n) - 1n;
export const MEMBER_PERMISSIONS =
  Permission.ViewChannel | Permission.SendMessages | Permission.EmbedLinks | Permission.AttachFiles | Permission.ReadMessageHistory | Permission.UseApplicationCommands;
export const MODERATOR_PERMISSIONS = MEMBER_PERMISSIONS | Permission.ManageMessages;

export const MESSAGE_FLAG_EPHEMERAL = 64;
const MESSAGE_FLAG_LOADING = 128;
const MESSAGE_FLAG_COMPONENTS_V2 = 1 << 15;

export interface FakeUser {
  id: string;
  username: string;
  global_name?: string | null;
}

/**
 * Channel types (https://discord.com/developers/docs/resources/channel#channel-object-channel-types):
 * 0 text, 2 voice, 4 category, 5 announcement, 10/11/12 announcement/public/private thread, 15 forum.
 */
export const ChannelType = { GuildText: 0, DM: 1, GuildVoice: 2, GuildCategory: 4, GuildAnnouncement: 5, AnnouncementThread: 10, PublicThread: 11, PrivateThread: 12, GuildForum: 15 } as const;
const THREAD_TYPES: ReadonlySet<number> = new Set([10, 11, 12]);

export interface FakeChannel {
  id: string;
  name: string;
  /** Default 0 (GUILD_TEXT). */
  type?: number;
  /** The category of a channel, or the channel a thread lives in. */
  parentId?: string;
}

/** A guild role (https://discord.com/developers/docs/topics/permissions#role-object). @everyone's id is the guild's. */
export interface FakeRole {
  id: string;
  name: string;
  position: number;
  permissions: bigint;
}

export interface FakeGuild {
  id: string;
  name: string;
  channels: FakeChannel[];
  /** Per-file upload limit in this guild (boosts raise it). */
  uploadLimitBytes?: number;
  /** Roles; @everyone (id = guild id, MEMBER_PERMISSIONS) is added when missing. */
  roles?: FakeRole[];
  /** Role ids of each member by user id (@everyone implied). */
  memberRoles?: Record<string, string[]>;
  /** The owner has every permission. Default '1' (nobody the tests use). */
  ownerId?: string;
  /** What the bot may do in this guild (`app_permissions`). Default MODERATOR_PERMISSIONS. */
  appPermissions?: bigint;
}

export interface FakeDiscordOptions {
  token?: string;
  applicationId?: string;
  guilds?: FakeGuild[];
  ackDeadlineMs?: number;
  tokenLifetimeMs?: number;
  /** Default `attachment_size_limit` of interactions and the guilds' upload limit. */
  uploadLimitBytes?: number;
  /** Rate limit on edits of one interaction message: at most `limit` per `windowMs` (429 beyond). Off by default. */
  messageEditBucket?: { limit: number; windowMs: number };
  /** Extra latency added to every REST answer, in ms. */
  latencyMs?: number;
  /** Keep uploaded files' bytes (served on the CDN). Default true; benches turn it off to save memory. */
  keepUploads?: boolean;
  /** GET /gateway/bot names a gateway nobody listens on (a host that cannot reach the gateway). */
  gatewayUnreachable?: boolean;
  /**
   * A session (one shard) may hold at most this many guilds, or the gateway closes it with 4011
   * Sharding required. Discord's limit is 2,500 (the default).
   */
  maxGuildsPerShard?: number;
  /** GET /gateway/bot's recommended `shards`. Default: the fewest that keep every shard within maxGuildsPerShard (at least 1 per 1,000 guilds). */
  recommendedShards?: number;
  /** GET /gateway/bot's `session_start_limit.max_concurrency`: identifies allowed per 5 s. Default 1, as for most bots. */
  maxConcurrency?: number;
  /**
   * HTTP interactions: how long after receiving the app's answer it takes effect (Discord applies
   * it on its side while the app's next webhook call may already be on its way). Default 0.
   */
  httpAnswerLatencyMs?: number;
}

export interface RecordedFile {
  field: string;
  filename: string;
  size: number;
  contentType?: string;
}

export interface RecordedRequest {
  /** When the request arrived (its headers), epoch ms. */
  at: number;
  /** When its answer was sent, epoch ms (0 until then): with `at`, how many were in flight at once. */
  answeredAt: number;
  method: string;
  /** Path after /api/v10, query excluded. */
  path: string;
  query: string;
  status: number;
  body?: unknown;
  files: RecordedFile[];
  error?: DiscordErrorBody;
  /** Set when the answer was a 429: injected on demand, or the per-message edit bucket overflowing. */
  rateLimited?: 'injected' | 'bucket';
  authorization?: string;
}

export interface FakeAttachment {
  id: string;
  filename: string;
  size: number;
  content_type?: string;
  width?: number;
  height?: number;
  url: string;
  proxy_url: string;
  data: Buffer;
}

export interface FakeMessage {
  id: string;
  channelId: string;
  guildId?: string;
  type: number;
  content: string;
  embeds: unknown[];
  attachments: FakeAttachment[];
  /** Components as stored (with ids assigned), i.e. what the user sees and can click. */
  components: Record<string, unknown>[];
  flags: number;
  /** User ids pinged by the message (mentions allowed by allowed_mentions). */
  mentions: string[];
  messageReference?: { message_id: string; channel_id: string; guild_id?: string };
  /** The interaction this message answers (original response or follow-up). */
  interactionId?: string;
  interactionMetadata?: Record<string, unknown>;
  authorId: string;
  /** Set when a user (not the bot) wrote the message (postUserMessage). */
  author?: FakeUser;
  webhookId?: string;
  createdAt: number;
  editedAt?: number;
  edits: number;
  deleted: boolean;
  /** Reactions: emoji (as in the URL: unicode, or name:id) → user ids who reacted. */
  reactions?: Map<string, Set<string>>;
  /** Snapshot of content/attachments/components after every write, oldest first. */
  history: { at: number; content: string; attachments: { filename: string; size: number }[]; components: number; flags: number }[];
}

export interface FakeInteraction {
  id: string;
  token: string;
  /** 2 APPLICATION_COMMAND, 3 MESSAGE_COMPONENT, 5 MODAL_SUBMIT. */
  type: 2 | 3 | 5;
  payload: Record<string, unknown>;
  /** The modal this interaction answered with (callback type 9), as the user sees it until submitted. */
  modal?: OpenModal;
  /** performance.now() when the dispatch left the gateway (or the POST to the Interactions Endpoint URL started). */
  dispatchedAt: number;
  createdAtMs: number;
  ackedAt?: number;
  ackLatencyMs?: number;
  callbackType?: number;
  callbackStatus?: number;
  /** Messages created through this interaction's token (original first when there is one). */
  originalMessageId?: string;
  followupIds: string[];
  ephemeral: boolean;
  userId: string;
  channelId: string;
  guildId?: string;
  /** For component clicks: the message holding the component. */
  sourceMessageId?: string;
  /** Delivered over the gateway: the [shard_id, num_shards] of the session it went to. */
  shard?: ShardPair;
  /** Delivered by HTTP: settles once the app's answer is applied or its failure recorded; never rejects. */
  httpDelivery?: Promise<void>;
  /** Delivered by HTTP: the status the app answered (none when it did not answer). */
  httpStatus?: number;
  /** Delivered by HTTP and not acknowledged by the answer: why (no answer in time, not 200, not JSON, refused body…). */
  httpFailure?: string;
}

export interface SlashCommandInput {
  name: string;
  /** Option values (STRING 3, INTEGER 4, BOOLEAN 5, NUMBER 10); attachments go in `attachments`. */
  options?: { name: string; type: number; value: string | number | boolean }[];
  /** Attachment options: option name → file served from the fake CDN. */
  attachments?: Record<string, { filename: string; data: Buffer; contentType?: string }>;
  user?: FakeUser;
  /** A guild id from the options, or 'dm' for a DM with the bot. Default: the first guild. */
  where?: string | 'dm';
  channelId?: string;
  /** member.permissions as is; default: computed from the member's roles (memberPermissions). */
  permissions?: bigint;
  attachmentSizeLimit?: number;
  /**
   * Dispatch even though Discord's client would not offer the command to this user (the member
   * lacks the registered default_member_permissions, or the command is not available in this
   * context): what a forged or stale client could still send, since the API does not check it.
   */
  ignoreCommandVisibility?: boolean;
}

export interface OpenModal {
  custom_id: string;
  title: string;
  /** Top-level components as sent, with ids assigned (action rows of text inputs, labels, text displays). */
  components: Record<string, unknown>[];
  submitted: boolean;
}

export interface ModalSubmitInput {
  /** The interaction that opened the modal (callback type 9). */
  interaction: FakeInteraction;
  /** Text inputs' values by custom_id; an input left out keeps its prefilled `value` (or is empty). */
  values?: Record<string, string>;
  /** Default: the user the modal was shown to. */
  user?: FakeUser;
}

export interface UserMessageInput {
  /** E.g. `<@botId> make the sky purple`; `<@id>` mentions are parsed from it. */
  content: string;
  user?: FakeUser;
  /** A guild channel; default the first guild's first channel. Ignored with `dm`. */
  channelId?: string;
  /** Post in the user's DM with the bot instead. */
  dm?: boolean;
  /** Makes the message a reply (type 19) to this message, in the same channel. */
  replyTo?: FakeMessage | string;
  /** A reply pings (mentions) the replied-to author unless the user turned it off; Discord's client pings by default. */
  replyPing?: boolean;
  attachments?: { filename: string; data: Buffer; contentType?: string }[];
}

/** Gateway intents the fake checks (https://discord.com/developers/docs/events/gateway#gateway-intents). */
export const Intent = { Guilds: 1 << 0, GuildMessages: 1 << 9, DirectMessages: 1 << 12, MessageContent: 1 << 15 } as const;

export interface ComponentClickInput {
  message: FakeMessage | string;
  customId: string;
  /** For select menus. */
  values?: string[];
  user?: FakeUser;
  /** member.permissions as is; default: computed from the member's roles. */
  permissions?: bigint;
}

/** A command as Discord returns it after registration, with the fields that decide who sees it. */
export interface RegisteredCommand {
  id: string;
  name: string;
  type: number;
  guild_id?: string;
  /** A permission bitfield as a decimal string, or null (everyone). */
  default_member_permissions: string | null;
  /** Interaction contexts: 0 GUILD, 1 BOT_DM, 2 PRIVATE_CHANNEL; null for guild commands. */
  contexts: number[] | null;
  integration_types: number[];
  dm_permission?: boolean;
  [key: string]: unknown;
}

interface RateLimitRule {
  method?: string;
  path: RegExp;
  remaining: number;
  retryAfterS: number;
  global: boolean;
}

export const DEFAULT_USER: FakeUser = { id: '100000000000000001', username: 'alice', global_name: 'Alice' };

export class FakeDiscord extends EventEmitter {
  readonly token: string;
  readonly applicationId: string;
  readonly botUser: FakeUser & { bot: true; discriminator: string; avatar: null };
  readonly guilds: FakeGuild[];
  readonly requests: RecordedRequest[] = [];
  readonly interactions = new Map<string, FakeInteraction>();
  readonly messages = new Map<string, FakeMessage>();
  readonly commands: { global: unknown[] | undefined; guild: Map<string, unknown[]> } = { global: undefined, guild: new Map() };
  readonly dmChannels = new Map<string, string>();
  readonly cdnFiles = new Map<string, { data: Buffer; contentType: string }>();
  readonly ackDeadlineMs: number;
  readonly tokenLifetimeMs: number;
  readonly uploadLimitBytes: number;
  /** The application's public key (64 hex characters), what the app verifies interaction requests with. */
  readonly publicKeyHex: string;
  private readonly messageEditBucket: { limit: number; windowMs: number } | undefined;
  private readonly editTimes = new Map<string, number[]>();
  private readonly latencyMs: number;
  private readonly keepUploads: boolean;
  private readonly httpAnswerLatencyMs: number;
  private readonly gatewayUnreachable: boolean;
  private readonly maxGuildsPerShard: number;
  private readonly recommendedShards: number | undefined;
  private readonly maxConcurrency: number;
  private readonly rateLimitRules: RateLimitRule[] = [];
  private readonly errorRules: { method?: string; path: RegExp; withFiles: boolean; remaining: number; status: number; error: DiscordErrorBody }[] = [];
  private readonly server = createServer((req, res) => void this.handle(req, res));
  private gateway!: FakeGateway;
  private readonly endpoint: InteractionsEndpointClient;
  private endpointUrl: string | undefined;
  private port = 0;

  constructor(opts: FakeDiscordOptions = {}) {
    super();
    this.setMaxListeners(0);
    this.token = opts.token ?? 'fake-bot-token.' + snowflake();
    this.applicationId = opts.applicationId ?? snowflake();
    this.botUser = { id: this.applicationId, username: 'imagine-bot', global_name: null, bot: true, discriminator: '0000', avatar: null };
    this.guilds = opts.guilds ?? [{ id: snowflake(), name: 'Test Guild', channels: [{ id: snowflake(), name: 'general' }] }];
    this.ackDeadlineMs = opts.ackDeadlineMs ?? ACK_DEADLINE_MS;
    this.tokenLifetimeMs = opts.tokenLifetimeMs ?? TOKEN_LIFETIME_MS;
    this.uploadLimitBytes = opts.uploadLimitBytes ?? DEFAULT_UPLOAD_LIMIT_BYTES;
    this.messageEditBucket = opts.messageEditBucket;
    this.latencyMs = opts.latencyMs ?? 0;
    this.keepUploads = opts.keepUploads ?? true;
    this.httpAnswerLatencyMs = opts.httpAnswerLatencyMs ?? 0;
    this.gatewayUnreachable = opts.gatewayUnreachable ?? false;
    this.maxGuildsPerShard = opts.maxGuildsPerShard ?? MAX_GUILDS_PER_SHARD;
    this.recommendedShards = opts.recommendedShards;
    this.maxConcurrency = opts.maxConcurrency ?? 1;
    this.endpoint = new InteractionsEndpointClient(this.ackDeadlineMs);
    this.publicKeyHex = this.endpoint.publicKeyHex;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    this.port = (this.server.address() as AddressInfo).port;
    this.gateway = new FakeGateway({
      token: this.token,
      user: { ...this.botUser, public_flags: 0, flags: 0, verified: true, mfa_enabled: false },
      application: { id: this.applicationId, flags: 0 },
      guilds: () => this.guilds.map((g) => this.guildPayload(g)),
      resumeUrl: this.gatewayUrl,
      maxGuildsPerShard: this.maxGuildsPerShard,
    });
    this.server.on('upgrade', (req, socket, head) => {
      if ((req.url ?? '').startsWith('/gateway')) this.gateway.handleUpgrade(req, socket, head);
      else socket.destroy();
    });
    return this;
  }

  /** What DISCORD_API_URL should be. */
  get apiUrl(): string {
    return `http://127.0.0.1:${this.port}/api`;
  }
  get gatewayUrl(): string {
    return `ws://127.0.0.1:${this.port}/gateway`;
  }
  get cdnUrl(): string {
    return `http://127.0.0.1:${this.port}/cdn`;
  }
  get guildId(): string {
    return this.guilds[0]!.id;
  }
  get channelId(): string {
    return this.guilds[0]!.channels[0]!.id;
  }
  /** IDENTIFY payloads the bot sent (intents, shard…). */
  get identifies(): Record<string, unknown>[] {
    return this.gateway.identifies;
  }
  /** The [shard_id, num_shards] of every bot session connected now, oldest first. */
  get connectedShards(): ShardPair[] {
    return this.gateway.shards();
  }
  /** GET /gateway/bot's recommended shard count for the guilds the bot is in now. */
  get shardCount(): number {
    return this.recommendedShards ?? Math.max(1, Math.ceil(this.guilds.length / 1_000), Math.ceil(this.guilds.length / this.maxGuildsPerShard));
  }

  waitForBot(timeoutMs = 10_000): Promise<void> {
    return this.gateway.waitForSession(timeoutMs);
  }

  /** The saved Interactions Endpoint URL; undefined while interactions go over the gateway. */
  get interactionsEndpointUrl(): string | undefined {
    return this.endpointUrl;
  }

  /**
   * Saves the Interactions Endpoint URL as the developer portal does: only after the app answers a
   * signed PING with `{"type": 1}` and refuses bad signatures with 401 (throws otherwise, leaving
   * the URL as it was). From then on interactions are POSTed to it and no longer sent on the
   * gateway; undefined goes back to the gateway.
   */
  async setInteractionsEndpoint(url: string | undefined): Promise<void> {
    if (url !== undefined) await this.endpoint.verify(url, this.applicationId);
    this.endpointUrl = url;
  }

  /** For negative tests: POSTs `payload` to the Interactions Endpoint URL (or `opts.url`), signed as `opts` says, and returns the answer without applying it. */
  async postToInteractionsEndpoint(payload: object, opts: EndpointPostOptions & { url?: string } = {}): Promise<EndpointAnswer> {
    const url = opts.url ?? this.endpointUrl;
    if (url === undefined) throw new Error('postToInteractionsEndpoint: no Interactions Endpoint URL set');
    return this.endpoint.post(url, payload, opts);
  }

  /** The next `times` matching requests are answered 429 with `retry_after` (JSON and headers). */
  injectRateLimit(rule: { method?: string; path: RegExp; times?: number; retryAfterS?: number; global?: boolean }): void {
    this.rateLimitRules.push({
      path: rule.path,
      remaining: rule.times ?? 1,
      retryAfterS: rule.retryAfterS ?? 0.2,
      global: rule.global ?? false,
      ...(rule.method !== undefined && { method: rule.method }),
    });
  }

  /**
   * The next `times` matching requests are answered with a Discord error (default 403 / 50013
   * Missing Permissions). `withFiles`: only requests carrying files (multipart), e.g. a channel
   * where the bot may not attach files.
   */
  injectError(rule: { method?: string; path: RegExp; times?: number; status?: number; code?: number; message?: string; withFiles?: boolean }): void {
    this.errorRules.push({
      path: rule.path,
      withFiles: rule.withFiles ?? false,
      remaining: rule.times ?? 1,
      status: rule.status ?? 403,
      error: { code: rule.code ?? 50013, message: rule.message ?? 'Missing Permissions' },
      ...(rule.method !== undefined && { method: rule.method }),
    });
  }

  /** Serves a file on the fake CDN; returns its URL. */
  putCdnFile(path: string, data: Buffer, contentType: string): string {
    this.cdnFiles.set(path, { data, contentType });
    return `${this.cdnUrl}/${path}`;
  }

  // ---------------------------------------------------------------------------------------------
  // Interactions

  /** Dispatches a slash command (INTERACTION_CREATE type 2) like a user typing it. */
  async sendCommand(input: SlashCommandInput): Promise<FakeInteraction> {
    const user = input.user ?? DEFAULT_USER;
    const where = this.placeOf(input.where, input.channelId, user);
    const command = this.registeredCommand(input.name, where.guildId);
    if (command && !input.ignoreCommandVisibility) {
      const permissions = input.permissions ?? (where.guildId ? this.memberPermissions(user.id, where.guildId) : ALL_PERMISSIONS);
      const hidden = this.commandHiddenReason(command, where, permissions);
      if (hidden) throw new Error(`sendCommand: Discord's client would not offer this command to ${user.username}: ${hidden} (pass ignoreCommandVisibility to send it anyway)`);
    }
    const options: Record<string, unknown>[] = (input.options ?? []).map((o) => ({ ...o }));
    const resolvedAttachments: Record<string, unknown> = {};
    for (const [name, file] of Object.entries(input.attachments ?? {})) {
      const id = snowflake();
      const contentType = file.contentType ?? 'image/png';
      const url = this.putCdnFile(`ephemeral-attachments/${this.applicationId}/${id}/${encodeURIComponent(file.filename)}`, file.data, contentType);
      const meta = await imageMeta(file.data);
      resolvedAttachments[id] = {
        id,
        filename: file.filename,
        size: file.data.length,
        url,
        proxy_url: url,
        content_type: contentType,
        ephemeral: true,
        ...(meta && { width: meta.width, height: meta.height }),
      };
      options.push({ name, type: 11, value: id });
    }
    const data: Record<string, unknown> = {
      id: command?.id ?? snowflake(),
      name: input.name,
      type: 1,
      options,
      ...(command?.guild_id !== undefined && { guild_id: command.guild_id }),
      ...(Object.keys(resolvedAttachments).length > 0 && { resolved: { attachments: resolvedAttachments } }),
    };
    return this.dispatchInteraction(2, data, user, where, input.permissions, input.attachmentSizeLimit);
  }

  /** Dispatches a component click (INTERACTION_CREATE type 3) on a message the bot posted. */
  async clickComponent(input: ComponentClickInput): Promise<FakeInteraction> {
    const message = typeof input.message === 'string' ? this.messages.get(input.message) : input.message;
    if (!message) throw new Error('clickComponent: unknown message');
    const component = findComponent(message.components, input.customId);
    if (!component) throw new Error(`clickComponent: no component ${input.customId} on message ${message.id}`);
    if (component.disabled === true) throw new Error(`clickComponent: ${input.customId} is disabled`);
    const user = input.user ?? DEFAULT_USER;
    const where = message.guildId
      ? { guildId: message.guildId, channelId: message.channelId }
      : { channelId: message.channelId, dmUser: user };
    const data: Record<string, unknown> = {
      custom_id: input.customId,
      component_type: component.type,
      ...(component.type === 3 && { values: input.values ?? [] }),
    };
    return this.dispatchInteraction(3, data, user, where, input.permissions, undefined, message);
  }

  /** A guild's command of that name first (it shadows a global one there), else the global one. */
  private registeredCommand(name: string, guildId?: string): RegisteredCommand | undefined {
    const guild = guildId ? (this.commands.guild.get(guildId) as RegisteredCommand[] | undefined) : undefined;
    return guild?.find((c) => c.name === name) ?? (this.commands.global as RegisteredCommand[] | undefined)?.find((c) => c.name === name);
  }

  /** Commands as registered (global, or a guild's), as Discord returns them. */
  registeredCommands(guildId?: string): RegisteredCommand[] {
    return ((guildId ? this.commands.guild.get(guildId) : this.commands.global) ?? []) as RegisteredCommand[];
  }

  /**
   * Why Discord's client would not offer `command` to this user here, or undefined when it would.
   * Discord hides a command from members lacking ALL the bits of its default_member_permissions
   * ("0": administrators only; ADMINISTRATOR and the owner pass everything) unless the server
   * overrides it in Server Settings → Integrations, and outside its `contexts` (or in DMs with
   * dm_permission false). The API does not check either when the interaction arrives: the check is
   * the client's (https://discord.com/developers/docs/interactions/application-commands#permissions,
   * https://discord.com/developers/docs/interactions/application-commands#interaction-contexts).
   */
  commandHiddenReason(command: RegisteredCommand, where: { guildId?: string }, permissions: bigint): string | undefined {
    const context = where.guildId ? 0 : 1;
    if (command.contexts ? !command.contexts.includes(context) : context === 1 && (command.guild_id !== undefined || command.dm_permission === false)) {
      return `/${command.name} is not available in ${context === 0 ? 'servers' : 'DMs'} (contexts ${JSON.stringify(command.contexts)})`;
    }
    if (context === 0 && command.default_member_permissions !== null) {
      const needed = BigInt(command.default_member_permissions);
      if ((permissions & needed) !== needed || (needed === 0n && (permissions & Permission.Administrator) === 0n)) {
        return `/${command.name} needs permissions ${command.default_member_permissions}; the member has ${permissions}`;
      }
    }
    return undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // Guild state: roles, members' roles, channels

  private guildById(guildId: string = this.guildId): FakeGuild {
    const guild = this.guilds.find((g) => g.id === guildId);
    if (!guild) throw new Error(`unknown guild ${guildId}`);
    return guild;
  }

  /** A guild's roles, @everyone first (created with MEMBER_PERMISSIONS when missing). */
  roles(guildId?: string): FakeRole[] {
    const guild = this.guildById(guildId);
    guild.roles ??= [];
    if (!guild.roles.some((r) => r.id === guild.id)) guild.roles.unshift({ id: guild.id, name: '@everyone', position: 0, permissions: MEMBER_PERMISSIONS });
    return guild.roles;
  }

  /** Creates a role (above the others unless `position` says) and tells the bot (GUILD_ROLE_CREATE, GUILDS intent). */
  createRole(init: { name: string; permissions?: bigint; position?: number; guildId?: string }): FakeRole {
    const roles = this.roles(init.guildId);
    const guildId = init.guildId ?? this.guildId;
    const role: FakeRole = { id: snowflake(), name: init.name, position: init.position ?? Math.max(...roles.map((r) => r.position)) + 1, permissions: init.permissions ?? 0n };
    roles.push(role);
    this.gateway?.send('GUILD_ROLE_CREATE', { guild_id: guildId, role: roleJson(role) }, guildId);
    return role;
  }

  /** Sets a member's roles (role ids of that guild; @everyone is implied). */
  setMemberRoles(userId: string, roleIds: string[], guildId?: string): void {
    const guild = this.guildById(guildId);
    const known = new Set(this.roles(guild.id).map((r) => r.id));
    for (const id of roleIds) if (!known.has(id)) throw new Error(`setMemberRoles: guild ${guild.id} has no role ${id}`);
    (guild.memberRoles ??= {})[userId] = roleIds.filter((id) => id !== guild.id);
  }

  /** A member's role ids (without @everyone). */
  memberRoleIds(userId: string, guildId?: string): string[] {
    return this.guildById(guildId).memberRoles?.[userId] ?? [];
  }

  /**
   * A member's guild-level permissions as Discord computes them: the owner has all; otherwise
   * @everyone's permissions OR each of the member's roles', and ADMINISTRATOR means all
   * (https://discord.com/developers/docs/topics/permissions#permission-overwrites; channel
   * overwrites are not modelled).
   */
  memberPermissions(userId: string, guildId?: string): bigint {
    const guild = this.guildById(guildId);
    if (userId === guild.ownerId) return ALL_PERMISSIONS;
    const roles = this.roles(guild.id);
    const mine = new Set([guild.id, ...this.memberRoleIds(userId, guild.id)]);
    const base = roles.filter((r) => mine.has(r.id)).reduce((acc, r) => acc | r.permissions, 0n);
    return (base & Permission.Administrator) !== 0n ? ALL_PERMISSIONS : base;
  }

  /** Adds a channel or thread to a guild and tells the bot (CHANNEL_CREATE / THREAD_CREATE, GUILDS intent). */
  addChannel(init: { name: string; type?: number; parentId?: string; guildId?: string }): FakeChannel {
    const guild = this.guildById(init.guildId);
    const channel: FakeChannel = { id: snowflake(), name: init.name, type: init.type ?? 0, ...(init.parentId !== undefined && { parentId: init.parentId }) };
    guild.channels.push(channel);
    const isThread = THREAD_TYPES.has(channel.type!);
    this.gateway?.send(isThread ? 'THREAD_CREATE' : 'CHANNEL_CREATE', { ...channelJson(guild, channel, guild.channels.indexOf(channel)), ...(isThread && { newly_created: true }) }, guild.id);
    return channel;
  }

  private placeOf(where: string | undefined, channelId: string | undefined, user: FakeUser): { guildId?: string; channelId: string; dmUser?: FakeUser } {
    if (where === 'dm') return { channelId: this.dmChannelFor(user.id), dmUser: user };
    const guild = this.guilds.find((g) => g.id === (where ?? this.guildId));
    if (!guild) throw new Error(`unknown guild ${where}`);
    return { guildId: guild.id, channelId: channelId ?? guild.channels[0]!.id };
  }

  private dmChannelFor(userId: string): string {
    let id = this.dmChannels.get(userId);
    if (!id) {
      id = snowflake();
      this.dmChannels.set(userId, id);
    }
    return id;
  }

  /**
   * Submits the modal `input.interaction` opened, as its user pressing Submit: an interaction of
   * type 5 MODAL_SUBMIT whose data holds the modal's custom_id and its components with the text
   * inputs' values, in the modal's own structure (action row → `components`, label → `component`)
   * and with the message when the modal was opened from a component
   * (https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-object-modal-submit-data-structure,
   * https://discord.com/developers/docs/components/reference#label). Throws where Discord's client
   * would not let the user submit: no open modal, already submitted, expired with the token that
   * opened it, a required input empty or a length out of bounds.
   */
  async submitModal(input: ModalSubmitInput): Promise<FakeInteraction> {
    const opener = this.interactions.get(input.interaction.id) ?? input.interaction;
    const modal = opener.modal;
    if (!modal) throw new Error('submitModal: that interaction did not open a modal');
    if (modal.submitted) throw new Error('submitModal: the modal was already submitted (it closes on submit)');
    if (Date.now() - opener.createdAtMs > this.tokenLifetimeMs) throw new Error('submitModal: the modal expired with its interaction token');
    const values = { ...input.values };
    const answer = (c: Record<string, unknown>): Record<string, unknown> => {
      if (c.type !== 4) throw new Error(`submitModal: component type ${String(c.type)} is not supported by the fake (text inputs only)`);
      const customId = String(c.custom_id);
      const value = values[customId] ?? (typeof c.value === 'string' ? c.value : '');
      delete values[customId];
      if (c.required !== false && value.length === 0) throw new Error(`submitModal: ${customId} is required`);
      if (value.length > 0 && ((typeof c.min_length === 'number' && value.length < c.min_length) || value.length > (typeof c.max_length === 'number' ? c.max_length : 4000))) {
        throw new Error(`submitModal: ${customId} must be ${String(c.min_length ?? 0)}–${String(c.max_length ?? 4000)} characters`);
      }
      return { type: 4, id: c.id, custom_id: customId, value };
    };
    const components = modal.components.map((c) => {
      if (c.type === 1) return { type: 1, id: c.id, components: ((c.components ?? []) as Record<string, unknown>[]).map(answer) };
      if (c.type === 18) return { type: 18, id: c.id, component: answer(c.component as Record<string, unknown>) };
      return { type: c.type, id: c.id };
    });
    const unknown = Object.keys(values);
    if (unknown.length > 0) throw new Error(`submitModal: the modal has no text input ${unknown.join(', ')}`);
    modal.submitted = true;
    const opened = (opener.payload.member as { user?: { id: string; username: string; global_name?: string | null } } | undefined)?.user ?? (opener.payload.user as { id: string; username: string; global_name?: string | null });
    const user = input.user ?? { id: opened.id, username: opened.username, global_name: opened.global_name ?? null };
    const where = opener.guildId ? { guildId: opener.guildId, channelId: opener.channelId } : { channelId: opener.channelId, dmUser: user };
    const source = opener.sourceMessageId ? this.messages.get(opener.sourceMessageId) : undefined;
    return this.dispatchInteraction(5, { custom_id: modal.custom_id, components }, user, where, undefined, opener.payload.attachment_size_limit as number, source);
  }

  private async dispatchInteraction(
    type: 2 | 3 | 5,
    data: Record<string, unknown>,
    user: FakeUser,
    where: { guildId?: string; channelId: string; dmUser?: FakeUser },
    permissions: bigint | undefined,
    attachmentSizeLimit: number | undefined,
    message?: FakeMessage,
  ): Promise<FakeInteraction> {
    const now = Date.now();
    // The id's timestamp is moved back so that "created + 15 min" (what a bot computes from the
    // snowflake) is exactly when this fake expires the token, even with a scaled lifetime.
    const id = snowflake(now - (TOKEN_LIFETIME_MS - this.tokenLifetimeMs));
    const token = Buffer.from(`interaction:${id}:${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`).toString('base64url');
    const userObj = { id: user.id, username: user.username, global_name: user.global_name ?? null, discriminator: '0', avatar: null, public_flags: 0 };
    const guild = where.guildId ? this.guilds.find((g) => g.id === where.guildId) : undefined;
    const perms = (permissions ?? (guild ? this.memberPermissions(user.id, guild.id) : MEMBER_PERMISSIONS)).toString();
    const channel = guild?.channels.find((c) => c.id === where.channelId);
    const payload: Record<string, unknown> = {
      id,
      application_id: this.applicationId,
      type,
      token,
      version: 1,
      data,
      channel_id: where.channelId,
      channel: guild
        ? { ...(channel ? channelJson(guild, channel, guild.channels.indexOf(channel)) : { id: where.channelId, type: 0, guild_id: guild.id, name: 'channel', position: 0, permission_overwrites: [], nsfw: false, parent_id: null }), permissions: perms }
        : { id: where.channelId, type: 1, recipients: [userObj], last_message_id: null, flags: 0 },
      app_permissions: (guild?.appPermissions ?? MODERATOR_PERMISSIONS).toString(),
      locale: 'en-US',
      entitlements: [],
      authorizing_integration_owners: guild ? { '0': guild.id } : { '0': '0' },
      context: guild ? 0 : 1,
      attachment_size_limit: attachmentSizeLimit ?? guild?.uploadLimitBytes ?? this.uploadLimitBytes,
      ...(guild
        ? {
            guild_id: guild.id,
            guild: { id: guild.id, locale: 'en-US', features: [] },
            guild_locale: 'en-US',
            member: { user: userObj, roles: this.memberRoleIds(user.id, guild.id), permissions: perms, joined_at: new Date(now - 86_400_000).toISOString(), nick: null, avatar: null, deaf: false, mute: false, flags: 0, pending: false, premium_since: null },
          }
        : { user: userObj }),
      ...(message && { message: this.messageJson(message) }),
    };
    const interaction: FakeInteraction = {
      id,
      token,
      type,
      payload,
      dispatchedAt: performance.now(),
      createdAtMs: now,
      followupIds: [],
      ephemeral: false,
      userId: user.id,
      channelId: where.channelId,
      ...(where.guildId && { guildId: where.guildId }),
      ...(message && { sourceMessageId: message.id }),
    };
    this.interactions.set(id, interaction);
    interaction.dispatchedAt = performance.now();
    if (this.endpointUrl !== undefined) {
      interaction.httpDelivery = this.deliverByHttp(interaction, this.endpointUrl);
      return interaction;
    }
    const shard = this.gateway.send('INTERACTION_CREATE', payload, where.guildId);
    if (!shard) throw new Error(`no bot session on the fake gateway for the shard of ${where.guildId === undefined ? 'DMs' : `guild ${where.guildId}`}`);
    interaction.shard = shard;
    return interaction;
  }

  /**
   * A user posts a message (optionally a reply, optionally with attachments). The gateway sends
   * MESSAGE_CREATE only to a bot that identified with GUILD_MESSAGES (guild channels) or
   * DIRECT_MESSAGES (DMs); `content`, `embeds`, `attachments` and `components` arrive empty unless
   * the bot has MESSAGE_CONTENT, is mentioned (a reply that pings the bot's message counts), or the
   * message is a DM to it (https://discord.com/developers/docs/events/gateway#message-content-intent).
   * Returns the message and whether the bot was sent the event.
   */
  async postUserMessage(input: UserMessageInput): Promise<{ message: FakeMessage; dispatched: boolean }> {
    const user = input.user ?? DEFAULT_USER;
    const guild = input.dm ? undefined : this.guilds.find((g) => g.channels.some((c) => c.id === (input.channelId ?? this.channelId)));
    if (!input.dm && !guild) throw new Error(`postUserMessage: unknown channel ${input.channelId}`);
    const channelId = input.dm ? this.dmChannelFor(user.id) : (input.channelId ?? this.channelId);
    const target = input.replyTo === undefined ? undefined : typeof input.replyTo === 'string' ? this.messages.get(input.replyTo) : input.replyTo;
    if (input.replyTo !== undefined && (!target || target.deleted || target.channelId !== channelId)) throw new Error('postUserMessage: the replied-to message is not in that channel');
    const msg = this.newMessage({ channelId, ...(guild && { guildId: guild.id }), type: target ? 19 : 0, flags: 0 });
    msg.authorId = user.id;
    msg.author = user;
    msg.content = input.content;
    msg.mentions = mentionsOf(input.content, undefined);
    if (target) {
      msg.messageReference = { message_id: target.id, channel_id: channelId, ...(guild && { guild_id: guild.id }) };
      if (input.replyPing !== false && target.authorId !== user.id && !msg.mentions.includes(target.authorId)) msg.mentions.push(target.authorId);
    }
    for (const file of input.attachments ?? []) {
      msg.attachments.push(this.storeAttachment({ field: 'files[0]', filename: file.filename, data: file.data, ...(file.contentType !== undefined && { contentType: file.contentType }) }, file.filename));
    }
    msg.history.push({ at: Date.now(), content: msg.content, attachments: msg.attachments.map((a) => ({ filename: a.filename, size: a.size })), components: 0, flags: 0 });
    this.emit('message', msg);
    const needed = guild ? Intent.GuildMessages : Intent.DirectMessages;
    const dispatched = this.gateway.sendForIntents(
      'MESSAGE_CREATE',
      (intents) => {
        if ((intents & needed) === 0) return undefined;
        const json = this.messageJsonFor(msg, intents);
        // MESSAGE_CREATE's extra fields: guild_id, member, mentions and the channel's type
        // (https://discord.com/developers/docs/events/gateway-events#message-create).
        return {
          ...json,
          channel_type: guild ? (guild.channels.find((c) => c.id === channelId)?.type ?? 0) : 1,
          ...(target && { referenced_message: this.messageJsonFor(target, intents) }),
          ...(guild && { guild_id: guild.id, member: { roles: this.memberRoleIds(user.id, guild.id), joined_at: new Date(Date.now() - 86_400_000).toISOString(), nick: null, avatar: null, deaf: false, mute: false, flags: 0, pending: false, premium_since: null } }),
        };
      },
      guild?.id,
    );
    return { message: msg, dispatched };
  }

  /**
   * The message as a bot with these intents sees it: a user's message loses its content, embeds,
   * attachments and components without MESSAGE_CONTENT, unless it mentions the bot or is in a DM.
   */
  private messageJsonFor(msg: FakeMessage, intents: number): Record<string, unknown> {
    const json = this.messageJson(msg);
    const visible = !msg.author || (intents & Intent.MessageContent) !== 0 || msg.guildId === undefined || msg.mentions.includes(this.botUser.id);
    return visible ? json : { ...json, content: '', embeds: [], attachments: [], components: [] };
  }

  /** Intents of the newest identified session (what REST reads of messages are filtered by). */
  private get botIntents(): number {
    return Number(this.gateway.identifies.at(-1)?.intents ?? 0);
  }

  /**
   * Sends one raw gateway dispatch to the bot, as is: any event name, any `d`, even one Discord
   * would never send (robustness tests), to the shard of its `guild_id` (shard 0 without a
   * numeric one). False when that shard has no session.
   */
  sendDispatch(t: string, d: unknown): boolean {
    const guildId = d && typeof d === 'object' && 'guild_id' in d ? d.guild_id : undefined;
    return this.gateway.send(t, d, typeof guildId === 'string' && /^\d+$/.test(guildId) ? guildId : undefined) !== undefined;
  }

  /**
   * Queues a raw dispatch for the next bot that identifies, sent right after READY and before its
   * guilds arrive: while discord.js waits for them, it holds such events back and handles them later.
   */
  sendDispatchBeforeGuilds(t: string, d: unknown): void {
    this.gateway.beforeGuilds.push({ t, d });
  }

  /** POSTs the interaction to the app and applies its answer as the first response, as Discord does. */
  private async deliverByHttp(interaction: FakeInteraction, url: string): Promise<void> {
    const delivery = await this.endpoint.deliver(url, interaction.payload);
    if (delivery.status !== undefined) interaction.httpStatus = delivery.status;
    if ('failure' in delivery) {
      interaction.httpFailure = delivery.failure;
    } else {
      if (this.httpAnswerLatencyMs > 0) await new Promise((r) => setTimeout(r, this.httpAnswerLatencyMs));
      const applied = this.firstResponse(interaction, { json: delivery.json, files: [] }, false);
      if (applied.status >= 400) interaction.httpFailure = `answer refused (${applied.status}): ${JSON.stringify(applied.json)}`;
    }
    this.emit('delivery', interaction);
  }

  /** Puts a message from the bot in a channel, as if posted earlier (e.g. by an older run of the bot). */
  seedBotMessage(init: { channelId?: string; content: string; components: Record<string, unknown>[]; ephemeral?: boolean }): FakeMessage {
    const channelId = init.channelId ?? this.channelId;
    const guild = this.guilds.find((g) => g.channels.some((c) => c.id === channelId));
    const msg = this.newMessage({ channelId, ...(guild && { guildId: guild.id }), type: 0, flags: init.ephemeral ? MESSAGE_FLAG_EPHEMERAL : 0 });
    this.applyWrite(msg, { content: init.content, components: init.components });
    return msg;
  }

  /** Resolves when `predicate` returns a value (checked after every request, every HTTP delivery and every 20 ms). */
  waitFor<T>(predicate: () => T | undefined | false | null, timeoutMs = 10_000, what = 'condition'): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        let v: T | undefined | false | null;
        try {
          v = predicate();
        } catch (err) {
          finish();
          reject(err as Error);
          return;
        }
        if (v !== undefined && v !== false && v !== null) {
          finish();
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`fake Discord: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const poll = setInterval(check, 20);
      const finish = () => {
        clearTimeout(timer);
        clearInterval(poll);
        this.off('request', check);
        this.off('delivery', check);
      };
      this.on('request', check);
      this.on('delivery', check);
      check();
    });
  }

  /** The message the user sees as the interaction's answer (original response). */
  originalMessage(interaction: FakeInteraction): FakeMessage | undefined {
    const i = this.interactions.get(interaction.id) ?? interaction;
    return i.originalMessageId ? this.messages.get(i.originalMessageId) : undefined;
  }

  /** Messages in a channel, oldest first (deleted ones excluded). */
  channelMessages(channelId: string): FakeMessage[] {
    return [...this.messages.values()].filter((m) => m.channelId === channelId && !m.deleted);
  }

  /** Requests answered 4xx/5xx except injected 429s: things real Discord would have refused. */
  get refusals(): RecordedRequest[] {
    return this.requests.filter((r) => r.status >= 400 && r.rateLimited !== 'injected');
  }

  async close(): Promise<void> {
    await this.endpoint.close();
    await this.gateway?.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---------------------------------------------------------------------------------------------
  // HTTP

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname.startsWith('/cdn/')) return this.serveCdn(url.pathname.slice('/cdn/'.length), res);
    const rec: RecordedRequest = {
      at: Date.now(),
      method: req.method ?? 'GET',
      path: decodeURIComponent(url.pathname.replace(/^\/api\/v\d+/, '')),
      query: url.search,
      status: 0,
      answeredAt: 0,
      files: [],
      ...(req.headers.authorization !== undefined && { authorization: req.headers.authorization }),
    };
    let body: Buffer;
    try {
      body = await readAll(req);
    } catch {
      res.destroy();
      return;
    }
    if (this.latencyMs > 0) await new Promise((r) => setTimeout(r, this.latencyMs));
    let answer: Answer;
    try {
      answer = await this.route(rec, req, url, body);
    } catch (err) {
      answer = { status: 500, json: { code: 0, message: `fake Discord bug: ${(err as Error).message}` } };
    }
    rec.status = answer.status;
    if (answer.bucket) rec.rateLimited = 'bucket';
    if (answer.status >= 400 && answer.json) rec.error = answer.json as DiscordErrorBody;
    this.requests.push(rec);
    const headers: Record<string, string> = { ...(answer.headers ?? {}) };
    if (answer.json !== undefined) headers['content-type'] = 'application/json';
    res.writeHead(answer.status, headers);
    res.end(answer.json !== undefined ? JSON.stringify(answer.json) : undefined);
    rec.answeredAt = Date.now();
    this.emit('request', rec);
  }

  private serveCdn(path: string, res: ServerResponse): void {
    const file = this.cdnFiles.get(decodeURIComponent(path).split('?')[0]!) ?? this.cdnFiles.get(path.split('?')[0]!);
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': file.contentType, 'content-length': String(file.data.length) });
    res.end(file.data);
  }

  private async route(rec: RecordedRequest, req: IncomingMessage, url: URL, raw: Buffer): Promise<Answer> {
    const method = rec.method;
    const path = rec.path;
    if (!url.pathname.startsWith('/api/v10/')) return { status: 404, json: ERRORS.notFound };

    // Injected rate limits come first, as Discord checks buckets before the body.
    const rule = this.rateLimitRules.find((r) => r.remaining > 0 && r.path.test(path) && (!r.method || r.method === method));
    if (rule) {
      rule.remaining -= 1;
      rec.rateLimited = 'injected';
      return rateLimited(rule.retryAfterS, rule.global);
    }
    const multipart = (req.headers['content-type'] ?? '').startsWith('multipart/form-data');
    const failure = this.errorRules.find((r) => r.remaining > 0 && r.path.test(path) && (!r.method || r.method === method) && (!r.withFiles || multipart));
    if (failure) {
      failure.remaining -= 1;
      return { status: failure.status, json: failure.error };
    }

    if (raw.length > MAX_REQUEST_BYTES) return { status: 413, json: ERRORS.entityTooLarge };
    const parsed = parseBody(req.headers['content-type'] ?? '', raw);
    if ('error' in parsed) return { status: 400, json: parsed.error };
    rec.body = parsed.json;
    rec.files = parsed.files.map((f) => ({
      field: f.field,
      filename: f.filename ?? '',
      size: f.data.length,
      ...(f.contentType !== undefined && { contentType: f.contentType }),
    }));

    // Discord counts attachments before validating the rest of the body.
    const json = parsed.json as { attachments?: unknown; data?: { attachments?: unknown } } | undefined;
    const declared = Array.isArray(json?.attachments) ? json.attachments.length : Array.isArray(json?.data?.attachments) ? json.data.attachments.length : 0;
    if (Math.max(declared, parsed.files.filter((f) => f.field !== 'payload_json').length) > 10) return { status: 400, json: ERRORS.tooManyAttachments };

    let m: RegExpExecArray | null;
    // Interaction callback: no bot authorization needed (the token in the path is the proof).
    if ((m = /^\/interactions\/(\d+)\/([^/]+)\/callback$/.exec(path)) && method === 'POST') {
      return this.interactionCallback(m[1]!, m[2]!, parsed, url.searchParams.get('with_response') === 'true');
    }
    if ((m = /^\/webhooks\/(\d+)\/([^/]+)(?:\/messages\/(@original|\d+))?$/.exec(path))) {
      return this.webhookRoute(method, m[1]!, m[2]!, m[3], parsed);
    }

    // Everything else needs the bot token.
    if (req.headers.authorization !== `Bot ${this.token}`) return { status: 401, json: ERRORS.unauthorized };

    if (path === '/gateway/bot' && method === 'GET') {
      return {
        status: 200,
        json: {
          url: this.gatewayUnreachable ? 'ws://127.0.0.1:9/gateway' : this.gatewayUrl,
          shards: this.shardCount,
          session_start_limit: { total: 1000, remaining: 999, reset_after: 86_400_000, max_concurrency: this.maxConcurrency },
        },
      };
    }
    if (path === '/gateway' && method === 'GET') return { status: 200, json: { url: this.gatewayUrl } };
    if (path === '/users/@me' && method === 'GET') return { status: 200, json: { ...this.botUser, public_flags: 0, flags: 0 } };
    if ((path === '/applications/@me' || path === `/oauth2/applications/@me`) && method === 'GET') {
      return {
        status: 200,
        json: {
          id: this.applicationId,
          name: 'imagine',
          description: '',
          flags: 0,
          bot_public: true,
          bot_require_code_grant: false,
          verify_key: this.publicKeyHex,
          icon: null,
          interactions_endpoint_url: this.endpointUrl ?? null,
        },
      };
    }
    if (path === '/users/@me/channels' && method === 'POST') {
      const err = validateBody('createDm', parsed.json);
      if (err) return { status: 400, json: err };
      const recipient = (parsed.json as { recipient_id: string }).recipient_id;
      return { status: 200, json: { id: this.dmChannelFor(recipient), type: 1, last_message_id: null, flags: 0, recipients: [{ id: recipient, username: 'user', discriminator: '0', avatar: null, global_name: null }] } };
    }
    if ((m = /^\/applications\/(\d+)(?:\/guilds\/(\d+))?\/commands$/.exec(path))) {
      if (m[1] !== this.applicationId) return { status: 403, json: { code: 50001, message: 'Missing Access' } };
      const guildId = m[2];
      if (guildId && !this.guilds.some((g) => g.id === guildId)) return { status: 403, json: { code: 50001, message: 'Missing Access' } };
      if (method === 'GET') return { status: 200, json: (guildId ? this.commands.guild.get(guildId) : this.commands.global) ?? [] };
      if (method === 'PUT') {
        const err = validateBody('commandsBulkOverwrite', parsed.json) ?? commandRules(parsed.json as Record<string, unknown>[]);
        if (err) return { status: 400, json: err };
        // Discord answers with every field set: the bitfield as a string, contexts defaulting to
        // every context for global commands (null for guild ones), integration_types to guild install
        // (https://discord.com/developers/docs/interactions/application-commands#application-command-object).
        const saved = (parsed.json as Record<string, unknown>[]).map((c): RegisteredCommand => {
          const dmp = c.default_member_permissions;
          const contexts = Array.isArray(c.contexts) ? (c.contexts as number[]) : guildId ? null : c.dm_permission === false ? [0] : [0, 1, 2];
          return {
            ...c,
            id: snowflake(),
            application_id: this.applicationId,
            version: snowflake(),
            name: String(c.name),
            type: typeof c.type === 'number' ? c.type : 1,
            default_member_permissions: dmp === undefined || dmp === null ? null : BigInt(dmp as string | number).toString(),
            contexts,
            integration_types: Array.isArray(c.integration_types) ? (c.integration_types as number[]) : [0],
            nsfw: c.nsfw === true,
            ...(guildId ? { guild_id: guildId } : { dm_permission: c.dm_permission !== false && (contexts === null || contexts.includes(1)) }),
          };
        });
        if (guildId) this.commands.guild.set(guildId, saved);
        else this.commands.global = saved;
        return { status: 200, json: saved };
      }
    }
    if ((m = /^\/guilds\/(\d+)\/(roles|channels)$/.exec(path)) && method === 'GET') {
      const guild = this.guilds.find((g) => g.id === m![1]);
      if (!guild) return { status: 404, json: ERRORS.unknownGuild };
      // GET /guilds/{id}/channels lists channels, not threads (those come from the threads endpoints).
      if (m[2] === 'roles') return { status: 200, json: this.roles(guild.id).map(roleJson) };
      return { status: 200, json: guild.channels.flatMap((c, i) => (THREAD_TYPES.has(c.type ?? 0) ? [] : [channelJson(guild, c, i)])) };
    }
    if ((m = /^\/guilds\/(\d+)\/members\/(\d+)$/.exec(path)) && method === 'GET') {
      const guild = this.guilds.find((g) => g.id === m![1]);
      if (!guild) return { status: 404, json: ERRORS.unknownGuild };
      const userId = m[2]!;
      return {
        status: 200,
        json: {
          user: { id: userId, username: `user${userId.slice(-4)}`, global_name: null, discriminator: '0', avatar: null, public_flags: 0 },
          roles: this.memberRoleIds(userId, guild.id),
          nick: null,
          avatar: null,
          joined_at: new Date(Date.now() - 86_400_000).toISOString(),
          premium_since: null,
          deaf: false,
          mute: false,
          flags: 0,
          pending: false,
        },
      };
    }
    if ((m = /^\/channels\/(\d+)$/.exec(path)) && method === 'GET') {
      const channelId = m[1]!;
      const guild = this.guilds.find((g) => g.channels.some((c) => c.id === channelId));
      if (guild) {
        const i = guild.channels.findIndex((c) => c.id === channelId);
        return { status: 200, json: channelJson(guild, guild.channels[i]!, i) };
      }
      const recipient = [...this.dmChannels].find(([, id]) => id === channelId)?.[0];
      if (recipient === undefined) return { status: 404, json: ERRORS.unknownChannel };
      return { status: 200, json: { id: channelId, type: 1, last_message_id: null, flags: 0, recipients: [{ id: recipient, username: `user${recipient.slice(-4)}`, discriminator: '0', avatar: null, global_name: null }] } };
    }
    if ((m = /^\/channels\/(\d+)\/messages\/(\d+)\/reactions\/([^/]+)\/@me$/.exec(path)) && (method === 'PUT' || method === 'DELETE')) {
      return this.ownReaction(method, m[1]!, m[2]!, m[3]!);
    }
    if ((m = /^\/channels\/(\d+)\/messages(?:\/(\d+))?$/.exec(path))) {
      return this.channelRoute(method, m[1]!, m[2], parsed);
    }
    return { status: 404, json: ERRORS.notFound };
  }

  private interactionCallback(id: string, token: string, parsed: ParsedBody, withResponse: boolean): Answer {
    const interaction = this.interactions.get(id);
    if (!interaction || interaction.token !== token) return { status: 404, json: ERRORS.unknownInteraction };
    return this.firstResponse(interaction, parsed, withResponse);
  }

  /** Applies an interaction's first response, posted to the callback endpoint or answered to the HTTP delivery. */
  private firstResponse(interaction: FakeInteraction, parsed: ParsedBody, withResponse: boolean): Answer {
    const now = performance.now();
    if (interaction.ackedAt !== undefined) return { status: 400, json: ERRORS.alreadyAcknowledged };
    if (now - interaction.dispatchedAt > this.ackDeadlineMs) return { status: 404, json: ERRORS.unknownInteraction };
    const err = validateBody('interactionCallback', parsed.json);
    if (err) return { status: 400, json: err };
    const body = parsed.json as { type: number; data?: Record<string, unknown> | null };
    const data = body.data ?? {};
    if (body.type === 9 && interaction.type === 5) {
      return { status: 400, json: invalidFormBody([{ path: ['type'], code: 'invalid_value', message: 'A modal cannot be answered with another modal.' }]) };
    }
    if (body.type === 6 || body.type === 7) {
      // A modal submitted from a component's modal may update that component's message too.
      if (interaction.type !== 3 && !(interaction.type === 5 && interaction.sourceMessageId)) return { status: 400, json: invalidFormBody([{ path: ['type'], code: 'invalid_value', message: 'Interaction callback type 6/7 is only valid for component interactions.' }]) };
    }
    if (body.type === 5 && typeof data.flags === 'number' && (data.flags & ~MESSAGE_FLAG_EPHEMERAL) !== 0) {
      return { status: 400, json: invalidFormBody([{ path: ['data', 'flags'], code: 'invalid_value', message: 'Only the EPHEMERAL flag may be set when deferring.' }]) };
    }
    let messageId: string | undefined;
    if (body.type === 4 || body.type === 5) {
      const ephemeral = typeof data.flags === 'number' && (data.flags & MESSAGE_FLAG_EPHEMERAL) !== 0;
      const built = this.buildMessageWrite(data, parsed.files, interaction.payload.attachment_size_limit as number, [], 'webhook');
      if ('error' in built) return built.error;
      const msg = this.newMessage({
        channelId: interaction.channelId,
        ...(interaction.guildId && { guildId: interaction.guildId }),
        type: interaction.type === 2 ? 20 : 0,
        flags: (ephemeral ? MESSAGE_FLAG_EPHEMERAL : 0) | (body.type === 5 ? MESSAGE_FLAG_LOADING : 0),
        interaction,
      });
      if (body.type === 4) this.applyWrite(msg, built.write);
      interaction.originalMessageId = msg.id;
      interaction.ephemeral = ephemeral;
      messageId = msg.id;
    } else if (body.type === 6 || body.type === 7) {
      if (interaction.sourceMessageId) interaction.originalMessageId = interaction.sourceMessageId;
      const source = interaction.sourceMessageId ? this.messages.get(interaction.sourceMessageId) : undefined;
      interaction.ephemeral = ((source?.flags ?? 0) & MESSAGE_FLAG_EPHEMERAL) !== 0;
      if (body.type === 7 && source) {
        const built = this.buildMessageWrite(data, parsed.files, interaction.payload.attachment_size_limit as number, source.attachments, 'webhook');
        if ('error' in built) return built.error;
        this.applyWrite(source, built.write);
      }
      messageId = source?.id;
    }
    if (body.type === 9) {
      const modal = data as { custom_id: string; title: string; components: Record<string, unknown>[] };
      let next = 1;
      const assign = (c: Record<string, unknown>): Record<string, unknown> => ({
        ...c,
        id: typeof c.id === 'number' ? c.id : next++,
        ...(Array.isArray(c.components) && { components: (c.components as Record<string, unknown>[]).map(assign) }),
        ...(c.component !== undefined && { component: assign(c.component as Record<string, unknown>) }),
      });
      interaction.modal = { custom_id: modal.custom_id, title: modal.title, components: modal.components.map(assign), submitted: false };
    }
    interaction.ackedAt = now;
    interaction.ackLatencyMs = now - interaction.dispatchedAt;
    interaction.callbackType = body.type;
    this.emit('ack', interaction);
    if (!withResponse) return { status: 204 };
    const message = messageId ? this.messages.get(messageId) : undefined;
    return {
      status: 200,
      json: {
        interaction: {
          id: interaction.id,
          type: interaction.type,
          ...(message && { response_message_id: message.id, response_message_loading: body.type === 5, response_message_ephemeral: interaction.ephemeral }),
        },
        resource: { type: body.type, ...(message && body.type !== 5 && body.type !== 6 && { message: this.messageJson(message) }) },
      },
    };
  }

  private webhookRoute(method: string, appId: string, token: string, messageRef: string | undefined, parsed: ParsedBody): Answer {
    const interaction = [...this.interactions.values()].find((i) => i.token === token);
    if (!interaction || appId !== this.applicationId) return { status: 404, json: ERRORS.unknownWebhook };
    if (Date.now() - interaction.createdAtMs > this.tokenLifetimeMs) return { status: 401, json: ERRORS.invalidWebhookToken };
    if (interaction.ackedAt === undefined) return { status: 404, json: ERRORS.unknownWebhook };
    const limit = interaction.payload.attachment_size_limit as number;

    if (messageRef === undefined) {
      if (method !== 'POST') return { status: 405, json: { code: 0, message: '405: Method Not Allowed' } };
      // Follow-up message.
      const err = validateBody('webhookExecute', parsed.json);
      if (err) return { status: 400, json: err };
      const data = (parsed.json ?? {}) as Record<string, unknown>;
      const built = this.buildMessageWrite(data, parsed.files, limit, [], 'webhook');
      if ('error' in built) return built.error;
      // While a deferred reply is still loading, the first follow-up becomes that reply (its
      // ephemeral flag is the one chosen when deferring).
      const original = interaction.originalMessageId ? this.messages.get(interaction.originalMessageId) : undefined;
      if (original && !original.deleted && (original.flags & MESSAGE_FLAG_LOADING) !== 0) {
        this.applyWrite(original, { ...built.write, flags: (built.write.flags ?? 0) & ~MESSAGE_FLAG_EPHEMERAL });
        return { status: 200, json: this.messageJson(original) };
      }
      const ephemeral = typeof data.flags === 'number' && (data.flags & MESSAGE_FLAG_EPHEMERAL) !== 0;
      const msg = this.newMessage({
        channelId: interaction.channelId,
        ...(interaction.guildId && { guildId: interaction.guildId }),
        type: 0,
        flags: ephemeral ? MESSAGE_FLAG_EPHEMERAL : 0,
        interaction,
      });
      this.applyWrite(msg, built.write);
      interaction.followupIds.push(msg.id);
      return { status: 200, json: this.messageJson(msg) };
    }

    const messageId = messageRef === '@original' ? interaction.originalMessageId : messageRef;
    const msg = messageId ? this.messages.get(messageId) : undefined;
    const owned = msg && (messageId === interaction.originalMessageId || interaction.followupIds.includes(msg.id));
    if (!msg || msg.deleted || !owned) return { status: 404, json: ERRORS.unknownMessage };
    if (method === 'GET') return { status: 200, json: this.messageJson(msg) };
    if (method === 'DELETE') {
      msg.deleted = true;
      return { status: 204 };
    }
    if (method === 'PATCH') {
      const err = validateBody('webhookMessageEdit', parsed.json);
      if (err) return { status: 400, json: err };
      const bucket = this.takeEditSlot(msg.id);
      if (bucket !== undefined) return bucket;
      const built = this.buildMessageWrite((parsed.json ?? {}) as Record<string, unknown>, parsed.files, limit, msg.attachments, 'webhook');
      if ('error' in built) return built.error;
      this.applyWrite(msg, built.write);
      return { status: 200, json: this.messageJson(msg) };
    }
    return { status: 405, json: { code: 0, message: '405: Method Not Allowed' } };
  }

  private channelRoute(method: string, channelId: string, messageId: string | undefined, parsed: ParsedBody): Answer {
    const guild = this.guilds.find((g) => g.channels.some((c) => c.id === channelId));
    const isDm = [...this.dmChannels.values()].includes(channelId);
    if (!guild && !isDm) return { status: 404, json: ERRORS.unknownChannel };
    const limit = guild?.uploadLimitBytes ?? this.uploadLimitBytes;
    if (messageId === undefined) {
      if (method !== 'POST') return { status: 405, json: { code: 0, message: '405: Method Not Allowed' } };
      const err = validateBody('channelMessageCreate', parsed.json);
      if (err) return { status: 400, json: err };
      const data = (parsed.json ?? {}) as Record<string, unknown>;
      if (typeof data.flags === 'number' && (data.flags & MESSAGE_FLAG_EPHEMERAL) !== 0) {
        return { status: 400, json: invalidFormBody([{ path: ['flags'], code: 'invalid_value', message: 'Channel messages cannot be ephemeral.' }]) };
      }
      const ref = data.message_reference as { message_id: string; channel_id?: string } | null | undefined;
      if (ref) {
        const target = this.messages.get(ref.message_id);
        if (!target || target.deleted || target.channelId !== channelId || (target.flags & MESSAGE_FLAG_EPHEMERAL) !== 0) {
          if ((data.message_reference as { fail_if_not_exists?: boolean }).fail_if_not_exists !== false) {
            return { status: 400, json: invalidFormBody([{ path: ['message_reference'], code: 'invalid_value', message: 'Unknown message' }]) };
          }
        }
      }
      const built = this.buildMessageWrite(data, parsed.files, limit, [], 'channel');
      if ('error' in built) return built.error;
      const msg = this.newMessage({ channelId, ...(guild && { guildId: guild.id }), type: ref ? 19 : 0, flags: 0 });
      if (ref && this.messages.has(ref.message_id)) msg.messageReference = { message_id: ref.message_id, channel_id: channelId, ...(guild && { guild_id: guild.id }) };
      this.applyWrite(msg, built.write);
      return { status: 200, json: this.messageJson(msg) };
    }
    const msg = this.messages.get(messageId);
    if (!msg || msg.deleted || msg.channelId !== channelId || (msg.flags & MESSAGE_FLAG_EPHEMERAL) !== 0) return { status: 404, json: ERRORS.unknownMessage };
    if (method === 'GET') {
      const json = this.messageJsonFor(msg, this.botIntents);
      const ref = msg.messageReference ? this.messages.get(msg.messageReference.message_id) : undefined;
      return { status: 200, json: { ...json, ...(msg.type === 19 && { referenced_message: ref && !ref.deleted ? this.messageJsonFor(ref, this.botIntents) : null }) } };
    }
    if (method === 'DELETE') {
      msg.deleted = true;
      return { status: 204 };
    }
    if (method === 'PATCH') {
      if (msg.authorId !== this.botUser.id) return { status: 403, json: ERRORS.cannotEditOthers };
      const err = validateBody('channelMessageEdit', parsed.json);
      if (err) return { status: 400, json: err };
      const built = this.buildMessageWrite((parsed.json ?? {}) as Record<string, unknown>, parsed.files, limit, msg.attachments, 'channel');
      if ('error' in built) return built.error;
      this.applyWrite(msg, built.write);
      return { status: 200, json: this.messageJson(msg) };
    }
    return { status: 405, json: { code: 0, message: '405: Method Not Allowed' } };
  }

  /**
   * PUT/DELETE /channels/{id}/messages/{id}/reactions/{emoji}/@me: 204 either way; the emoji is a
   * URL-encoded unicode emoji or `name:id` for a custom one (10014 Unknown Emoji otherwise)
   * (https://discord.com/developers/docs/resources/message#create-reaction).
   */
  private ownReaction(method: string, channelId: string, messageId: string, emoji: string): Answer {
    const msg = this.messages.get(messageId);
    if (!msg || msg.deleted || msg.channelId !== channelId || (msg.flags & MESSAGE_FLAG_EPHEMERAL) !== 0) return { status: 404, json: ERRORS.unknownMessage };
    // rec.path is already decoded: a custom emoji is name:id, anything else must be one pictograph sequence.
    if (!/^[\w-]{2,32}:\d+$/.test(emoji) && !/^\p{Extended_Pictographic}/u.test(emoji) && !/^[\u{1F1E6}-\u{1F1FF}0-9#*]/u.test(emoji)) {
      return { status: 400, json: ERRORS.unknownEmoji };
    }
    msg.reactions ??= new Map();
    const users = msg.reactions.get(emoji) ?? new Set<string>();
    if (method === 'PUT') users.add(this.botUser.id);
    else users.delete(this.botUser.id);
    if (users.size > 0) msg.reactions.set(emoji, users);
    else msg.reactions.delete(emoji);
    return { status: 204 };
  }

  private takeEditSlot(messageId: string): Answer | undefined {
    if (!this.messageEditBucket) return undefined;
    const { limit, windowMs } = this.messageEditBucket;
    const now = Date.now();
    const times = (this.editTimes.get(messageId) ?? []).filter((t) => now - t < windowMs);
    if (times.length >= limit) {
      const retryAfterS = Math.max(0.01, (windowMs - (now - times[0]!)) / 1000);
      const answer = rateLimited(retryAfterS, false);
      return { ...answer, bucket: true };
    }
    times.push(now);
    this.editTimes.set(messageId, times);
    return undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // Messages

  private newMessage(init: { channelId: string; guildId?: string; type: number; flags: number; interaction?: FakeInteraction }): FakeMessage {
    const i = init.interaction;
    const msg: FakeMessage = {
      id: snowflake(),
      channelId: init.channelId,
      ...(init.guildId && { guildId: init.guildId }),
      type: init.type,
      content: '',
      embeds: [],
      attachments: [],
      components: [],
      flags: init.flags,
      mentions: [],
      authorId: this.botUser.id,
      createdAt: Date.now(),
      edits: 0,
      deleted: false,
      history: [],
      ...(i && {
        interactionId: i.id,
        webhookId: this.applicationId,
        interactionMetadata: {
          id: i.id,
          type: i.type,
          user: (i.payload.member as { user: unknown } | undefined)?.user ?? i.payload.user,
          authorizing_integration_owners: i.payload.authorizing_integration_owners,
          ...(i.type === 2 && { name: (i.payload.data as { name: string }).name, command_type: 1 }),
          ...(i.type === 3 && i.sourceMessageId && { interacted_message_id: i.sourceMessageId }),
        },
      }),
    };
    // Answers to component clicks are replies to the message holding the component.
    if ((i?.type === 3 || i?.type === 5) && i.sourceMessageId) {
      msg.type = 19;
      msg.messageReference = { message_id: i.sourceMessageId, channel_id: i.channelId, ...(i.guildId && { guild_id: i.guildId }) };
    }
    this.messages.set(msg.id, msg);
    return msg;
  }

  /**
   * Checks a message body's content rules beyond the schema and resolves its attachments
   * (kept ones by id, new ones from files[n]). Returns an error answer or the write to apply.
   */
  private buildMessageWrite(
    data: Record<string, unknown>,
    files: UploadedPart[],
    uploadLimit: number,
    existing: FakeAttachment[],
    _kind: 'webhook' | 'channel',
  ): { write: MessageWrite } | { error: Answer } {
    const fileParts = files.filter((f) => /^files\[\d+\]$/.test(f.field) || f.field.startsWith('file'));
    if (fileParts.length > 10) return { error: { status: 400, json: ERRORS.tooManyAttachments } };
    for (const f of fileParts) {
      if (f.data.length > uploadLimit) return { error: { status: 413, json: ERRORS.entityTooLarge } };
    }
    const flags = typeof data.flags === 'number' ? data.flags : 0;
    if ('components' in data && Array.isArray(data.components)) {
      const problem = componentRules(data.components as Record<string, unknown>[], (flags & MESSAGE_FLAG_COMPONENTS_V2) !== 0);
      if (problem) return { error: { status: 400, json: problem } };
    }
    let attachments: FakeAttachment[] | undefined;
    if (Array.isArray(data.attachments) || fileParts.length > 0) {
      const list = Array.isArray(data.attachments)
        ? (data.attachments as { id: string; filename?: string | null }[])
        : fileParts.map((_, n) => ({ id: String(n), filename: null }));
      attachments = [];
      const byField = new Map(fileParts.map((f) => [f.field.replace(/^file(s\[)?/, '').replace(/\]$/, ''), f] as const));
      const usedParts = new Set<UploadedPart>();
      for (const a of list) {
        const kept = existing.find((e) => e.id === String(a.id));
        if (kept) {
          attachments.push(kept);
          continue;
        }
        const part = byField.get(String(a.id));
        if (!part) {
          return { error: { status: 400, json: invalidFormBody([{ path: ['attachments', list.indexOf(a), 'id'], code: 'invalid_value', message: `Unknown attachment or missing files[${a.id}].` }]) } };
        }
        usedParts.add(part);
        attachments.push(this.storeAttachment(part, a.filename ?? part.filename ?? `file${a.id}`));
      }
      // Files without an attachments entry are still uploaded (Discord appends them).
      for (const part of fileParts) if (!usedParts.has(part) && !Array.isArray(data.attachments)) attachments.push(this.storeAttachment(part, part.filename ?? 'file'));
      if (!Array.isArray(data.attachments) && existing.length) attachments = [...existing, ...attachments];
      if (attachments.length > 10) return { error: { status: 400, json: ERRORS.tooManyAttachments } };
    }
    const write: MessageWrite = {
      ...(typeof data.content === 'string' && { content: data.content }),
      ...(data.content === null && { content: '' }),
      ...(Array.isArray(data.embeds) && { embeds: data.embeds }),
      ...(Array.isArray(data.components) && { components: data.components as Record<string, unknown>[] }),
      ...(attachments && { attachments }),
      ...(data.allowed_mentions !== undefined && { allowedMentions: data.allowed_mentions as AllowedMentions }),
      ...(typeof data.flags === 'number' && { flags: data.flags }),
    };
    return { write };
  }

  private storeAttachment(part: UploadedPart, filename: string): FakeAttachment {
    const id = snowflake();
    const contentType = part.contentType && part.contentType !== 'application/octet-stream' ? part.contentType : guessType(part.data);
    const path = `attachments/${id}/${encodeURIComponent(filename)}`;
    const url = this.keepUploads ? this.putCdnFile(path, part.data, contentType ?? 'application/octet-stream') : `${this.cdnUrl}/${path}`;
    const dims = pngOrJpegOrWebpSize(part.data);
    return {
      id,
      filename,
      size: part.data.length,
      url,
      proxy_url: url,
      data: this.keepUploads ? part.data : Buffer.alloc(0),
      ...(contentType && { content_type: contentType }),
      ...(dims && { width: dims.width, height: dims.height }),
    };
  }

  private applyWrite(msg: FakeMessage, w: MessageWrite): void {
    if (w.content !== undefined) msg.content = w.content;
    if (w.embeds !== undefined) msg.embeds = w.embeds;
    if (w.attachments !== undefined) msg.attachments = w.attachments;
    if (w.components !== undefined) {
      let next = 1;
      const assign = (c: Record<string, unknown>): Record<string, unknown> => ({
        ...c,
        id: typeof c.id === 'number' ? c.id : next++,
        ...(Array.isArray(c.components) && { components: (c.components as Record<string, unknown>[]).map(assign) }),
      });
      msg.components = w.components.map(assign);
    }
    // The loading state ends with the first edit; the ephemeral flag never changes.
    msg.flags = (msg.flags & MESSAGE_FLAG_EPHEMERAL) | ((w.flags ?? 0) & ~MESSAGE_FLAG_EPHEMERAL & ~MESSAGE_FLAG_LOADING);
    msg.mentions = mentionsOf(msg.content, w.allowedMentions);
    if (msg.history.length > 0) {
      msg.edits += 1;
      msg.editedAt = Date.now();
    }
    msg.history.push({
      at: Date.now(),
      content: msg.content,
      attachments: msg.attachments.map((a) => ({ filename: a.filename, size: a.size })),
      components: msg.components.length,
      flags: msg.flags,
    });
    this.emit('message', msg);
  }

  /** The message as Discord's API returns it. */
  messageJson(msg: FakeMessage): Record<string, unknown> {
    return {
      id: msg.id,
      type: msg.type,
      channel_id: msg.channelId,
      content: msg.content,
      author: msg.author
        ? { id: msg.author.id, username: msg.author.username, discriminator: '0', avatar: null, global_name: msg.author.global_name ?? null, public_flags: 0, flags: 0 }
        : { id: this.botUser.id, username: this.botUser.username, discriminator: '0000', avatar: null, bot: true, global_name: null, public_flags: 0, flags: 0 },
      attachments: msg.attachments.map((a) => ({
        id: a.id,
        filename: a.filename,
        size: a.size,
        url: a.url,
        proxy_url: a.proxy_url,
        ...(a.content_type && { content_type: a.content_type }),
        ...(a.width !== undefined && { width: a.width, height: a.height }),
      })),
      embeds: msg.embeds,
      mentions: msg.mentions.map((id) =>
        id === this.botUser.id
          ? { id, username: this.botUser.username, discriminator: '0000', avatar: null, bot: true, global_name: null, public_flags: 0 }
          : { id, username: `user${id.slice(-4)}`, discriminator: '0', avatar: null, global_name: null, public_flags: 0 },
      ),
      mention_roles: [],
      mention_everyone: false,
      pinned: false,
      tts: false,
      timestamp: new Date(msg.createdAt).toISOString(),
      edited_timestamp: msg.editedAt ? new Date(msg.editedAt).toISOString() : null,
      flags: msg.flags,
      components: msg.components,
      ...(msg.webhookId && { webhook_id: msg.webhookId, application_id: this.applicationId }),
      ...(msg.interactionMetadata && { interaction_metadata: msg.interactionMetadata }),
      ...(msg.messageReference && { message_reference: { type: 0, ...msg.messageReference } }),
    };
  }

  private guildPayload(g: FakeGuild): Record<string, unknown> {
    return {
      id: g.id,
      name: g.name,
      icon: null,
      splash: null,
      discovery_splash: null,
      owner_id: g.ownerId ?? '1',
      afk_channel_id: null,
      afk_timeout: 300,
      verification_level: 0,
      default_message_notifications: 0,
      explicit_content_filter: 0,
      roles: this.roles(g.id).map(roleJson),
      emojis: [],
      stickers: [],
      features: [],
      mfa_level: 0,
      application_id: null,
      system_channel_id: null,
      system_channel_flags: 0,
      rules_channel_id: null,
      vanity_url_code: null,
      description: null,
      banner: null,
      premium_tier: 0,
      premium_subscription_count: 0,
      preferred_locale: 'en-US',
      public_updates_channel_id: null,
      nsfw_level: 0,
      premium_progress_bar_enabled: false,
      joined_at: new Date().toISOString(),
      large: false,
      unavailable: false,
      member_count: 3,
      members: [],
      presences: [],
      voice_states: [],
      threads: g.channels.flatMap((c, i) => (THREAD_TYPES.has(c.type ?? 0) ? [channelJson(g, c, i)] : [])),
      stage_instances: [],
      guild_scheduled_events: [],
      soundboard_sounds: [],
      channels: g.channels.flatMap((c, i) => (THREAD_TYPES.has(c.type ?? 0) ? [] : [channelJson(g, c, i)])),
    };
  }
}

/** A role as Discord's API returns it (https://discord.com/developers/docs/topics/permissions#role-object). */
function roleJson(r: FakeRole): Record<string, unknown> {
  return {
    id: r.id,
    name: r.name,
    color: 0,
    colors: { primary_color: 0, secondary_color: null, tertiary_color: null },
    hoist: false,
    icon: null,
    unicode_emoji: null,
    position: r.position,
    permissions: r.permissions.toString(),
    managed: false,
    mentionable: false,
    flags: 0,
  };
}

/** A guild channel or thread as Discord's API returns it (https://discord.com/developers/docs/resources/channel#channel-object). */
function channelJson(g: FakeGuild, c: FakeChannel, position: number): Record<string, unknown> {
  const type = c.type ?? 0;
  if (THREAD_TYPES.has(type)) {
    return {
      id: c.id,
      type,
      guild_id: g.id,
      name: c.name,
      parent_id: c.parentId ?? null,
      owner_id: '1',
      last_message_id: null,
      rate_limit_per_user: 0,
      message_count: 0,
      member_count: 1,
      total_message_sent: 0,
      flags: 0,
      thread_metadata: { archived: false, auto_archive_duration: 1440, archive_timestamp: new Date().toISOString(), locked: false, ...(type === 12 && { invitable: true }) },
    };
  }
  return {
    id: c.id,
    type,
    guild_id: g.id,
    name: c.name,
    position,
    permission_overwrites: [],
    parent_id: c.parentId ?? null,
    nsfw: false,
    flags: 0,
    ...(type !== 4 && { last_message_id: null, rate_limit_per_user: 0 }),
    ...((type === 0 || type === 5 || type === 15) && { topic: null }),
    ...(type === 2 && { bitrate: 64_000, user_limit: 0, rtc_region: null }),
    ...(type === 15 && { available_tags: [], default_reaction_emoji: null, default_sort_order: null, default_forum_layout: 0 }),
  };
}

interface Answer {
  status: number;
  json?: unknown;
  headers?: Record<string, string>;
  bucket?: boolean;
}

interface AllowedMentions {
  parse?: string[] | null;
  users?: string[] | null;
}

interface MessageWrite {
  content?: string;
  embeds?: unknown[];
  components?: Record<string, unknown>[];
  attachments?: FakeAttachment[];
  allowedMentions?: AllowedMentions;
  flags?: number;
}

type ParsedBody = { json: unknown; files: UploadedPart[] };

function parseBody(contentType: string, raw: Buffer): ParsedBody | { error: DiscordErrorBody } {
  if (raw.length === 0) return { json: undefined, files: [] };
  if (contentType.startsWith('multipart/form-data')) {
    const boundary = boundaryOf(contentType);
    if (!boundary) return { error: { code: 50035, message: 'Invalid Form Body' } };
    const parts = parseMultipart(raw, boundary);
    const payload = parts.find((p) => p.field === 'payload_json');
    let json: unknown;
    try {
      json = payload ? JSON.parse(payload.data.toString('utf8')) : {};
    } catch {
      return { error: { code: 50109, message: 'The request body contains invalid JSON.' } };
    }
    return { json, files: parts.filter((p) => p !== payload) };
  }
  try {
    return { json: JSON.parse(raw.toString('utf8')), files: [] };
  } catch {
    return { error: { code: 50109, message: 'The request body contains invalid JSON.' } };
  }
}

function rateLimited(retryAfterS: number, global: boolean): Answer {
  return {
    status: 429,
    json: { message: 'You are being rate limited.', retry_after: retryAfterS, global, code: global ? 0 : undefined },
    headers: {
      'retry-after': String(retryAfterS),
      'x-ratelimit-limit': '5',
      'x-ratelimit-remaining': '0',
      'x-ratelimit-reset': String(Date.now() / 1000 + retryAfterS),
      'x-ratelimit-reset-after': String(retryAfterS),
      'x-ratelimit-bucket': 'fakebucket',
      'x-ratelimit-scope': global ? 'global' : 'user',
      ...(global && { 'x-ratelimit-global': 'true' }),
    },
  };
}

/** Classic-message component rules the schema cannot express (docs/discord.md "Commands and components"). */
function componentRules(components: Record<string, unknown>[], v2: boolean): DiscordErrorBody | undefined {
  if (v2) return undefined;
  const issues: { path: (string | number)[]; code: string; message: string }[] = [];
  if (components.length > 5) issues.push({ path: ['components'], code: 'too_big', message: 'Must be 5 or fewer in length.' });
  const ids = new Set<string>();
  components.forEach((row, r) => {
    if (row.type !== 1) {
      issues.push({ path: ['components', r, 'type'], code: 'invalid_value', message: 'Top-level components must be action rows without the IS_COMPONENTS_V2 flag.' });
      return;
    }
    const children = (row.components ?? []) as Record<string, unknown>[];
    const selects = children.filter((c) => c.type !== 2);
    if (selects.length > 0 && children.length > 1) {
      issues.push({ path: ['components', r, 'components'], code: 'too_big', message: 'An action row with a select menu can hold nothing else.' });
    }
    if (children.filter((c) => c.type === 2).length > 5) issues.push({ path: ['components', r, 'components'], code: 'too_big', message: 'Must be 5 or fewer in length.' });
    children.forEach((c, i) => {
      const customId = c.custom_id;
      if (c.type === 2) {
        if (c.style === 5) {
          if (!c.url || customId) issues.push({ path: ['components', r, 'components', i], code: 'invalid_value', message: 'Link buttons need a url and no custom_id.' });
        } else if (c.style !== 6 && (typeof customId !== 'string' || !customId)) {
          issues.push({ path: ['components', r, 'components', i, 'custom_id'], code: 'too_small', message: 'A custom id is required.' });
        }
        if (!c.label && !c.emoji) issues.push({ path: ['components', r, 'components', i], code: 'invalid_value', message: 'A button needs a label or an emoji.' });
      }
      if (c.type === 3) {
        const values = ((c.options ?? []) as { value: string }[]).map((o) => o.value);
        if (new Set(values).size !== values.length) issues.push({ path: ['components', r, 'components', i, 'options'], code: 'invalid_value', message: 'Option values must be unique.' });
      }
      if (typeof customId === 'string') {
        if (ids.has(customId)) issues.push({ path: ['components', r, 'components', i, 'custom_id'], code: 'invalid_value', message: 'Component custom id cannot be duplicated.' });
        ids.add(customId);
      }
    });
  });
  return issues.length ? invalidFormBody(issues) : undefined;
}

/** Command rules beyond the schema: required options first, names lowercase, ≤ 25 options/choices. */
function commandRules(commands: Record<string, unknown>[]): DiscordErrorBody | undefined {
  const issues: { path: (string | number)[]; code: string; message: string }[] = [];
  commands.forEach((c, i) => {
    if (!/^[-_\p{L}\p{N}]{1,32}$/u.test(String(c.name)) || String(c.name) !== String(c.name).toLowerCase()) {
      issues.push({ path: [i, 'name'], code: 'invalid_format', message: 'Command name is invalid.' });
    }
    if ((c.type ?? 1) === 1 && !c.description) issues.push({ path: [i, 'description'], code: 'too_small', message: 'Must be between 1 and 100 in length.' });
    const options = (c.options ?? []) as Record<string, unknown>[];
    if (options.length > 25) issues.push({ path: [i, 'options'], code: 'too_big', message: 'Must be 25 or fewer in length.' });
    let seenOptional = false;
    options.forEach((o, j) => {
      if (!o.required) seenOptional = true;
      else if (seenOptional) issues.push({ path: [i, 'options', j, 'required'], code: 'invalid_value', message: 'Required options must be placed before non-required options.' });
      if (!/^[-_\p{L}\p{N}]{1,32}$/u.test(String(o.name)) || String(o.name) !== String(o.name).toLowerCase()) {
        issues.push({ path: [i, 'options', j, 'name'], code: 'invalid_format', message: 'Option name is invalid.' });
      }
      if (Array.isArray(o.choices) && o.choices.length > 25) issues.push({ path: [i, 'options', j, 'choices'], code: 'too_big', message: 'Must be 25 or fewer in length.' });
    });
  });
  return issues.length ? invalidFormBody(issues) : undefined;
}

function findComponent(rows: Record<string, unknown>[], customId: string): Record<string, unknown> | undefined {
  for (const row of rows) {
    for (const c of (row.components ?? []) as Record<string, unknown>[]) if (c.custom_id === customId) return c;
  }
  return undefined;
}

function mentionsOf(content: string, allowed: AllowedMentions | undefined): string[] {
  const ids = [...content.matchAll(/<@!?(\d+)>/g)].map((m) => m[1]!);
  const permitted = (id: string) => !allowed || (allowed.parse ?? []).includes('users') || (allowed.users ?? []).includes(id);
  return [...new Set(ids.filter(permitted))];
}

async function readAll(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function guessType(data: Buffer): string | undefined {
  if (data.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  if (data[0] === 0xff && data[1] === 0xd8) return 'image/jpeg';
  if (data.subarray(0, 4).toString('latin1') === 'RIFF' && data.subarray(8, 12).toString('latin1') === 'WEBP') return 'image/webp';
  return undefined;
}

/** Dimensions from the header bytes (PNG IHDR, WEBP VP8/VP8L/VP8X, JPEG SOF), without decoding. */
export function pngOrJpegOrWebpSize(data: Buffer): { width: number; height: number } | undefined {
  const type = guessType(data);
  if (type === 'image/png' && data.length >= 24) return { width: data.readUInt32BE(16), height: data.readUInt32BE(20) };
  if (type === 'image/webp' && data.length >= 30) {
    const chunk = data.subarray(12, 16).toString('latin1');
    if (chunk === 'VP8X') return { width: 1 + data.readUIntLE(24, 3), height: 1 + data.readUIntLE(27, 3) };
    if (chunk === 'VP8L') {
      const b = data.readUInt32LE(21);
      return { width: (b & 0x3fff) + 1, height: ((b >> 14) & 0x3fff) + 1 };
    }
    if (chunk === 'VP8 ') return { width: data.readUInt16LE(26) & 0x3fff, height: data.readUInt16LE(28) & 0x3fff };
  }
  if (type === 'image/jpeg') {
    let i = 2;
    while (i + 9 < data.length) {
      if (data[i] !== 0xff) return undefined;
      const marker = data[i + 1]!;
      const len = data.readUInt16BE(i + 2);
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        return { height: data.readUInt16BE(i + 5), width: data.readUInt16BE(i + 7) };
      }
      i += 2 + len;
    }
  }
  return undefined;
}

async function imageMeta(data: Buffer): Promise<{ width: number; height: number } | undefined> {
  const fast = pngOrJpegOrWebpSize(data);
  if (fast) return fast;
  try {
    const m = await sharp(data).metadata();
    return m.width && m.height ? { width: m.width, height: m.height } : undefined;
  } catch {
    return undefined;
  }
}

export async function startFakeDiscord(opts: FakeDiscordOptions = {}): Promise<FakeDiscord> {
  return new FakeDiscord(opts).listen();
}
