/**
 * The Slack side of governance against the fake Slack's real Web API over HTTP: who is an admin
 * (users.info flags, SLACK_ADMIN_USERS, a short cache), the directory an admin's mentions are
 * checked against, the log channel's notify (no broadcast mentions), the settings modal and
 * `/settings --flags`, and the requester every listener builds (workspace and channel).
 */
import { webApi } from '@slack/bolt';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startFakeSlack, type FakeSlack } from '../../../fakes/slack/fake-slack.ts';
import { createLogger } from '../../../../src/log.ts';
import { AckFirst } from '../../../../src/platforms/ack-first.ts';
import { createSlackWebCalls, WEB_API_RETRY } from '../../../../src/platforms/slack/web-api.ts';
import { DEFAULT_TUNING, type SlackContext } from '../../../../src/platforms/slack/context.ts';
import { SlackDeliverer, withoutBroadcasts } from '../../../../src/platforms/slack/deliverer.ts';
import { SlackWorkspace, WORKSPACE_CACHE_MS } from '../../../../src/platforms/slack/workspace.ts';
import { requesterOf } from '../../../../src/platforms/slack/payloads.ts';
import { NOT_SET, parseSettingsText, readSettingsSubmission, settingsModal } from '../../../../src/platforms/slack/settings-modal.ts';
import { ValidationError } from '../../../../src/engine/errors.ts';
import { UNREAD_PREFERENCES, unreadPreferencesNotice } from '../../../../src/engine/governance/api.ts';
import { UserFacingError } from '../../../../src/errors.ts';
import { ALL_MODELS } from './fixtures.ts';
import { command, fakeSlack as fakeListeners } from './listener-fakes.ts';
import { imagineCommand, textCommand } from '../../../../src/platforms/slack/listeners/commands.ts';
import { imagineAdmin } from '../../../../commands/index.ts';

let fake: FakeSlack;
let now = 1_700_000_000_000;

beforeAll(async () => {
  fake = await startFakeSlack({
    users: [
      { id: 'U0ADMIN', name: 'ada', is_admin: true },
      { id: 'U0OWNER', name: 'olga', is_owner: true },
      { id: 'U0PRIME', name: 'pam', is_primary_owner: true },
      { id: 'U0GONE', name: 'gus', is_admin: true, deleted: true },
      { id: 'U0MEMBER', name: 'max' },
      { id: 'U0OPERATOR', name: 'oz' },
    ],
    unseededUsers: 'not_found',
    channels: [{ id: 'C0ART', name: 'art' }, { id: 'C0SECRET', name: 'secret', is_private: true }],
    notInChannel: ['C0JOIN'],
  });
});
afterAll(async () => {
  await fake?.close();
});

function context(): SlackContext {
  const client = new webApi.WebClient(fake.botToken, { slackApiUrl: fake.apiUrl, retryConfig: { retries: 0 }, logLevel: webApi.LogLevel.ERROR, rejectRateLimitedCalls: true });
  const log = createLogger({ level: 'silent', pretty: false, destination: { write: () => undefined } });
  return {
    config: { SLACK_API_URL: fake.apiUrl, SLACK_ADMIN_USERS: ['U0OPERATOR'] } as unknown as SlackContext['config'],
    engine: { models: ALL_MODELS } as unknown as SlackContext['engine'],
    log,
    client,
    web: createSlackWebCalls({ apiUrl: fake.apiUrl, token: fake.botToken, log, retry: { ...WEB_API_RETRY, retries: 0 } }),
    botToken: fake.botToken,
    tuning: { ...DEFAULT_TUNING, now: () => now, sleep: async () => undefined },
    track: (task) => void task,
    ackFirst: new AckFirst(),
    afterAck: (_what, work) => void work(),
  };
}
const usersInfoCalls = (user: string) => fake.callsTo('users.info').filter((c) => c.args.user === user).length;

