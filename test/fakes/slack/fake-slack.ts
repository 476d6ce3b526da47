/**
 * A fake Slack Web API on 127.0.0.1, written from Slack's method reference (summarised in
 * docs/slack.md). It answers the way Slack does (HTTP 200 with `{ok:false, error}`,
 * 429 with Retry-After), validates what the bot sends (required arguments, Block Kit limits,
 * ephemeral messages that cannot be updated, 3 s trigger_ids, the external upload flow) and
 * records every call so tests assert on what a Slack user would see.
 *
 * Methods: auth.test, chat.postMessage/update/postEphemeral/delete, views.open/update,
 * files.getUploadURLExternal (+ the upload URL), files.completeUploadExternal, files.info,
 * files.delete, users.info, usergroups.list, usergroups.users.list, conversations.info,
 * conversations.replies. Also: url_private downloads (bot token required, 403 otherwise) and response_url.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { WebSocketServer, type WebSocket } from 'ws';
import { validateBlocks, validateView } from './block-kit.ts';

type Json = Record<string, unknown>;

export const FAKE_BOT_TOKEN = 'xoxb-fake-1111-2222-bottoken';
export const FAKE_TEAM_ID = 'T0FAKE001';
export const FAKE_BOT_USER_ID = 'U0FAKEBOT';
export const FAKE_BOT_ID = 'B0FAKEBOT';
export const FAKE_APP_ID = 'A0FAKEAPP';
export const FAKE_APP_TOKEN = 'xapp-1-A0FAKEAPP-1111-apptoken';
/** Slack's limit for chat.postMessage text. */
const MAX_MESSAGE_TEXT_CHARS = 40_000;
/** response_url: 5 uses within 30 minutes. */
const RESPONSE_URL_MAX_USES = 5;
const RESPONSE_URL_TTL_MS = 30 * 60_000;
/** Parameters Slack sends as JSON strings in form bodies. */
const JSON_ARGS = new Set(['blocks', 'attachments', 'view', 'files', 'metadata']);

export interface FakeFile {
  id: string;
  name: string;
  title: string;
  mimetype: string;
  filetype: string;
  size: number;
  bytes: Buffer;
  url_private: string;
  url_private_download: string;
  /** Who uploaded it (the bot for results, a user for references). */
  user: string;
  /** Channels where it was shared (completeUploadExternal with channel_id). */
  channels: string[];
  deleted: boolean;
}

export interface FakeMessage {
  channel: string;
  ts: string;
  threadTs?: string;
  /** The author: the bot user id, or a human user id for seeded messages. */
  user: string;
  byBot: boolean;
  text: string;
  blocks?: unknown[];
  files: FakeFile[];
  deleted: boolean;
  /** Every version of the message, oldest first (postMessage, then each chat.update). */
  versions: Array<{ text: string; blocks?: unknown[]; at: number }>;
}

export interface FakeEphemeral {
  channel: string;
  user: string;
  ts: string;
  text: string;
  blocks?: unknown[];
  threadTs?: string;
  at: number;
}

export interface ApiCall {
  method: string;
  args: Json;
  /** What the fake answered (status 200 bodies and 429s). */
  status: number;
  response: Json;
  at: number;
  contentType: string;
  /** The caller's User-Agent header (the WebClient sends `@slack:web-api/<version> …`). */
  userAgent: string | undefined;
}

export interface FakeView {
  id: string;
  view: Json;
  hash: string;
  triggerId: string;
  openedAt: number;
  /** Version history (views.update). */
  versions: Json[];
}

export interface ResponseUrlPost {
  id: string;
  body: Json;
  at: number;
}

export interface Upload {
  fileId: string;
  filename: string;
  declaredLength: number;
  bytes: Buffer;
  /** Headers the uploader sent (asserts the bot token went along). */
  authorization: string | undefined;
}

/** A workspace member as users.info describes one (https://api.slack.com/methods/users.info). */
export interface SlackUserInfo {
  id: string;
  name: string;
  real_name?: string;
  is_admin?: boolean;
  is_owner?: boolean;
  is_primary_owner?: boolean;
  /** Guests: multi-channel (is_restricted) or single-channel (also is_ultra_restricted). */
  is_restricted?: boolean;
  is_ultra_restricted?: boolean;
  is_bot?: boolean;
  deleted?: boolean;
  /** IANA time zone, e.g. 'Europe/Paris'. Default 'America/Los_Angeles'. */
  tz?: string;
}

/** A user group (https://api.slack.com/methods/usergroups.list). */
export interface SlackUsergroup {
  id: string;
  handle: string;
  name: string;
  users: string[];
  /** Disabled groups are listed only with include_disabled. */
  disabled?: boolean;
}

/** A conversation as conversations.info describes it (https://api.slack.com/methods/conversations.info). */
export interface SlackChannelInfo {
  id: string;
  name: string;
  is_private?: boolean;
}

type Fault = ({ kind: 'ratelimit'; retryAfterSec: number } | { kind: 'error'; error: string }) & { match?: (args: Json) => boolean };

