/**
 * Cancel on Discord (docs/architecture.md "Cancel"): the placeholder carries a Cancel button while
 * the job runs; the requester or a member who can manage messages may use it. A job not yet
 * accepted by the provider is never sent and fully refunded; one accepted is charged and its
 * images are not posted. Others are refused privately.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAST_TIMING } from '../integration/engine-harness.ts';
import { MODERATOR_PERMISSIONS, type FakeInteraction, type FakeMessage } from '../fakes/discord/index.ts';
import { USERS, componentsOf, customIdOf, expectDiscordInvariants, startDiscordHarness, type DiscordHarness } from './discord-harness.ts';

let h: DiscordHarness;

beforeAll(async () => {
  // RunBlob: one request a minute, so a second RunBlob job waits for the budget (never sent).
  h = await startDiscordHarness({
    timing: { ...FAST_TIMING, deadlineMs: 20_000, rateLimits: { ...FAST_TIMING.rateLimits, runblob: { requests: 1, windowMs: 60_000, reserve: 0, windowPaddingMs: 0 } } },
  });
});
afterAll(async () => {
  await h?.close();
});

/** The placeholder once it shows the Cancel button. */
function placeholderWithCancel(i: FakeInteraction): Promise<FakeMessage> {
  return h.discord.waitFor(() => {
    const m = h.discord.originalMessage(i);
    return m && componentsOf(m).some((c) => c.label === 'Cancel') ? m : undefined;
  }, 5_000, 'a placeholder with Cancel');
}

/** The original response once it says the job was canceled. */
function canceledMessage(i: FakeInteraction): Promise<FakeMessage> {
  return h.discord.waitFor(() => {
    const m = h.discord.originalMessage(i);
    return m?.content.includes('Image canceled') ? m : undefined;
  }, 8_000, 'the canceled message');
}

const used = async (userId: string) => (await h.bot.engine.quota({ platform: 'discord', userId })).used;

describe('Discord cancel', () => {
  it('before the provider accepted it: nothing is sent, nothing charged, no image posted; others are refused privately', async () => {
    await h.imagine('takes the only RunBlob request', { values: { model: 'runblob-pro' }, user: USERS.bob });
    await h.discord.waitFor(() => (h.runblob!.tasks.size === 1 ? true : undefined), 5_000, 'the first create');
    const i = await h.imagine('waits for the budget', { values: { model: 'runblob-pro', count: 2 }, user: USERS.alice });
    const placeholder = await placeholderWithCancel(i);
    expect(await used(USERS.alice.id)).toBe(2);
    // The placeholder says where the job stands behind the binding budget, and about how long.
    await h.discord.waitFor(() => (/Queued: next in line, about \d+ (s|min)/.test(h.discord.originalMessage(i)?.content ?? '') ? true : undefined), 5_000, 'the queue position');
    const third = await h.imagine('behind it', { values: { model: 'runblob-pro' }, user: USERS.mod });
    const thirdText = await h.discord.waitFor(() => {
      const content = h.discord.originalMessage(third)?.content ?? '';
      return /Queued: 1 job ahead, about \d+ (s|min)/.test(content) ? content : undefined;
    }, 5_000, 'the third job one behind');
    expect(thirdText).toContain('behind it');
    const cancel = customIdOf(placeholder, { label: 'Cancel' });

    // Someone else: refused privately, the job goes on.
    const byBob = await h.discord.clickComponent({ message: placeholder, customId: cancel, user: USERS.bob });
    const refusal = await h.discord.waitFor(() => [...h.discord.messages.values()].find((m) => m.interactionId === byBob.id && m.content.includes('can cancel it')), 5_000, 'the refusal');
    expect(refusal.content).toContain(`<@${USERS.alice.id}>`);

    await h.discord.clickComponent({ message: placeholder, customId: cancel, user: USERS.alice });
    const m = await canceledMessage(i);
    expect(m.attachments).toHaveLength(0);
    expect(m.content).toContain('not charged (2 units refunded)');
    expect(componentsOf(m).some((c) => c.label === 'Cancel')).toBe(false);
    expect([...h.runblob!.tasks.values()].filter((t) => t.prompt === 'waits for the budget')).toHaveLength(0);
    expect(await used(USERS.alice.id)).toBe(0);
    expectDiscordInvariants(h.discord);
  });

  it('after the provider accepted it (by a moderator): charged, said so, no image posted', async () => {
    const before = await used(USERS.alice.id);
    const created = h.runbase!.counts.create;
    const i = await h.imagine('accepted then canceled [slow:3000]', { values: { model: 'runbase-2' }, user: USERS.alice });
    const placeholder = await placeholderWithCancel(i);
    await h.discord.waitFor(() => (h.runbase!.counts.create > created ? true : undefined), 5_000, 'the create');
    const jobId = customIdOf(placeholder, { label: 'Cancel' }).split(':')[2]!;
    await h.discord.waitFor(async () => ((await h.bot.engine.getJob(jobId))?.tasks[0]?.taskId ? true : undefined), 5_000, 'the task id');

    // While generating, the placeholder measures it against the usual time of this model and size.
    await h.discord.waitFor(() => (/Generating your image… (▰*▱* about \d+ s left|\(longer than the usual \d+ s\))/.test(h.discord.originalMessage(i)?.content ?? '') ? true : undefined), 5_000, 'the generating estimate');
    await h.discord.clickComponent({ message: placeholder, customId: customIdOf(placeholder, { label: 'Cancel' }), user: USERS.mod, permissions: MODERATOR_PERMISSIONS });
    const m = await canceledMessage(i);
    expect(m.attachments).toHaveLength(0);
    expect(m.content).toContain('already started 1 image, which is paid for: 1 unit charged');
    expect(await used(USERS.alice.id)).toBe(before + 1);
    expect(h.runbase!.counts.create).toBe(created + 1);
    expectDiscordInvariants(h.discord);
  });
});