describe('who is an admin on Slack', () => {
  test('admins, owners and primary owners from users.info, and the operator-listed users; not members, deactivated or unknown users', async () => {
    const w = new SlackWorkspace(context());
    expect(await w.isAdmin('U0ADMIN')).toBe(true);
    expect(await w.isAdmin('U0OWNER')).toBe(true);
    expect(await w.isAdmin('U0PRIME')).toBe(true);
    expect(await w.isAdmin('U0OPERATOR')).toBe(true);
    expect(await w.isAdmin('U0MEMBER')).toBe(false);
    expect(await w.isAdmin('U0GONE')).toBe(false);
    expect(await w.isAdmin('U0NOBODY')).toBe(false);
    const refused = await w.requireAdmin('U0MEMBER').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(UserFacingError);
    expect((refused as UserFacingError).userMessage).toBe("Only workspace admins and owners can change the bot's settings here.");
  });

  test('users.info is asked once per user within the cache time, again after it', async () => {
    const w = new SlackWorkspace(context());
    const before = usersInfoCalls('U0ADMIN');
    await w.isAdmin('U0ADMIN');
    await w.isAdmin('U0ADMIN');
    await w.hasMember('U0ADMIN');
    expect(usersInfoCalls('U0ADMIN')).toBe(before + 1);
    now += WORKSPACE_CACHE_MS;
    await w.isAdmin('U0ADMIN');
    expect(usersInfoCalls('U0ADMIN')).toBe(before + 2);
  });

  test('the directory: channels conversations.info sees (public or private), members users.info knows; no roles on Slack', async () => {
    const d = new SlackWorkspace(context()).directory;
    expect(await d.hasChannel('C0ART')).toBe(true);
    expect(await d.hasChannel('C0SECRET')).toBe(true);
    expect(await d.hasChannel('C0NOWHERE')).toBe(false);
    expect(await d.hasMember('U0MEMBER')).toBe(true);
    expect(await d.hasMember('U0GONE')).toBe(false);
    expect(await d.hasMember('U0NOBODY')).toBe(false);
    expect(d.hasRole).toBeUndefined();
  });

  test('answers go once they are too old to use, as other users and channels are asked about', async () => {
    const w = new SlackWorkspace(context());
    for (const user of ['U0ADMIN', 'U0MEMBER', 'U0GONE', 'U0NOBODY']) await w.hasMember(user);
    await w.hasChannel('C0ART');
    expect(w.kept).toBe(5);
    now += WORKSPACE_CACHE_MS;
    await w.hasMember('U0MEMBER');
    await w.hasChannel('C0SECRET');
    expect(w.kept).toBe(2);
  });
});

describe('the log channel', () => {
  test('notify posts the line as the bot, joining a public channel it is not in, with broadcasts written out', async () => {
    const deliverer = new SlackDeliverer(context());
    await deliverer.notify('C0JOIN', '<@U0ADMIN> added a filter entry <!channel> <!here|here> <!subteam^S0ART|@artists>');
    const posted = fake.messagesIn('C0JOIN').filter((m) => m.byBot);
    expect(posted.map((m) => m.text)).toEqual(['<@U0ADMIN> added a filter entry @channel here @artists']);
    await deliverer.close();
  });

  test('a channel the bot cannot post in is logged, never thrown', async () => {
    const deliverer = new SlackDeliverer(context());
    await expect(deliverer.notify('D0NOTOPEN', 'x')).resolves.toBeUndefined();
    await deliverer.close();
  });

  test('withoutBroadcasts keeps dates and plain text', () => {
    expect(withoutBroadcasts('at <!date^1700000000^{time}|22:13 UTC> by <@U1>')).toBe('at 22:13 UTC by <@U1>');
    expect(withoutBroadcasts('<!everyone>')).toBe('@everyone');
  });
});