export interface FakeSlackOptions {
  botToken?: string;
  /** The app-level token Socket Mode's apps.connections.open accepts. */
  appToken?: string;
  /** trigger_id lifetime; Slack's is 3 s. */
  triggerTtlMs?: number;
  /**
   * Channels the bot is not a member of: posting answers not_in_channel. Public ones (C…) can be
   * joined with conversations.join; private ones (G…, or listed in `privateChannels`) and DMs cannot.
   */
  notInChannel?: string[];
  /** Private channels with today's C… ids (Slack gives new private channels C ids too). */
  privateChannels?: string[];
  now?: () => number;
  /** Workspace members for users.info (the bot user is always there). */
  users?: SlackUserInfo[];
  /**
   * users.info for a well-formed user id that was not seeded: 'member' (default) answers an
   * ordinary member named after the id (whoever runs a command is in the workspace);
   * 'not_found' answers user_not_found, as for an id that is not a member.
   */
  unseededUsers?: 'member' | 'not_found';
  usergroups?: SlackUsergroup[];
  /** Named channels for conversations.info; channels the bot posted in are known too (named after their id). */
  channels?: SlackChannelInfo[];
  /**
   * The bot token's scopes. When set, users.info, usergroups.*, conversations.info and
   * conversations.replies answer `missing_scope` (with `needed` and `provided`) without theirs, as
   * Slack does; unset, every scope is granted.
   */
  scopes?: string[];
}

export interface FakeSlack {
  /** http://127.0.0.1:port */
  readonly url: string;
  /** http://127.0.0.1:port/api/ (what SLACK_API_URL should be). */
  readonly apiUrl: string;
  readonly botToken: string;
  readonly teamId: string;
  readonly botUserId: string;
  readonly calls: ApiCall[];
  readonly messages: FakeMessage[];
  readonly ephemerals: FakeEphemeral[];
  readonly views: Map<string, FakeView>;
  readonly uploads: Upload[];
  readonly files: Map<string, FakeFile>;
  readonly responseUrlPosts: ResponseUrlPost[];
  /** Unauthenticated or wrong-token url_private fetches that were refused. */
  readonly refusedDownloads: string[];
  /**
   * Socket Mode: sends an envelope (`slash_commands`, `interactive`) to the connected app and
   * resolves with its acknowledgement and how long it took. Rejects when no app is connected.
   */
  socketSend(type: string, payload: Json, timeoutMs?: number): Promise<{ ackMs: number; payload: unknown }>;
  /** Resolves once an app has completed the Socket Mode handshake. */
  socketConnected(timeoutMs?: number): Promise<void>;
  /** Socket Mode: sends `text` as it is (a malformed message), expecting no ack. */
  socketSendRaw(text: string): void;
  callsTo(method: string): ApiCall[];
  /** The live (not deleted) message at channel/ts. */
  message(channel: string, ts: string): FakeMessage | undefined;
  /** Messages in a channel, optionally in one thread (threadTs) or top-level only (null). */
  messagesIn(channel: string, threadTs?: string | null): FakeMessage[];
  /** A new trigger_id, valid for triggerTtlMs from now (what Slack puts in each interaction). */
  issueTriggerId(): string;
  /** Changes how long new and existing trigger_ids stay valid (Slack: 3 s). */
  setTriggerTtlMs(ms: number): void;
  /** A new response_url on this fake. */
  newResponseUrl(): string;
  /** Adds a user's file (a reference image) reachable only with the bot token. */
  addUserFile(opts: { name: string; mimetype: string; bytes: Buffer; user: string }): FakeFile;
  /** Adds or replaces a workspace member (users.info). */
  addUser(user: SlackUserInfo): void;
  /** Adds or replaces a user group (usergroups.list / usergroups.users.list). */
  addUsergroup(group: SlackUsergroup): void;
  /** Adds or replaces a named channel (conversations.info). */
  addChannel(channel: SlackChannelInfo): void;
  /** Seeds a message written by a user (e.g. one carrying images, for the message shortcut, or a reply in a thread with `threadTs`). */
  seedMessage(opts: { channel: string; user: string; text: string; files?: FakeFile[]; threadTs?: string }): FakeMessage;
  /** The next `count` calls to `method` (matching `match`, when given) answer 429 with Retry-After. */
  injectRateLimit(method: string, count: number, retryAfterSec: number, match?: (args: Json) => boolean): void;
  /** The next `count` calls to `method` (matching `match`, when given) answer {ok:false, error}. */
  injectError(method: string, error: string, count?: number, match?: (args: Json) => boolean): void;
  /** Resolves once `predicate` holds (checked every 10 ms); rejects after timeoutMs. */
  waitFor<T>(predicate: () => T | undefined | false | null, timeoutMs?: number, what?: string): Promise<T>;
  /** The Slack file object as Slack embeds it in payloads (message.files, file_input state). */
  fileObject(file: FakeFile): Json;
  close(): Promise<void>;
}

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

