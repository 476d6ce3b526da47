/**
 * Socket Mode: the same bot with SLACK_APP_TOKEN (and no signing secret) connects through
 * apps.connections.open on SLACK_API_URL and receives the same payloads over the WebSocket;
 * every envelope is acknowledged within Slack's 3 s.
 */
import sharp from 'sharp';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import type { FakeMessage } from '../fakes/slack/fake-slack.ts';
import { startSlackHarness, type SlackHarness } from './slack-harness.ts';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 120_000 });
const RESULT_TIMEOUT_MS = 60_000;
const alice = { id: 'UALICE', name: 'alice' };

let h: SlackHarness;
beforeAll(async () => {
  h = await startSlackHarness({ socketMode: true });
  await h.fake.socketConnected();
});
afterAll(async () => {
  await h?.close();
});

const tinyPng = () => sharp({ create: { width: 16, height: 16, channels: 3, background: '#88aa22' } }).png().toBuffer();
const isResult = (m: FakeMessage) => JSON.stringify(m.blocks ?? []).includes('imagine:delete:');

test('commands and clicks arrive over the WebSocket, are acked at once, and work like in HTTP mode', async () => {
  expect(h.fake.callsTo('apps.connections.open')).toHaveLength(1);
  const { form } = h.driver.payloads.slashCommand({ user: alice, channel: 'CSOCK', text: 'a moth at a lamp --ar 3:4' });
  const ack = await h.fake.socketSend('slash_commands', form);
  expect(ack.ackMs).toBeLessThan(3000);

  const result = await h.fake.waitFor(() => h.fake.messagesIn('CSOCK').find(isResult), RESULT_TIMEOUT_MS, 'result');
  expect(JSON.stringify(result.blocks)).toContain('a moth at a lamp');
  expect(h.fake.messagesIn('CSOCK').some((m) => m.files.length === 1)).toBe(true);

  const jobId = JSON.stringify(result.blocks).match(/imagine:delete:([A-Za-z0-9_-]+)/)![1]!;
  const { payload } = h.driver.payloads.blockActions({ user: alice, message: result, actionId: `imagine:rerun:${jobId}` });
  const clickAck = await h.fake.socketSend('interactive', payload);
  expect(clickAck.ackMs).toBeLessThan(3000);
  const rerun = await h.fake.waitFor(() => h.fake.messagesIn('CSOCK', result.ts).find(isResult), RESULT_TIMEOUT_MS, 'rerun result');
  expect(JSON.stringify(rerun.blocks)).toContain('Rerun');
});

test('/imagine alone opens the modal over Socket Mode too', async () => {
  const { form, triggerId } = h.driver.payloads.slashCommand({ user: alice, channel: 'CSOCK2', text: '' });
  const ack = await h.fake.socketSend('slash_commands', form);
  expect(ack.ackMs).toBeLessThan(3000);
  const open = await h.fake.waitFor(() => h.fake.callsTo('views.open').find((c) => c.args.trigger_id === triggerId), 5000, 'views.open');
  expect(open.response.ok).toBe(true);
});

test('a mention with an image arrives as an events_api envelope and is answered in its thread', async () => {
  const file = h.fake.addUserFile({ name: 'leaf.png', mimetype: 'image/png', bytes: await tinyPng(), user: alice.id });
  const message = h.fake.seedMessage({ channel: 'CSOCK3', user: alice.id, text: `<@${h.fake.botUserId}> this leaf in gold --model runblob-pro`, files: [file] });
  const ack = await h.fake.socketSend('events_api', h.driver.payloads.mention({ message }).body);
  expect(ack.ackMs).toBeLessThan(3000);
  const result = await h.fake.waitFor(() => h.fake.messagesIn('CSOCK3', message.ts).find(isResult), RESULT_TIMEOUT_MS, 'mention result');
  expect(JSON.stringify(result.blocks)).toContain('this leaf in gold');
});
