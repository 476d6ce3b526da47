/** The fake Slack answers like Slack: checked with the real @slack/web-api client. */
import { webApi } from '@slack/bolt';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startFakeSlack, type FakeSlack } from './fake-slack.ts';
import { createSlackDriver } from './driver.ts';

let fake: FakeSlack;
let client: webApi.WebClient;
beforeAll(async () => {
  fake = await startFakeSlack();
  client = new webApi.WebClient(fake.botToken, { slackApiUrl: fake.apiUrl, rejectRateLimitedCalls: true, retryConfig: { retries: 0 }, logLevel: webApi.LogLevel.ERROR });
});
afterAll(async () => {
  await fake.close();
});

const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: { data?: { error?: string }; code?: string }) => e.data?.error ?? e.code);
const button = (i: number, text = `b${i}`) => ({ type: 'button', action_id: `a${i}`, text: { type: 'plain_text', text } });

describe('fake Slack', () => {
  test('auth: the bot token works, anything else is invalid_auth', async () => {
    expect((await client.auth.test()).user_id).toBe(fake.botUserId);
    const other = new webApi.WebClient('xoxb-nope', { slackApiUrl: fake.apiUrl, retryConfig: { retries: 0 } });
    expect(await code(other.auth.test())).toBe('invalid_auth');
  });

  test('messages: post, update, ephemeral (never updatable), delete; a human message is not the bot’s to change', async () => {
    const posted = await client.chat.postMessage({ channel: 'C1', text: 'hi' });
    await client.chat.update({ channel: 'C1', ts: posted.ts!, text: 'edited' });
    expect(fake.message('C1', posted.ts!)!.versions.map((v) => v.text)).toEqual(['hi', 'edited']);
    const eph = await client.chat.postEphemeral({ channel: 'C1', user: 'U1', text: 'psst' });
    expect(await code(client.chat.update({ channel: 'C1', ts: eph.message_ts!, text: 'x' }))).toBe('message_not_found');
    const human = fake.seedMessage({ channel: 'C1', user: 'U1', text: 'mine' });
    expect(await code(client.chat.update({ channel: 'C1', ts: human.ts, text: 'x' }))).toBe('cant_update_message');
    expect(await code(client.chat.update({ channel: 'C1', ts: '1.000000', text: 'x' }))).toBe('message_not_found');
    expect(await code(client.chat.postMessage({ channel: 'C1' } as never))).toBe('no_text');
    await client.chat.delete({ channel: 'C1', ts: posted.ts! });
    expect(fake.message('C1', posted.ts!)).toBeUndefined();
  });

  test('Block Kit limits: 25 elements per actions block, 75-char button text, 50 blocks, unique action_ids', async () => {
    const ok = await code(client.chat.postMessage({ channel: 'C1', text: 't', blocks: [{ type: 'actions', elements: Array.from({ length: 25 }, (_, i) => button(i)) }] as never }));
    expect(ok).toBe('ok');
    const cases: unknown[][] = [
      [{ type: 'actions', elements: Array.from({ length: 26 }, (_, i) => button(i)) }],
      [{ type: 'actions', elements: [button(1, 'x'.repeat(76))] }],
      Array.from({ length: 51 }, () => ({ type: 'divider' })),
      [{ type: 'actions', elements: [button(1), button(1)] }],
      [{ type: 'section', text: { type: 'mrkdwn', text: 'x'.repeat(3001) } }],
      [{ type: 'actions', elements: [{ ...button(1), value: 'v'.repeat(2001) }] }],
    ];
    for (const blocks of cases) expect(await code(client.chat.postMessage({ channel: 'C1', text: 't', blocks: blocks as never }))).toBe('invalid_blocks');
  });

  test('views.open: a trigger_id works once and only for 3 s', async () => {
    const view = { type: 'modal' as const, title: { type: 'plain_text' as const, text: 'T' }, blocks: [] };
    const t1 = fake.issueTriggerId();
    expect(await code(client.views.open({ trigger_id: t1, view }))).toBe('ok');
    expect(await code(client.views.open({ trigger_id: t1, view }))).toBe('exchanged_trigger_id');
    fake.setTriggerTtlMs(0);
    const t2 = fake.issueTriggerId();
    await new Promise((r) => setTimeout(r, 5));
    expect(await code(client.views.open({ trigger_id: t2, view }))).toBe('expired_trigger_id');
    fake.setTriggerTtlMs(3000);
    expect(await code(client.views.open({ trigger_id: 'made-up', view }))).toBe('invalid_trigger_id');
    const input = { type: 'input', block_id: 'b', label: { type: 'plain_text', text: 'L' }, element: { type: 'plain_text_input', action_id: 'v' } };
    expect(await code(client.views.open({ trigger_id: fake.issueTriggerId(), view: { ...view, blocks: [input] } as never }))).toBe('invalid_arguments');
  });

  test('files.uploadV2 (external flow) records the bytes and shares them in the channel thread', async () => {
    const parent = await client.chat.postMessage({ channel: 'C2', text: 'parent' });
    const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(100, 7)]);
    await client.filesUploadV2({ channel_id: 'C2', thread_ts: parent.ts!, file_uploads: [{ file: png, filename: 'a.png' }, { file: Buffer.from('hello'), filename: 'b.txt' }] });
    expect(fake.uploads.map((u) => u.bytes)).toEqual([png, Buffer.from('hello')]);
    const shared = fake.messagesIn('C2', parent.ts!);
    expect(shared).toHaveLength(1);
    expect(shared[0]!.files.map((f) => [f.name, f.mimetype])).toEqual([
      ['a.png', 'image/png'],
      ['b.txt', 'application/octet-stream'],
    ]);
    const pending = await client.files.getUploadURLExternal({ filename: 'c.png', length: 3 });
    expect(await code(client.files.completeUploadExternal({ files: [{ id: pending.file_id! }], channel_id: 'C2' }))).toBe('file_not_found');
  });

  test('429 with Retry-After, private files need the bot token, response_url takes 5 uses', async () => {
    fake.injectRateLimit('chat.postMessage', 1, 7);
    const err = (await client.chat.postMessage({ channel: 'C1', text: 'x' }).catch((e: unknown) => e)) as { code: string; retryAfter: number };
    expect(err.code).toBe(webApi.ErrorCode.RateLimitedError);
    expect(err.retryAfter).toBe(7);

    const f = fake.addUserFile({ name: 'p.png', mimetype: 'image/png', bytes: Buffer.from('secret'), user: 'U1' });
    expect((await request(f.url_private)).statusCode).toBe(403);
    const ok = await request(f.url_private, { headers: { authorization: `Bearer ${fake.botToken}` } });
    expect(await ok.body.text()).toBe('secret');

    const url = fake.newResponseUrl();
    const post = () => request(url, { method: 'POST', body: JSON.stringify({ text: 'x' }), headers: { 'content-type': 'application/json' } }).then((r) => r.statusCode);
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push(await post());
    expect(statuses).toEqual([200, 200, 200, 200, 200, 404]);
  });

  test('users.info: admin/owner/guest flags and tz as seeded; user_not_found; missing_scope without users:read', async () => {
    fake.addUser({ id: 'U0ADMIN', name: 'ada', is_admin: true, tz: 'Europe/Paris' });
    fake.addUser({ id: 'U0OWNER', name: 'olga', is_admin: true, is_owner: true, is_primary_owner: true });
    fake.addUser({ id: 'U0GUEST', name: 'gus', is_restricted: true, deleted: true });
    const admin = (await client.users.info({ user: 'U0ADMIN' })).user!;
    expect([admin.is_admin, admin.is_owner, admin.is_primary_owner, admin.is_restricted, admin.deleted, admin.tz]).toEqual([true, false, false, false, false, 'Europe/Paris']);
    expect([3600, 7200]).toContain(admin.tz_offset);
    const owner = (await client.users.info({ user: 'U0OWNER' })).user!;
    expect([owner.is_admin, owner.is_owner, owner.is_primary_owner]).toEqual([true, true, true]);
    const guest = (await client.users.info({ user: 'U0GUEST' })).user!;
    expect([guest.is_admin, guest.is_restricted, guest.deleted]).toEqual([false, true, true]);
    // Anyone else is an ordinary member (whoever runs a command is in the workspace), unless the fake is strict.
    const member = (await client.users.info({ user: 'U0MEMBER' })).user!;
    expect([member.is_admin, member.is_owner, member.is_restricted, member.deleted]).toEqual([false, false, false, false]);
    expect(await code(client.users.info({ user: 'not-a-user' }))).toBe('user_not_found');

    const scoped = await startFakeSlack({ scopes: ['chat:write', 'commands'], users: [{ id: 'U0ADMIN', name: 'ada', is_admin: true }], unseededUsers: 'not_found' });
    try {
      const c = new webApi.WebClient(scoped.botToken, { slackApiUrl: scoped.apiUrl, retryConfig: { retries: 0 }, logLevel: webApi.LogLevel.ERROR });
      const strict = await startFakeSlack({ unseededUsers: 'not_found' });
      const s = new webApi.WebClient(strict.botToken, { slackApiUrl: strict.apiUrl, retryConfig: { retries: 0 }, logLevel: webApi.LogLevel.ERROR });
      expect(await code(s.users.info({ user: 'U0NOBODY' }))).toBe('user_not_found');
      await strict.close();
      const err = (await c.users.info({ user: 'U0ADMIN' }).catch((e: unknown) => e)) as { data: { error: string; needed: string; provided: string } };
      expect(err.data).toMatchObject({ error: 'missing_scope', needed: 'users:read', provided: 'chat:write,commands' });
    } finally {
      await scoped.close();
    }
  });

  test('usergroups.list and usergroups.users.list: seeded groups, disabled ones hidden, no_such_subteam', async () => {
    fake.addUsergroup({ id: 'S0ART', handle: 'artists', name: 'Artists', users: ['U1', 'U2'] });
    fake.addUsergroup({ id: 'S0OLD', handle: 'old', name: 'Old', users: ['U3'], disabled: true });
    const listed = await client.usergroups.list({ include_users: true });
    expect(listed.usergroups!.map((g) => [g.id, g.handle, g.users, g.user_count])).toEqual([['S0ART', 'artists', ['U1', 'U2'], 2]]);
    expect((await client.usergroups.list({ include_disabled: true })).usergroups!.map((g) => g.id)).toEqual(['S0ART', 'S0OLD']);
    expect((await client.usergroups.users.list({ usergroup: 'S0ART' })).users).toEqual(['U1', 'U2']);
    expect(await code(client.usergroups.users.list({ usergroup: 'S0NONE' }))).toBe('no_such_subteam');
  });

  test('conversations.info: name and privacy of a channel, is_im for a DM, channel_not_found', async () => {
    fake.addChannel({ id: 'C0ART', name: 'art' });
    fake.addChannel({ id: 'C0SECRET', name: 'secret', is_private: true });
    const art = (await client.conversations.info({ channel: 'C0ART' })).channel!;
    expect([art.name, art.is_private, art.is_channel, art.is_im]).toEqual(['art', false, true, false]);
    const secret = (await client.conversations.info({ channel: 'C0SECRET' })).channel!;
    expect([secret.name, secret.is_private, secret.is_group]).toEqual(['secret', true, true]);
    expect((await client.conversations.info({ channel: 'DU0ADMIN' })).channel!.is_im).toBe(true);
    expect(await code(client.conversations.info({ channel: 'C0NOWHERE' }))).toBe('channel_not_found');
  });

  test('app_mention in a result’s thread, and conversations.replies reads the thread with its files', async () => {
    const received: { body: string }[] = [];
    const app = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push({ body });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    try {
      const driver = createSlackDriver({ eventsUrl: `http://127.0.0.1:${(app.address() as AddressInfo).port}/slack/events`, signingSecret: 's', fake });
      const parent = await client.chat.postMessage({ channel: 'C3', text: 'a cat' });
      const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(50, 1)]);
      await client.filesUploadV2({ channel_id: 'C3', thread_ts: parent.ts!, file_uploads: [{ file: png, filename: 'cat-1.png' }] });
      const { message } = await driver.mentionAs({ user: { id: 'U1' }, channel: 'C3', threadTs: parent.ts!, text: `<@${fake.botUserId}> make it night` });
      const event = (JSON.parse(received[0]!.body) as { event: Record<string, unknown> }).event;
      expect(event).toMatchObject({ type: 'app_mention', user: 'U1', channel: 'C3', thread_ts: parent.ts, ts: message.ts, text: `<@${fake.botUserId}> make it night` });

      // Asking with the mention's ts gives the whole thread: parent first, the result's file, the mention.
      const thread = await client.conversations.replies({ channel: 'C3', ts: message.ts });
      expect(thread.messages!.map((m) => [m.ts, m.files?.map((f) => f.name) ?? []])).toEqual([
        [parent.ts, []],
        [expect.any(String), ['cat-1.png']],
        [message.ts, []],
      ]);
      expect(thread.messages![0]).toMatchObject({ thread_ts: parent.ts, reply_count: 2 });
      const file = thread.messages![1]!.files![0]!;
      const bytes = await request(file.url_private!, { headers: { authorization: `Bearer ${fake.botToken}` } });
      expect(Buffer.from(await bytes.body.arrayBuffer())).toEqual(png);
      expect(await code(client.conversations.replies({ channel: 'C3', ts: '1.000000' }))).toBe('thread_not_found');
    } finally {
      await new Promise<void>((resolve) => app.close(() => resolve()));
    }
  });

  test('a modal opened from a button is submitted with its private_metadata and the inputs’ values', async () => {
    const received: Record<string, unknown>[] = [];
    const app = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push(JSON.parse(new URLSearchParams(body).get('payload')!) as Record<string, unknown>);
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    try {
      const driver = createSlackDriver({ eventsUrl: `http://127.0.0.1:${(app.address() as AddressInfo).port}/slack/events`, signingSecret: 's', fake });
      const result = await client.chat.postMessage({ channel: 'C4', text: 'r', blocks: [{ type: 'actions', elements: [{ type: 'button', action_id: 'edit', text: { type: 'plain_text', text: 'Edit' }, value: 'job1:2' }] }] });
      const click = await driver.clickButton({ user: { id: 'U1' }, message: fake.message('C4', result.ts!)!, actionId: 'edit' });
      const opened = await client.views.open({
        trigger_id: click.triggerId,
        view: {
          type: 'modal',
          callback_id: 'edit',
          private_metadata: JSON.stringify({ job: 'job1', image: 2 }),
          title: { type: 'plain_text', text: 'Edit' },
          submit: { type: 'plain_text', text: 'Go' },
          blocks: [{ type: 'input', block_id: 'what', label: { type: 'plain_text', text: 'What should change?' }, element: { type: 'plain_text_input', action_id: 'instruction' } }],
        },
      });
      await driver.submitView({ user: { id: 'U1' }, viewId: opened.view!.id!, values: { what: { any: driver.text('make it night') } } });
      const submission = received.at(-1) as { type: string; view: { callback_id: string; private_metadata: string; state: { values: unknown } } };
      expect(submission.type).toBe('view_submission');
      expect(submission.view.callback_id).toBe('edit');
      expect(JSON.parse(submission.view.private_metadata)).toEqual({ job: 'job1', image: 2 });
      expect(submission.view.state.values).toEqual({ what: { instruction: { type: 'plain_text_input', value: 'make it night' } } });
    } finally {
      await new Promise<void>((resolve) => app.close(() => resolve()));
    }
  });
});