describe('/settings on Slack', () => {
  test('flags as options; --private on|off read as a value; reset; anything else refused naming it', () => {
    expect(parseSettingsText('--model runblob-pro --ar 16:9 --res 2K --n 2')).toEqual({ model: 'runblob-pro', ratio: '16:9', resolution: '2K', count: 2 });
    expect(parseSettingsText('reset --n 1')).toEqual({ count: 1, reset: true });
    expect(parseSettingsText('--reset')).toEqual({ reset: true });
    expect(() => parseSettingsText('--private off')).toThrow(/only works on Discord/);
    expect(() => parseSettingsText('blue please')).toThrow(/"blue please" is not a setting/);
    expect(() => parseSettingsText('--ar 7:3')).toThrow(ValidationError);
    expect(() => parseSettingsText('--creativity 0.5')).toThrow(/creativity is not one of your defaults/);
  });

  test('the modal: a select per default with "Not set" first, prefilled; a submission is the whole set', () => {
    const view = settingsModal({ models: ALL_MODELS, preferences: { model: ALL_MODELS[1]!.key, count: 3 }, meta: { channel: 'C1', threadTs: '1.2' } });
    const blocks = view.blocks as Array<{ block_id?: string; element?: { options: { value: string }[]; initial_option?: { value: string } } }>;
    const inputs = blocks.filter((b) => b.element);
    expect(inputs.map((b) => b.block_id)).toEqual(['model', 'ratio', 'resolution', 'count']);
    for (const b of inputs) expect(b.element!.options[0]!.value).toBe(NOT_SET);
    expect(inputs.map((b) => b.element!.initial_option?.value)).toEqual([ALL_MODELS[1]!.key, NOT_SET, NOT_SET, '3']);
    expect(JSON.parse(view.private_metadata!)).toEqual({ c: 'C1', t: '1.2' });

    const sel = (value: string) => ({ type: 'static_select', selected_option: { value } });
    expect(readSettingsSubmission({ model: { model: sel('runblob-2') }, ratio: { ratio: sel(NOT_SET) }, count: { count: sel('2') }, resolution: { resolution: { type: 'static_select', selected_option: null } } })).toEqual({
      reset: true,
      model: 'runblob-2',
      count: '2',
    });
    expect(() => readSettingsSubmission({ count: { count: { selected_option: 'two' } } })).toThrow(ValidationError);
  });
});

describe('the Slack requester', () => {
  test('carries the workspace as its scope and the channel, a DM included', () => {
    expect(requesterOf({ id: 'U1', username: 'al' }, { team: 'T1', channel: 'C1' })).toEqual({ platform: 'slack', userId: 'U1', name: 'al', scope: 'T1', channelId: 'C1' });
    expect(requesterOf('U1', { team: 'T1', channel: 'DU1' })).toEqual({ platform: 'slack', userId: 'U1', scope: 'T1', channelId: 'DU1' });
  });

  test('/imagine-admin: a member is refused privately, nothing applied; an admin\'s whole text is the action, applied in the workspace', async () => {
    const s = fakeListeners({ users: { UADA: { is_admin: true } } });
    await textCommand(s.deps, imagineAdmin)({ ack: s.ack, body: command('daily 5', { command: '/imagine-admin' }) });
    await s.settle();
    expect(s.ephemerals()).toEqual(["Only workspace admins and owners can change the bot's settings here."]);
    expect(s.applied).toHaveLength(0);

    await textCommand(s.deps, imagineAdmin)({ ack: s.ack, body: command('daily 5', { command: '/imagine-admin', user_id: 'UADA', channel_id: 'DUADA' }) });
    await s.settle();
    expect(s.applied.map((a) => [a.scope, a.actor.userId, a.actor.channelId, a.action])).toEqual([['slack:T1', 'UADA', 'DUADA', { kind: 'daily-units', units: 5 }]]);
    expect(s.events.indexOf('ack')).toBe(0);
  });

  test('/imagine: the requester has the workspace and channel, and the saved defaults fill what was not given', async () => {
    const s = fakeListeners({ preferences: { UALICE: { ratio: '16:9', count: 2 } } });
    await imagineCommand(s.deps)({ ack: s.ack, body: command('a fox --n 1') });
    await s.settle();
    expect(s.submitted[0]!.requester).toMatchObject({ platform: 'slack', userId: 'UALICE', scope: 'T1', channelId: 'C1' });
    expect([s.submitted[0]!.ratio, s.submitted[0]!.count]).toEqual(['16:9', 1]);
  });

  test('/imagine: saved defaults that could not be read in time: the job goes ahead with the defaults, in public, and the requester is told', async () => {
    const s = fakeListeners({ preferences: { UALICE: UNREAD_PREFERENCES } });
    await imagineCommand(s.deps)({ ack: s.ack, body: command('a fox') });
    await s.settle();
    expect(s.submitted).toHaveLength(1);
    expect(s.placeholders).toHaveLength(1);
    expect(s.ephemerals()).toEqual([unreadPreferencesNotice({ private: false })]);
  });
});
