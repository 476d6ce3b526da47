/**
 * Plays Slack's side of the Events/Interactivity protocol against the bot's `/slack/events`:
 * slash commands as application/x-www-form-urlencoded, interactive payloads as a form field
 * `payload` holding JSON, each signed `v0=HMAC_SHA256(secret, "v0:" + ts + ":" + body)` with
 * `X-Slack-Request-Timestamp`. Measures how long the bot takes to acknowledge each request.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { request } from 'undici';
import type { FakeFile, FakeMessage, FakeSlack } from './fake-slack.ts';

type Json = Record<string, unknown>;

export interface AckResult {
  status: number;
  /** The HTTP body of the acknowledgement (empty for a bare ack()). */
  body: string;
  /** From the first byte sent to the full response received. */
  ackMs: number;
}

export interface SlashResult extends AckResult {
  triggerId: string;
  responseUrl: string;
}

export interface SignOptions {
  /** Override the timestamp (seconds) to test stale requests. */
  timestampSec?: number;
  /** Sign with another secret (a forged request). */
  secret?: string;
  /** Send no signature header at all. */
  unsigned?: boolean;
}

export interface SlackUser {
  id: string;
  name?: string;
}

export function signSlackRequest(secret: string, timestampSec: number, body: string): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestampSec}:${body}`).digest('hex')}`;
}

export interface SlashOptions {
  user: SlackUser;
  channel: string;
  text: string;
  command?: string;
  threadTs?: string;
}

export interface ClickOptions {
  user: SlackUser;
  message: FakeMessage;
  actionId: string;
  /** For static_select: the chosen option's value. */
  selectedValue?: string;
}

export interface SlackDriver {
  /** POSTs a raw form body, signed, and measures the ack. */
  post(body: string, sign?: SignOptions, contentType?: string): Promise<AckResult>;
  /** The payloads alone (for Socket Mode, which carries the same payloads over its WebSocket). */
  payloads: {
    blockActions(opts: ClickOptions): { payload: Json; triggerId: string; responseUrl: string };
    slashCommand(opts: SlashOptions): { form: Record<string, string>; triggerId: string; responseUrl: string };
    /** The Events API `event_callback` body of an `app_mention` for a seeded message. */
    mention(opts: { message: FakeMessage }): { body: Json; eventId: string };
  };
  slashCommand(opts: SlashOptions, sign?: SignOptions): Promise<SlashResult>;
  /**
   * The Events API's `app_mention` for a message (seeded in the fake) that mentions the bot, as a
   * signed JSON `event_callback`; `retryNum` adds Slack's retry headers.
   */
  mention(opts: { message: FakeMessage; retryNum?: number }): Promise<AckResult & { eventId: string }>;
  /**
   * A user posts `text` (which should hold `<@botUserId>`) in a channel, or as a reply in the
   * thread `threadTs` (e.g. a result's thread), optionally with files: the message is seeded in the
   * fake (so conversations.replies sees it) and its `app_mention` (with `thread_ts`) sent.
   */
  mentionAs(opts: { user: SlackUser; channel: string; text: string; threadTs?: string; files?: FakeFile[] }): Promise<AckResult & { eventId: string; message: FakeMessage }>;
  /** Clicks a button (or picks a select option) on a message the bot posted. */
  clickButton(opts: ClickOptions): Promise<AckResult & { triggerId: string; responseUrl: string }>;
  /** Runs a message shortcut on a message. */
  messageShortcut(opts: { user: SlackUser; message: FakeMessage; callbackId: string }): Promise<AckResult & { triggerId: string; responseUrl: string }>;
  /**
   * Submits a modal the bot opened (by view id) with the given input values:
   * `{ [block_id]: { [any key]: stateValue } }`; the driver keys each state by the element's real
   * action_id, as Slack puts it in view.state.values.
   */
  submitView(opts: { user: SlackUser; viewId: string; values: Record<string, Record<string, Json>> }): Promise<AckResult>;
  /** Helpers to build view state values the way Slack does. */
  text(value: string | null): Json;
  option(value: string | null): Json;
  number(value: string | null): Json;
  files(list: FakeFile[]): Json;
}

/** What the driver needs from a fake Slack (a bench may pass a stand-in living in another process). */
export type DriverFake = Pick<FakeSlack, 'teamId' | 'issueTriggerId' | 'newResponseUrl' | 'fileObject' | 'views'> & Partial<Pick<FakeSlack, 'botUserId' | 'seedMessage'>>;

