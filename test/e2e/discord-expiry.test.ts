/**
 * Results are never lost: a job that ends after the 15-minute interaction token (scaled down
 * here) is posted through the bot's channel endpoints, mentioning the requester, or by DM when
 * it was private; a token Discord refuses early is handled the same way; a job in flight when
 * the bot restarts is finished and delivered by the new process, without being replayed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { USERS, componentsOf, expectDiscordInvariants, startDiscordHarness, type DiscordHarness } from './discord-harness.ts';

describe('after the interaction token (scaled to 1.5 s)', () => {
  let h: DiscordHarness;
  beforeAll(async () => {
    h = await startDiscordHarness({ discord: { tokenLifetimeMs: 1_500 } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('posts a late result in the channel, mentioning the requester and replying to the placeholder', async () => {
    const i = await h.imagine('a slow sunrise [slow:2500]', { user: USERS.alice });
    const placeholder = await h.discord.waitFor(() => {
      const m = h.discord.originalMessage(i);
      return m && m.history.length > 0 ? m : undefined;
    }, 5_000, 'the first progress edit');
    const posted = await h.discord.waitFor(
      () => h.discord.channelMessages(i.channelId).find((m) => m.messageReference?.message_id === placeholder.id && m.attachments.length > 0),
      10_000,
      'the result in the channel',
    );
    expect(posted.interactionId).toBeUndefined();
    expect(posted.content).toContain(`<@${USERS.alice.id}>`);
    expect(posted.mentions).toEqual([USERS.alice.id]);
    expect(posted.content).toContain('a slow sunrise');
    expect(componentsOf(posted).map((c) => c.label)).toContain('Rerun');
    // The old placeholder points at the result instead of staying on "Generating…".
    await h.discord.waitFor(() => placeholder.content.includes(posted.id), 5_000, 'the placeholder pointer');
    expectDiscordInvariants(h.discord);
  });

  it('sends a late private result by DM, never to the channel', async () => {
    const i = await h.imagine('a slow secret [slow:2500]', { user: USERS.bob, values: { private: true } });
    const dmChannel = await h.discord.waitFor(() => h.discord.dmChannels.get(USERS.bob.id), 10_000, 'a DM channel');
    const dm = await h.discord.waitFor(() => h.discord.channelMessages(dmChannel).find((m) => m.attachments.length > 0), 10_000, 'the DM');
    expect(dm.content).toContain('Your private /imagine result');
    expect(dm.content).toContain('a slow secret');
    expect(h.discord.channelMessages(i.channelId).some((m) => m.content.includes('a slow secret') && (m.flags & 64) === 0)).toBe(false);
    expectDiscordInvariants(h.discord);
  });
});

describe('with a normal token', () => {
  let h: DiscordHarness;
  beforeAll(async () => {
    h = await startDiscordHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('falls back to the channel when Discord refuses the token earlier than expected (401 / 50027)', async () => {
    const i = await h.imagine('an early expiry [slow:800]', { user: USERS.alice });
    await h.discord.waitFor(() => (h.discord.originalMessage(i)?.history.length ?? 0) > 0, 5_000, 'the first progress edit');
    // Discord now considers the token 15 minutes old.
    i.createdAtMs -= 16 * 60_000;
    const posted = await h.discord.waitFor(
      () => h.discord.channelMessages(i.channelId).find((m) => m.content.includes('an early expiry') && m.attachments.length > 0 && !m.interactionId),
      10_000,
      'the result in the channel',
    );
    expect(posted.mentions).toEqual([USERS.alice.id]);
    expect(h.discord.requests.some((r) => r.error?.code === 50027)).toBe(true);
    expectDiscordInvariants(h.discord, [50027]);
  });

  it('finishes and delivers a job in flight across a restart, without running it twice', async () => {
    const runsBefore = h.runbase!.runs.size;
    const i = await h.imagine('survives a restart [slow:1500]', { user: USERS.bob });
    await h.discord.waitFor(() => h.runbase!.runs.size > runsBefore, 5_000, 'the provider run');
    await h.stopBot();
    await new Promise((r) => setTimeout(r, 1_700));
    await h.startBot();
    const m = await h.result(i, 15_000);
    expect(m.attachments).toHaveLength(1);
    expect(m.content).toContain('survives a restart');
    expect(h.runbase!.runs.size - runsBefore).toBe(1);
    // (the 50027s are the previous scenario's, provoked on purpose)
    expectDiscordInvariants(h.discord, [50027]);
  });
});
