/** The fake Slack answers like Slack: checked with the real @slack/web-api client. */
import { webApi } from '@slack/bolt';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startFakeSlack, type FakeSlack } from './fake-slack.ts';

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
});