export function createSlackDriver(opts: { eventsUrl: string; signingSecret: string; fake: DriverFake; now?: () => number }): SlackDriver {
  const { eventsUrl, signingSecret, fake } = opts;
  const now = opts.now ?? Date.now;
  const team = { id: fake.teamId, domain: 'fake' };

  const post = async (body: string, sign: SignOptions = {}, contentType = 'application/x-www-form-urlencoded', extraHeaders: Record<string, string> = {}): Promise<AckResult> => {
    const ts = sign.timestampSec ?? Math.floor(now() / 1000);
    const headers: Record<string, string> = { 'content-type': contentType, 'x-slack-request-timestamp': String(ts), ...extraHeaders };
    if (!sign.unsigned) headers['x-slack-signature'] = signSlackRequest(sign.secret ?? signingSecret, ts, body);
    const started = performance.now();
    const res = await request(eventsUrl, { method: 'POST', headers, body });
    const text = await res.body.text();
    return { status: res.statusCode, body: text, ackMs: performance.now() - started };
  };

  const postPayload = (payload: Json) => post(new URLSearchParams({ payload: JSON.stringify(payload) }).toString());
  const userJson = (u: SlackUser) => ({ id: u.id, username: u.name ?? u.id.toLowerCase(), name: u.name ?? u.id.toLowerCase(), team_id: fake.teamId });
  const messageJson = (m: FakeMessage): Json => ({
    type: 'message',
    ts: m.ts,
    user: m.user,
    text: m.text,
    ...(m.byBot ? { bot_id: 'B0FAKEBOT' } : {}),
    ...(m.blocks ? { blocks: m.blocks } : {}),
    ...(m.threadTs ? { thread_ts: m.threadTs } : {}),
    ...(m.files.length ? { files: m.files.map(fake.fileObject) } : {}),
  });

  const findElement = (m: FakeMessage, actionId: string): { blockId: string; element: Json } | undefined => {
    for (const b of (m.blocks ?? []) as Json[]) {
      const els = (b.type === 'actions' ? b.elements : b.accessory ? [b.accessory] : []) as Json[];
      for (const el of els) if (el.action_id === actionId) return { blockId: String(b.block_id ?? ''), element: el };
    }
    return undefined;
  };

  const buildBlockActions = ({ user, message, actionId, selectedValue }: ClickOptions) => {
    const found = findElement(message, actionId);
    if (!found) throw new Error(`driver: no element with action_id ${actionId} on message ${message.ts}`);
    const triggerId = fake.issueTriggerId();
    const responseUrl = fake.newResponseUrl();
    const { element, blockId } = found;
    const actionTs = (now() / 1000).toFixed(6);
    let action: Json;
    if (element.type === 'static_select') {
      const chosen = ((element.options ?? []) as Json[]).find((o) => o.value === selectedValue);
      if (!chosen) throw new Error(`driver: select ${actionId} has no option ${String(selectedValue)}`);
      action = { type: 'static_select', action_id: actionId, block_id: blockId, selected_option: chosen, placeholder: element.placeholder, action_ts: actionTs };
    } else {
      action = { type: 'button', action_id: actionId, block_id: blockId, text: element.text, action_ts: actionTs, ...(element.value !== undefined ? { value: element.value } : {}) };
    }
    const payload: Json = {
      type: 'block_actions',
      user: userJson(user),
      api_app_id: 'A0FAKEAPP',
      token: 'deprecated-verification-token',
      container: { type: 'message', message_ts: message.ts, channel_id: message.channel, is_ephemeral: false, ...(message.threadTs ? { thread_ts: message.threadTs } : {}) },
      trigger_id: triggerId,
      team,
      enterprise: null,
      is_enterprise_install: false,
      channel: { id: message.channel, name: 'general' },
      message: messageJson(message),
      state: { values: {} },
      response_url: responseUrl,
      actions: [action],
    };
    return { payload, triggerId, responseUrl };
  };

  const buildSlashCommand = ({ user, channel, text, command = '/imagine', threadTs }: SlashOptions) => {
    const triggerId = fake.issueTriggerId();
    const responseUrl = fake.newResponseUrl();
    const form: Record<string, string> = {
      token: 'deprecated-verification-token',
      team_id: fake.teamId,
      team_domain: 'fake',
      channel_id: channel,
      channel_name: 'general',
      user_id: user.id,
      user_name: user.name ?? user.id.toLowerCase(),
      command,
      text,
      api_app_id: 'A0FAKEAPP',
      is_enterprise_install: 'false',
      response_url: responseUrl,
      trigger_id: triggerId,
    };
    if (threadTs) form.thread_ts = threadTs;
    return { form, triggerId, responseUrl };
  };

  const buildMention = ({ message }: { message: FakeMessage }) => {
    const eventId = `Ev${randomBytes(6).toString('hex').toUpperCase()}`;
    const body: Json = {
      token: 'deprecated-verification-token',
      team_id: fake.teamId,
      api_app_id: 'A0FAKEAPP',
      type: 'event_callback',
      event_id: eventId,
      event_time: Math.floor(now() / 1000),
      authorizations: [{ enterprise_id: null, team_id: fake.teamId, user_id: fake.botUserId ?? 'U0FAKEBOT', is_bot: true, is_enterprise_install: false }],
      is_ext_shared_channel: false,
      event: {
        type: 'app_mention',
        user: message.user,
        text: message.text,
        ts: message.ts,
        channel: message.channel,
        event_ts: message.ts,
        team: fake.teamId,
        ...(message.threadTs ? { thread_ts: message.threadTs } : {}),
        ...(message.files.length ? { files: message.files.map(fake.fileObject) } : {}),
      },
    };
    return { body, eventId };
  };

  return {
    post,
    payloads: { blockActions: buildBlockActions, slashCommand: buildSlashCommand, mention: buildMention },
    async slashCommand(opts, sign) {
      const { form, triggerId, responseUrl } = buildSlashCommand(opts);
      const r = await post(new URLSearchParams(form).toString(), sign);
      return { ...r, triggerId, responseUrl };
    },
    async mention({ message, retryNum }) {
      const { body, eventId } = buildMention({ message });
      const retry: Record<string, string> = retryNum ? { 'x-slack-retry-num': String(retryNum), 'x-slack-retry-reason': 'http_timeout' } : {};
      const r = await post(JSON.stringify(body), {}, 'application/json', retry);
      return { ...r, eventId };
    },
    async mentionAs({ user, channel, text, threadTs, files }) {
      if (!fake.seedMessage) throw new Error('driver: mentionAs needs a fake that can seed messages');
      const message = fake.seedMessage({ channel, user: user.id, text, ...(files ? { files } : {}), ...(threadTs ? { threadTs } : {}) });
      const { body, eventId } = buildMention({ message });
      const r = await post(JSON.stringify(body), {}, 'application/json');
      return { ...r, eventId, message };
    },
    async clickButton(opts) {
      const { payload, triggerId, responseUrl } = buildBlockActions(opts);
      const r = await postPayload(payload);
      return { ...r, triggerId, responseUrl };
    },
    async messageShortcut({ user, message, callbackId }) {
      const triggerId = fake.issueTriggerId();
      const responseUrl = fake.newResponseUrl();
      const r = await postPayload({
        type: 'message_action',
        token: 'deprecated-verification-token',
        action_ts: (now() / 1000).toFixed(6),
        team,
        user: userJson(user),
        channel: { id: message.channel, name: 'general' },
        is_enterprise_install: false,
        enterprise: null,
        callback_id: callbackId,
        trigger_id: triggerId,
        response_url: responseUrl,
        message_ts: message.ts,
        message: messageJson(message),
      });
      return { ...r, triggerId, responseUrl };
    },
    async submitView({ user, viewId, values }) {
      const v = fake.views.get(viewId);
      if (!v) throw new Error(`driver: no view ${viewId}`);
      // As Slack does: each input's state sits under its block_id and its element's own action_id
      // (whatever key the test used), and only for inputs the view really has.
      const state: Record<string, Record<string, Json>> = {};
      for (const [blockId, entries] of Object.entries(values)) {
        const block = ((v.view.blocks ?? []) as Json[]).find((b) => b.block_id === blockId && b.type === 'input');
        if (!block) throw new Error(`driver: view ${viewId} has no input block ${blockId}`);
        const entry = Object.values(entries)[0];
        if (entry !== undefined) state[blockId] = { [String((block.element as Json).action_id)]: entry };
      }
      return postPayload({
        type: 'view_submission',
        team,
        user: userJson(user),
        api_app_id: 'A0FAKEAPP',
        token: 'deprecated-verification-token',
        trigger_id: fake.issueTriggerId(),
        view: { ...v.view, state: { values: state }, root_view_id: v.id, previous_view_id: null, app_installed_team_id: fake.teamId },
        response_urls: [],
        is_enterprise_install: false,
        enterprise: null,
      });
    },
    text: (value) => ({ type: 'plain_text_input', value }),
    option: (value) => ({ type: 'static_select', selected_option: value === null ? null : { text: { type: 'plain_text', text: value }, value } }),
    number: (value) => ({ type: 'number_input', value }),
    files: (list) => ({ type: 'file_input', files: list.map(fake.fileObject) }),
  };
}