async function readAll(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function parseArgs(raw: Buffer, contentType: string): Json {
  const text = raw.toString('utf8');
  if (contentType.startsWith('application/json')) {
    const parsed: unknown = text ? JSON.parse(text) : {};
    return isObj(parsed) ? parsed : {};
  }
  const out: Json = {};
  for (const [k, v] of new URLSearchParams(text)) {
    if (JSON_ARGS.has(k)) {
      try {
        out[k] = JSON.parse(v);
      } catch {
        out[k] = v;
      }
    } else out[k] = v;
  }
  return out;
}

function extOf(name: string): string {
  const m = /\.([a-z0-9]+)$/i.exec(name);
  return m ? m[1]!.toLowerCase() : 'binary';
}

export async function startFakeSlack(opts: FakeSlackOptions = {}): Promise<FakeSlack> {
  const botToken = opts.botToken ?? FAKE_BOT_TOKEN;
  const appToken = opts.appToken ?? FAKE_APP_TOKEN;
  let triggerTtlMs = opts.triggerTtlMs ?? 3000;
  const now = opts.now ?? Date.now;
  const notInChannel = new Set(opts.notInChannel ?? []);
  const privateChannels = new Set(opts.privateChannels ?? []);

  const calls: ApiCall[] = [];
  const messages: FakeMessage[] = [];
  const ephemerals: FakeEphemeral[] = [];
  const views = new Map<string, FakeView>();
  const uploads: Upload[] = [];
  const files = new Map<string, FakeFile>();
  const pendingUploads = new Map<string, { filename: string; length: number; bytes?: Buffer; completed: boolean }>();
  const triggers = new Map<string, { issuedAt: number; used: boolean }>();
  const responseUrls = new Map<string, { createdAt: number; uses: number }>();
  const responseUrlPosts: ResponseUrlPost[] = [];
  const refusedDownloads: string[] = [];
  const faults = new Map<string, Fault[]>();
  const users = new Map<string, SlackUserInfo>([[FAKE_BOT_USER_ID, { id: FAKE_BOT_USER_ID, name: 'imagine', is_bot: true }]]);
  for (const u of opts.users ?? []) users.set(u.id, u);
  const usergroups = new Map<string, SlackUsergroup>((opts.usergroups ?? []).map((g) => [g.id, g]));
  const channelInfos = new Map<string, SlackChannelInfo>((opts.channels ?? []).map((c) => [c.id, c]));
  const scopes = opts.scopes ? new Set(opts.scopes) : undefined;
  let seq = 0;
  let baseUrl = '';

  const nextTs = () => {
    seq += 1;
    return `${Math.floor(now() / 1000)}.${String(seq).padStart(6, '0')}`;
  };
  const nextId = (prefix: string) => `${prefix}${randomBytes(5).toString('hex').toUpperCase()}`;
  const findMessage = (channel: string, ts: string) => messages.find((m) => m.channel === channel && m.ts === ts);

  const fileObject = (f: FakeFile): Json => ({
    id: f.id,
    created: Math.floor(now() / 1000),
    name: f.name,
    title: f.title,
    mimetype: f.mimetype,
    filetype: f.filetype,
    pretty_type: f.filetype.toUpperCase(),
    user: f.user,
    size: f.size,
    mode: 'hosted',
    is_external: false,
    is_public: f.channels.length > 0,
    public_url_shared: false,
    url_private: f.url_private,
    url_private_download: f.url_private_download,
    permalink: `${baseUrl}/files/${f.user}/${f.id}/${encodeURIComponent(f.name)}`,
    channels: f.channels,
  });

  const makeFile = (name: string, mimetype: string, bytes: Buffer, user: string, id = nextId('F')): FakeFile => {
    const file: FakeFile = {
      id,
      name,
      title: name,
      mimetype,
      filetype: extOf(name),
      size: bytes.length,
      bytes,
      url_private: `${baseUrl}/files-pri/${FAKE_TEAM_ID}-${id}/${encodeURIComponent(name)}`,
      url_private_download: `${baseUrl}/files-pri/${FAKE_TEAM_ID}-${id}/download/${encodeURIComponent(name)}`,
      user,
      channels: [],
      deleted: false,
    };
    files.set(id, file);
    return file;
  };

  const messageJson = (m: FakeMessage): Json => ({
    type: 'message',
    ts: m.ts,
    user: m.user,
    ...(m.byBot ? { bot_id: FAKE_BOT_ID, app_id: FAKE_APP_ID } : {}),
    text: m.text,
    ...(m.blocks ? { blocks: m.blocks } : {}),
    ...(m.threadTs ? { thread_ts: m.threadTs } : {}),
    ...(m.files.length ? { files: m.files.map(fileObject) } : {}),
  });

  type Handler = (args: Json) => Json;
  const fail = (error: string, extra: Json = {}): Json => ({ ok: false, error, ...extra });

  const blocksProblem = (args: Json): Json | undefined => {
    if (args.blocks === undefined) return undefined;
    const problems = validateBlocks(args.blocks, 'message');
    return problems.length ? fail('invalid_blocks', { errors: problems, response_metadata: { messages: problems } }) : undefined;
  };
  const hasContent = (args: Json) =>
    (typeof args.text === 'string' && args.text.length > 0) ||
    (Array.isArray(args.blocks) && args.blocks.length > 0) ||
    (Array.isArray(args.attachments) && args.attachments.length > 0);

  const methods: Record<string, Handler> = {
    'auth.test': () => ({
      ok: true,
      url: `${baseUrl}/`,
      team: 'Fake Team',
      user: 'imagine',
      team_id: FAKE_TEAM_ID,
      user_id: FAKE_BOT_USER_ID,
      bot_id: FAKE_BOT_ID,
      is_enterprise_install: false,
    }),

    'chat.postMessage': (args) => {
      // A user id as the channel means the app's direct messages with that user.
      const channel = typeof args.channel === 'string' && /^[UW]/.test(args.channel) ? `D${args.channel}` : args.channel;
      if (typeof channel !== 'string' || !channel) return fail('channel_not_found');
      if (notInChannel.has(channel)) return fail('not_in_channel');
      if (!hasContent(args)) return fail('no_text');
      if (typeof args.text === 'string' && args.text.length > MAX_MESSAGE_TEXT_CHARS) return fail('msg_too_long');
      const bad = blocksProblem(args);
      if (bad) return bad;
      const threadTs = typeof args.thread_ts === 'string' && args.thread_ts ? args.thread_ts : undefined;
      if (threadTs && !findMessage(channel, threadTs)) return fail('thread_not_found');
      const ts = nextTs();
      const text = typeof args.text === 'string' ? args.text : '';
      const blocks = Array.isArray(args.blocks) ? args.blocks : undefined;
      const m: FakeMessage = {
        channel,
        ts,
        ...(threadTs ? { threadTs } : {}),
        user: FAKE_BOT_USER_ID,
        byBot: true,
        text,
        ...(blocks ? { blocks } : {}),
        files: [],
        deleted: false,
        versions: [{ text, ...(blocks ? { blocks } : {}), at: now() }],
      };
      messages.push(m);
      return { ok: true, channel, ts, message: messageJson(m) };
    },

    'chat.update': (args) => {
      const { channel, ts } = args;
      if (typeof channel !== 'string' || !channel) return fail('channel_not_found');
      if (typeof ts !== 'string' || !ts) return fail('message_not_found');
      if (ephemerals.some((e) => e.ts === ts)) return fail('message_not_found');
      const m = findMessage(channel, ts);
      if (!m || m.deleted) return fail('message_not_found');
      if (!m.byBot) return fail('cant_update_message');
      if (!hasContent(args) && args.file_ids === undefined) return fail('no_text');
      if (typeof args.text === 'string' && args.text.length > MAX_MESSAGE_TEXT_CHARS) return fail('msg_too_long');
      const bad = blocksProblem(args);
      if (bad) return bad;
      if (typeof args.text === 'string') m.text = args.text;
      if (Array.isArray(args.blocks)) m.blocks = args.blocks;
      m.versions.push({ text: m.text, ...(m.blocks ? { blocks: m.blocks } : {}), at: now() });
      return { ok: true, channel, ts, text: m.text, message: messageJson(m) };
    },

    'chat.postEphemeral': (args) => {
      const { channel, user } = args;
      if (typeof channel !== 'string' || !channel) return fail('channel_not_found');
      if (typeof user !== 'string' || !user) return fail('user_not_found');
      if (notInChannel.has(channel)) return fail('not_in_channel');
      if (!hasContent(args)) return fail('no_text');
      const bad = blocksProblem(args);
      if (bad) return bad;
      const ts = nextTs();
      ephemerals.push({
        channel,
        user,
        ts,
        text: typeof args.text === 'string' ? args.text : '',
        ...(Array.isArray(args.blocks) ? { blocks: args.blocks } : {}),
        ...(typeof args.thread_ts === 'string' ? { threadTs: args.thread_ts } : {}),
        at: now(),
      });
      return { ok: true, message_ts: ts };
    },

    'chat.delete': (args) => {
      const { channel, ts } = args;
      if (typeof channel !== 'string' || !channel) return fail('channel_not_found');
      if (typeof ts !== 'string') return fail('message_not_found');
      const m = findMessage(channel, ts);
      if (!m || m.deleted) return fail('message_not_found');
      if (!m.byBot) return fail('cant_delete_message');
      m.deleted = true;
      return { ok: true, channel, ts };
    },

    'views.open': (args) => {
      const triggerId = args.trigger_id;
      if (typeof triggerId !== 'string' || !triggerId) return fail('invalid_arguments', { response_metadata: { messages: ['[ERROR] missing required field: trigger_id'] } });
      const trig = triggers.get(triggerId);
      if (!trig) return fail('invalid_trigger_id');
      if (trig.used) return fail('exchanged_trigger_id');
      if (now() - trig.issuedAt > triggerTtlMs) return fail('expired_trigger_id');
      const problems = validateView(args.view);
      if (problems.length) return fail('invalid_arguments', { response_metadata: { messages: problems } });
      trig.used = true;
      const id = nextId('V');
      const view = args.view as Json;
      const hash = `${Math.floor(now() / 1000)}.${randomBytes(4).toString('hex')}`;
      const stored = { ...view, id, hash, team_id: FAKE_TEAM_ID, app_id: FAKE_APP_ID, bot_id: FAKE_BOT_ID, state: { values: {} }, private_metadata: view.private_metadata ?? '', callback_id: view.callback_id ?? '' };
      views.set(id, { id, view: stored, hash, triggerId, openedAt: now(), versions: [stored] });
      return { ok: true, view: stored };
    },

    'views.update': (args) => {
      const id = args.view_id;
      const v = typeof id === 'string' ? views.get(id) : undefined;
      if (!v) return fail('not_found');
      if (typeof args.hash === 'string' && args.hash !== v.hash) return fail('hash_conflict');
      const problems = validateView(args.view);
      if (problems.length) return fail('invalid_arguments', { response_metadata: { messages: problems } });
      v.hash = `${Math.floor(now() / 1000)}.${randomBytes(4).toString('hex')}`;
      v.view = { ...(args.view as Json), id: v.id, hash: v.hash, state: { values: {} } };
      v.versions.push(v.view);
      return { ok: true, view: v.view };
    },

    'files.getUploadURLExternal': (args) => {
      const filename = args.filename;
      const length = Number(args.length);
      if (typeof filename !== 'string' || !filename) return fail('invalid_arguments', { response_metadata: { messages: ['[ERROR] missing required field: filename'] } });
      if (!Number.isInteger(length) || length <= 0) return fail('invalid_arguments', { response_metadata: { messages: ['[ERROR] length must be a positive integer'] } });
      const fileId = nextId('F');
      pendingUploads.set(fileId, { filename, length, completed: false });
      return { ok: true, upload_url: `${baseUrl}/upload/v1/${fileId}`, file_id: fileId };
    },

    'files.completeUploadExternal': (args) => {
      const list = args.files;
      if (!Array.isArray(list) || list.length === 0) return fail('invalid_arguments', { response_metadata: { messages: ['[ERROR] missing required field: files'] } });
      const channel = typeof args.channel_id === 'string' && args.channel_id ? args.channel_id : undefined;
      const threadTs = typeof args.thread_ts === 'string' && args.thread_ts ? args.thread_ts : undefined;
      if (threadTs && !channel) return fail('invalid_arguments', { response_metadata: { messages: ['[ERROR] thread_ts requires channel_id'] } });
      if (channel && notInChannel.has(channel)) return fail('not_in_channel');
      if (channel && threadTs && !findMessage(channel, threadTs)) return fail('thread_not_found');
      const done: FakeFile[] = [];
      for (const entry of list) {
        if (!isObj(entry) || typeof entry.id !== 'string') return fail('invalid_arguments');
        const pending = pendingUploads.get(entry.id);
        if (!pending || !pending.bytes) return fail('file_not_found');
        if (pending.completed) return fail('file_upload_already_completed');
      }
      for (const entry of list as Json[]) {
        const id = entry.id as string;
        const pending = pendingUploads.get(id)!;
        pending.completed = true;
        const mimetype = sniffMime(pending.bytes!);
        const f = makeFile(pending.filename, mimetype, pending.bytes!, FAKE_BOT_USER_ID, id);
        if (typeof entry.title === 'string') f.title = entry.title;
        if (channel) f.channels.push(channel);
        done.push(f);
      }
      if (channel) {
        const ts = nextTs();
        const text = typeof args.initial_comment === 'string' ? args.initial_comment : '';
        messages.push({
          channel,
          ts,
          ...(threadTs ? { threadTs } : {}),
          user: FAKE_BOT_USER_ID,
          byBot: true,
          text,
          files: done,
          deleted: false,
          versions: [{ text, at: now() }],
        });
      }
      return { ok: true, files: done.map(fileObject) };
    },

    'conversations.join': (args) => {
      const channel = args.channel;
      if (typeof channel !== 'string' || !channel) return fail('channel_not_found');
      // Only public channels can be joined without an invitation.
      if (!channel.startsWith('C') || privateChannels.has(channel)) return fail('method_not_supported_for_channel_type');
      notInChannel.delete(channel);
      return { ok: true, channel: { id: channel, is_member: true } };
    },

    'users.info': (args) => {
      const id = typeof args.user === 'string' ? args.user : '';
      const u = users.get(id) ?? (opts.unseededUsers !== 'not_found' && /^[UW][A-Z0-9]{2,}$/.test(id) ? { id, name: id.toLowerCase() } : undefined);
      if (!u) return fail('user_not_found');
      const tz = u.tz ?? 'America/Los_Angeles';
      return {
        ok: true,
        user: {
          id: u.id,
          team_id: FAKE_TEAM_ID,
          name: u.name,
          deleted: u.deleted ?? false,
          color: '9f69e7',
          real_name: u.real_name ?? u.name,
          tz,
          tz_label: tz,
          tz_offset: tzOffsetSeconds(tz, now()),
          profile: { real_name: u.real_name ?? u.name, display_name: u.name, team: FAKE_TEAM_ID },
          is_admin: u.is_admin ?? false,
          is_owner: u.is_owner ?? false,
          is_primary_owner: u.is_primary_owner ?? false,
          is_restricted: u.is_restricted ?? false,
          is_ultra_restricted: u.is_ultra_restricted ?? false,
          is_bot: u.is_bot ?? false,
          is_app_user: false,
          updated: Math.floor(now() / 1000),
        },
      };
    },

    'usergroups.list': (args) => {
      const includeUsers = args.include_users === true || args.include_users === 'true';
      const includeDisabled = args.include_disabled === true || args.include_disabled === 'true';
      const list = [...usergroups.values()].filter((g) => includeDisabled || !g.disabled);
      return {
        ok: true,
        usergroups: list.map((g) => ({
          id: g.id,
          team_id: FAKE_TEAM_ID,
          is_usergroup: true,
          name: g.name,
          description: '',
          handle: g.handle,
          is_external: false,
          date_create: 1_700_000_000,
          date_update: 1_700_000_000,
          date_delete: g.disabled ? 1_700_000_001 : 0,
          auto_type: null,
          created_by: 'U0FAKEADM',
          updated_by: 'U0FAKEADM',
          deleted_by: null,
          prefs: { channels: [], groups: [] },
          user_count: g.users.length,
          ...(includeUsers ? { users: g.users } : {}),
        })),
      };
    },

    'usergroups.users.list': (args) => {
      const g = typeof args.usergroup === 'string' ? usergroups.get(args.usergroup) : undefined;
      if (!g) return fail('no_such_subteam');
      if (g.disabled && !(args.include_disabled === true || args.include_disabled === 'true')) return fail('no_such_subteam');
      return { ok: true, users: g.users };
    },

    'conversations.info': (args) => {
      const id = args.channel;
      if (typeof id !== 'string' || !id) return fail('channel_not_found');
      if (id.startsWith('D')) {
        return { ok: true, channel: { id, created: 1_700_000_000, is_im: true, is_org_shared: false, user: id.slice(1), is_user_deleted: false, priority: 0 } };
      }
      const known = channelInfos.get(id) ?? (messages.some((m) => m.channel === id) || notInChannel.has(id) ? { id, name: id.toLowerCase() } : undefined);
      if (!known) return fail('channel_not_found');
      const isPrivate = known.is_private ?? (id.startsWith('G') || privateChannels.has(id));
      return {
        ok: true,
        channel: {
          id,
          name: known.name,
          is_channel: !isPrivate,
          is_group: isPrivate,
          is_im: false,
          is_mpim: false,
          is_private: isPrivate,
          created: 1_700_000_000,
          is_archived: false,
          is_general: known.name === 'general',
          is_shared: false,
          is_ext_shared: false,
          is_org_shared: false,
          is_member: !notInChannel.has(id),
          creator: 'U0FAKEADM',
          name_normalized: known.name,
          topic: { value: '', creator: '', last_set: 0 },
          purpose: { value: '', creator: '', last_set: 0 },
        },
      };
    },

    'conversations.replies': (args) => {
      const { channel, ts } = args;
      if (typeof channel !== 'string' || !channel) return fail('channel_not_found');
      if (typeof ts !== 'string' || !ts) return fail('invalid_arguments', { response_metadata: { messages: ['[ERROR] missing required field: ts'] } });
      if (notInChannel.has(channel) && !channel.startsWith('C')) return fail('channel_not_found');
      const parent = findMessage(channel, ts);
      if (!parent || parent.deleted) return fail('thread_not_found');
      // The thread's parent first, then its replies oldest first; asking with a reply's ts gives that
      // reply's thread (https://api.slack.com/methods/conversations.replies).
      const root = parent.threadTs ? findMessage(channel, parent.threadTs) : parent;
      const rootTs = parent.threadTs ?? parent.ts;
      const replies = messages.filter((m) => !m.deleted && m.channel === channel && m.threadTs === rootTs && m.ts !== rootTs).sort((a, b) => Number(a.ts) - Number(b.ts));
      const limit = Number(args.limit ?? 1000) || 1000;
      const thread = [...(root && !root.deleted ? [root] : []), ...replies].slice(0, limit);
      return {
        ok: true,
        messages: thread.map((m) =>
          m.ts === rootTs
            ? { ...messageJson(m), thread_ts: rootTs, reply_count: replies.length, reply_users: [...new Set(replies.map((r) => r.user))], reply_users_count: new Set(replies.map((r) => r.user)).size, latest_reply: replies.at(-1)?.ts ?? rootTs }
            : { ...messageJson(m), parent_user_id: root?.user ?? parent.user },
        ),
        has_more: replies.length + 1 > limit,
        response_metadata: { next_cursor: '' },
      };
    },

    'files.info': (args) => {
      const f = typeof args.file === 'string' ? files.get(args.file) : undefined;
      if (!f || f.deleted) return fail('file_not_found');
      return { ok: true, file: fileObject(f) };
    },

    'files.delete': (args) => {
      const f = typeof args.file === 'string' ? files.get(args.file) : undefined;
      if (!f || f.deleted) return fail('file_not_found');
      if (f.user !== FAKE_BOT_USER_ID) return fail('cant_delete_file');
      f.deleted = true;
      for (const m of messages) m.files = m.files.filter((x) => x.id !== f.id);
      return { ok: true };
    },
  };

  const send = (res: ServerResponse, status: number, body: Json | string, headers: Record<string, string> = {}) => {
    const payload = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json; charset=utf-8', ...headers });
    res.end(payload);
  };

  const tokenOf = (req: IncomingMessage, args: Json): string | undefined => {
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ')) return auth.slice(7);
    return typeof args.token === 'string' ? args.token : undefined;
  };

  const handleApi = async (req: IncomingMessage, res: ServerResponse, method: string) => {
    const raw = await readAll(req);
    const contentType = String(req.headers['content-type'] ?? '');
    let args: Json;
    try {
      args = parseArgs(raw, contentType);
    } catch {
      return send(res, 200, fail('invalid_json'));
    }
    const record = (status: number, response: Json) => {
      const { token: _t, ...safeArgs } = args;
      calls.push({ method, args: safeArgs, status, response, at: now(), contentType, userAgent: req.headers['user-agent'] });
      return send(res, status, response, status === 429 ? { 'retry-after': String(response.retryAfter ?? 1) } : {});
    };
    const queue = faults.get(method) ?? [];
    const at = queue.findIndex((f) => !f.match || f.match(args));
    const fault = at >= 0 ? queue.splice(at, 1)[0] : undefined;
    if (fault?.kind === 'ratelimit') {
      const body = { ok: false, error: 'ratelimited', retryAfter: fault.retryAfterSec };
      const { token: _t, ...safeArgs } = args;
      calls.push({ method, args: safeArgs, status: 429, response: body, at: now(), contentType, userAgent: req.headers['user-agent'] });
      return send(res, 429, { ok: false, error: 'ratelimited' }, { 'retry-after': String(fault.retryAfterSec) });
    }
    if (method === 'apps.connections.open') {
      const token = tokenOf(req, args);
      if (!token) return record(200, fail('not_authed'));
      if (token !== appToken) return record(200, fail('invalid_auth'));
      return record(200, { ok: true, url: `${baseUrl.replace(/^http/, 'ws')}/socket/${randomBytes(6).toString('hex')}` });
    }
    const handler = methods[method];
    if (!handler) return record(200, fail('unknown_method'));
    const token = tokenOf(req, args);
    if (!token) return record(200, fail('not_authed'));
    if (token !== botToken) return record(200, fail('invalid_auth'));
    if (fault?.kind === 'error') return record(200, fail(fault.error));
    const needed = scopeNeeded(method, args);
    if (scopes && needed && !scopes.has(needed)) return record(200, fail('missing_scope', { needed, provided: [...scopes].join(',') }));
    return record(200, handler(args));
  };

  /** The scope a method needs (https://api.slack.com/methods: each method's "Required scopes"); by channel type for conversations.*. */
  const scopeNeeded = (method: string, args: Json): string | undefined => {
    const kind = () => {
      const id = String(args.channel ?? '');
      return id.startsWith('D') ? 'im' : id.startsWith('G') || privateChannels.has(id) || channelInfos.get(id)?.is_private ? 'groups' : 'channels';
    };
    if (method === 'users.info') return 'users:read';
    if (method === 'usergroups.list' || method === 'usergroups.users.list') return 'usergroups:read';
    if (method === 'conversations.info') return `${kind()}:read`;
    if (method === 'conversations.replies') return `${kind()}:history`;
    return undefined;
  };

  const handleUpload = async (req: IncomingMessage, res: ServerResponse, fileId: string) => {
    const pending = pendingUploads.get(fileId);
    const raw = await readAll(req);
    if (!pending) return send(res, 404, 'Not Found');
    const ct = String(req.headers['content-type'] ?? '');
    let bytes = raw;
    if (ct.startsWith('multipart/form-data')) {
      const form = await new Response(new Uint8Array(raw), { headers: { 'content-type': ct } }).formData();
      const part = [...form.values()].find((v): v is File => typeof v !== 'string');
      if (!part) return send(res, 400, 'no file part');
      bytes = Buffer.from(await part.arrayBuffer());
    }
    pending.bytes = bytes;
    uploads.push({ fileId, filename: pending.filename, declaredLength: pending.length, bytes, authorization: req.headers.authorization });
    return send(res, 200, `OK - ${bytes.length}`);
  };

  const handleDownload = (req: IncomingMessage, res: ServerResponse, path: string) => {
    const m = /^\/files-pri\/[^-]+-([A-Z0-9]+)\//.exec(path);
    const f = m ? files.get(m[1]!) : undefined;
    if (req.headers.authorization !== `Bearer ${botToken}`) {
      refusedDownloads.push(path);
      return send(res, 403, 'Forbidden');
    }
    if (!f || f.deleted) return send(res, 404, 'Not Found');
    res.writeHead(200, { 'content-type': f.mimetype, 'content-length': String(f.bytes.length) });
    res.end(f.bytes);
  };

  const handleResponseUrl = async (req: IncomingMessage, res: ServerResponse, id: string) => {
    const raw = await readAll(req);
    const entry = responseUrls.get(id);
    if (!entry) return send(res, 404, { ok: false, error: 'no_such_response_url' });
    if (entry.uses >= RESPONSE_URL_MAX_USES || now() - entry.createdAt > RESPONSE_URL_TTL_MS) return send(res, 404, { ok: false, error: 'used_url' });
    entry.uses += 1;
    let body: Json;
    try {
      body = JSON.parse(raw.toString('utf8')) as Json;
    } catch {
      return send(res, 400, { ok: false, error: 'invalid_payload' });
    }
    if (body.blocks !== undefined) {
      const problems = validateBlocks(body.blocks, 'message');
      if (problems.length) return send(res, 400, { ok: false, error: 'invalid_blocks', response_metadata: { messages: problems } });
    }
    responseUrlPosts.push({ id, body, at: now() });
    return send(res, 200, { ok: true });
  };

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const run = async () => {
      if (req.method === 'POST' && path.startsWith('/api/')) return handleApi(req, res, path.slice('/api/'.length));
      if (req.method === 'POST' && path.startsWith('/upload/v1/')) return handleUpload(req, res, path.slice('/upload/v1/'.length));
      if (req.method === 'GET' && path.startsWith('/files-pri/')) return handleDownload(req, res, path);
      if (req.method === 'POST' && path.startsWith('/response/')) return handleResponseUrl(req, res, path.slice('/response/'.length));
      return send(res, 404, 'Not Found');
    };
    run().catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { ok: false, error: 'fake_internal', detail: String(err) });
    });
  });
  // Socket Mode: the URL apps.connections.open gave; "hello" first, then envelopes, acked by envelope_id.
  const wss = new WebSocketServer({ noServer: true });
  const sockets = new Set<WebSocket>();
  const pendingAcks = new Map<string, (payload: unknown) => void>();
  server.on('upgrade', (req, socket, head) => {
    if (!(req.url ?? '').startsWith('/socket/')) {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      ws.on('close', () => sockets.delete(ws));
      ws.on('message', (data) => {
        try {
          const msg = JSON.parse(String(data)) as { envelope_id?: string; payload?: unknown };
          if (msg.envelope_id) pendingAcks.get(msg.envelope_id)?.(msg.payload);
        } catch {
          // not an ack
        }
      });
      ws.send(JSON.stringify({ type: 'hello', num_connections: sockets.size, connection_info: { app_id: FAKE_APP_ID } }));
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const fake: FakeSlack = {
    url: baseUrl,
    apiUrl: `${baseUrl}/api/`,
    botToken,
    teamId: FAKE_TEAM_ID,
    botUserId: FAKE_BOT_USER_ID,
    calls,
    messages,
    ephemerals,
    views,
    uploads,
    files,
    responseUrlPosts,
    refusedDownloads,
    callsTo: (method) => calls.filter((c) => c.method === method),
    message: (channel, ts) => {
      const m = findMessage(channel, ts);
      return m && !m.deleted ? m : undefined;
    },
    messagesIn: (channel, threadTs) =>
      messages.filter(
        (m) => !m.deleted && m.channel === channel && (threadTs === undefined ? true : threadTs === null ? !m.threadTs : m.threadTs === threadTs),
      ),
    issueTriggerId: () => {
      const id = `${seq++}.${Date.now()}.${randomBytes(8).toString('hex')}`;
      triggers.set(id, { issuedAt: now(), used: false });
      return id;
    },
    setTriggerTtlMs: (ms) => {
      triggerTtlMs = ms;
    },
    newResponseUrl: () => {
      const id = randomBytes(8).toString('hex');
      responseUrls.set(id, { createdAt: now(), uses: 0 });
      return `${baseUrl}/response/${id}`;
    },
    addUserFile: ({ name, mimetype, bytes, user }) => makeFile(name, mimetype, bytes, user),
    addUser: (u) => void users.set(u.id, u),
    addUsergroup: (g) => void usergroups.set(g.id, g),
    addChannel: (c) => void channelInfos.set(c.id, c),
    seedMessage: ({ channel, user, text, files: fs = [], threadTs }) => {
      const ts = nextTs();
      const m: FakeMessage = {
        channel,
        ts,
        ...(threadTs ? { threadTs } : {}),
        user,
        byBot: false,
        text,
        files: fs,
        deleted: false,
        versions: [{ text, at: now() }],
      };
      for (const f of fs) f.channels.push(channel);
      messages.push(m);
      return m;
    },
    injectRateLimit: (method, count, retryAfterSec, match) => {
      const q = faults.get(method) ?? [];
      for (let i = 0; i < count; i++) q.push({ kind: 'ratelimit', retryAfterSec, ...(match ? { match } : {}) });
      faults.set(method, q);
    },
    injectError: (method, error, count = 1, match) => {
      const q = faults.get(method) ?? [];
      for (let i = 0; i < count; i++) q.push({ kind: 'error', error, ...(match ? { match } : {}) });
      faults.set(method, q);
    },
    waitFor: async (predicate, timeoutMs = 10_000, what = 'condition') => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const v = predicate();
        if (v) return v;
        if (Date.now() > deadline) throw new Error(`fake Slack: timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    fileObject,
    socketSend: (type, payload, timeoutMs = 5000) => {
      const ws = [...sockets][0];
      if (!ws) return Promise.reject(new Error('fake Slack: no Socket Mode connection'));
      const envelopeId = randomBytes(8).toString('hex');
      const started = performance.now();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pendingAcks.delete(envelopeId);
          reject(new Error(`fake Slack: no ack for ${type} within ${timeoutMs} ms`));
        }, timeoutMs);
        pendingAcks.set(envelopeId, (ack) => {
          clearTimeout(timer);
          pendingAcks.delete(envelopeId);
          resolve({ ackMs: performance.now() - started, payload: ack });
        });
        ws.send(JSON.stringify({ envelope_id: envelopeId, type, payload, accepts_response_payload: type !== 'events_api' }));
      });
    },
    socketSendRaw: (text) => {
      const ws = [...sockets][0];
      if (!ws) throw new Error('fake Slack: no Socket Mode connection');
      ws.send(text);
    },
    socketConnected: async (timeoutMs = 5000) => {
      const deadline = Date.now() + timeoutMs;
      while (sockets.size === 0) {
        if (Date.now() > deadline) throw new Error('fake Slack: no Socket Mode connection');
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of sockets) ws.terminate();
        wss.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return fake;
}

/** A time zone's offset from UTC in seconds at `at` (users.info's tz_offset). */
function tzOffsetSeconds(tz: string, at: number): number {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' }).formatToParts(at);
  const n = (t: string) => Number(parts.find((p) => p.type === t)?.value);
  const asUtc = Date.UTC(n('year'), n('month') - 1, n('day'), n('hour'), n('minute'), n('second'));
  return Math.round((asUtc - Math.floor(at / 1000) * 1000) / 1000);
}

/** The content type Slack would detect from the bytes. */
function sniffMime(b: Buffer): string {
  if (b.length >= 8 && b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (b.length >= 12 && b.subarray(0, 4).toString('latin1') === 'RIFF' && b.subarray(8, 12).toString('latin1') === 'WEBP') return 'image/webp';
  return 'application/octet-stream';
}
