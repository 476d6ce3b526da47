/**
 * Cancel on Slack (docs/architecture.md "Cancel"): the placeholder carries a Cancel button while
 * the job runs; only the requester may use it. A job the provider has not accepted is never made
 * and fully refunded; one it accepted is charged and its images are not uploaded.
 */
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import type { FakeMessage } from '../fakes/slack/fake-slack.ts';
import { startSlackHarness, type SlackHarness } from './slack-harness.ts';

vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });
const alice = { id: 'UALICE', name: 'alice' };
const bob = { id: 'UBOB', name: 'bob' };
let h: SlackHarness;

beforeAll(async () => {
  // RunBlob: one request a minute, so a RunBlob job behind another waits for the budget (never sent).
  h = await startSlackHarness({ engineTiming: { rateLimits: { runbase: { requests: 1000, windowMs: 1000 }, runblob: { requests: 1, windowMs: 60_000, reserve: 0, windowPaddingMs: 0 } } } });
});
afterAll(async () => {
  await h?.close();
});

type Json = Record<string, unknown>;
const blocksText = (m: FakeMessage) => JSON.stringify(m.blocks ?? []);
const cancelIdOf = (m: FakeMessage): string | undefined =>
  (m.blocks as Json[] | undefined ?? []).flatMap((b) => (b.type === 'actions' ? (b.elements as Json[]).map((e) => String(e.action_id)) : [])).find((a) => a.startsWith('imagine:cancel:'));

function placeholderIn(channel: string): Promise<FakeMessage> {
  return h.fake.waitFor(() => h.fake.messagesIn(channel).find((m) => cancelIdOf(m) !== undefined), 10_000, `a placeholder with Cancel in ${channel}`);
}
function canceledIn(channel: string, ts: string): Promise<FakeMessage> {
  return h.fake.waitFor(() => {
    const m = h.fake.message(channel, ts);
    return m && blocksText(m).includes('Image canceled') ? m : undefined;
  }, 10_000, 'the canceled placeholder');
}
const used = async (userId: string) => (await h.bot.engine.quota({ platform: 'slack', userId })).used;

describe('Slack cancel', () => {
  test('before the provider accepted it: its place in the queue is shown; refused to others, then nothing made, nothing charged, nothing uploaded', async () => {
    await h.driver.slashCommand({ user: bob, channel: 'CCANCEL0', text: 'takes the only RunBlob request --model runblob-pro' });
    await h.fake.waitFor(() => (h.runblob.tasks.size === 1 ? true : undefined), 10_000, 'the first create');
    await h.driver.slashCommand({ user: alice, channel: 'CCANCEL1', text: 'never sent --n 2 --model runblob-pro' });
    const placeholder = await placeholderIn('CCANCEL1');
    expect(await used(alice.id)).toBe(2);
    const cancel = cancelIdOf(placeholder)!;
    await h.fake.waitFor(() => (/Queued: next in line, about \d+ (s|min)/.test(blocksText(h.fake.message('CCANCEL1', placeholder.ts)!)) ? true : undefined), 10_000, 'the queue position');

    const r0 = await h.driver.clickButton({ user: bob, message: placeholder, actionId: cancel });
    expect(r0.status).toBe(200);
    await h.fake.waitFor(() => h.fake.ephemerals.find((e) => e.user === bob.id && e.text.includes('can cancel it')), 10_000, 'the refusal');

    const r = await h.driver.clickButton({ user: alice, message: placeholder, actionId: cancel });
    expect(r.status).toBe(200);
    expect(r.ackMs).toBeLessThan(3_000);
    const m = await canceledIn('CCANCEL1', placeholder.ts);
    expect(blocksText(m)).toContain('not charged (2 units refunded)');
    expect(cancelIdOf(m)).toBeUndefined();
    expect([...h.runblob.tasks.values()].filter((t) => t.prompt === 'never sent')).toHaveLength(0);
    expect(h.runblob.tasks.size).toBe(1);
    expect(await used(alice.id)).toBe(0);
    expect(h.fake.callsTo('files.completeUploadExternal').filter((c) => c.args.channel_id === 'CCANCEL1')).toHaveLength(0);
  });

  test('after the provider accepted it: charged, said so, no image uploaded', async () => {
    const before = await used(bob.id);
    const created = h.runbase.runs.size;
    await h.driver.slashCommand({ user: bob, channel: 'CCANCEL2', text: 'accepted then canceled [slow:4000] --model runbase-2' });
    const placeholder = await placeholderIn('CCANCEL2');
    const jobId = cancelIdOf(placeholder)!.split(':')[2]!;
    await h.fake.waitFor(async () => ((await h.bot.engine.getJob(jobId))?.tasks[0]?.taskId ? true : undefined), 10_000, 'the task id');

    await h.driver.clickButton({ user: bob, message: placeholder, actionId: cancelIdOf(placeholder)! });
    const m = await canceledIn('CCANCEL2', placeholder.ts);
    expect(blocksText(m)).toContain('already started 1 image, which is paid for: 1 unit charged');
    expect(await used(bob.id)).toBe(before + 1);
    expect(h.runbase.runs.size).toBe(created + 1);
    expect(h.fake.callsTo('files.completeUploadExternal').filter((c) => c.args.channel_id === 'CCANCEL2')).toHaveLength(0);
  });
});
