/**
 * The buttons under a Discord result: Upscale (per image), Change ratio, Rerun, Delete. Each
 * click is acknowledged within 3 s, becomes a new job charged to the clicker and replies to the
 * clicked message; they keep working after a restart; refusals are private and specific.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODERATOR_PERMISSIONS, type FakeMessage, type FakeUser } from '../fakes/discord/index.ts';
import { USERS, componentsOf, customIdOf, expectDiscordInvariants, isFinal, startDiscordHarness, type DiscordHarness } from './discord-harness.ts';

let h: DiscordHarness;
let parent: FakeMessage;

beforeAll(async () => {
  h = await startDiscordHarness();
  parent = await h.result(await h.imagine('a castle on a hill', { values: { count: 2, model: 'runblob-standard', ratio: '3:2' } }));
});
afterAll(async () => {
  await h?.close();
});

/** The answer to a click: the new reply once final. */
async function clickResult(customId: string, user: FakeUser = USERS.bob, values?: string[]) {
  const click = await h.discord.clickComponent({ message: parent, customId, user, ...(values && { values }) });
  const m = await h.result(click);
  return { click, m };
}

describe('Discord buttons', () => {
  it('U2 upscales image 2 to 4K as a reply, charged to the clicker, switching to a 4K model and saying so', async () => {
    const before = h.runblob!.tasks.size;
    const quotaBefore = await h.bot.engine.quota({ platform: 'discord', userId: USERS.bob.id });
    const { click, m } = await clickResult(customIdOf(parent, { label: 'U2' }));
    expect(click.callbackType).toBe(5);
    const task = [...h.runblob!.tasks.values()].slice(before)[0]!;
    // The chosen image is the reference; the same prompt; 4K on a model that can.
    expect([task.model, task.quality, task.prompt, task.images.length]).toEqual(['pro', '4k', 'a castle on a hill', 1]);
    expect(m.messageReference?.message_id).toBe(parent.id);
    expect(m.content).toContain('Upscaled image 2 to 4K');
    expect(m.content).toMatch(/can't make 4K images, so this upscale uses Nano Banana Pro \(RunBlob\)/);
    expect(m.content).toContain(`<@${USERS.bob.id}>`);
    expect(m.attachments).toHaveLength(1);
    const quotaAfter = await h.bot.engine.quota({ platform: 'discord', userId: USERS.bob.id });
    expect(quotaAfter.used - quotaBefore.used).toBe(4);
    expectDiscordInvariants(h.discord);
  });

  it('Change ratio remakes the image at the chosen ratio', async () => {
    const before = h.runblob!.tasks.size;
    const select = customIdOf(parent, { prefix: 'imagine:ratio:' });
    const { m } = await clickResult(select, USERS.alice, ['9:16']);
    const task = [...h.runblob!.tasks.values()].slice(before)[0]!;
    expect([task.aspectRatio, task.images.length, task.model]).toEqual(['9:16', 1, 'standard']);
    expect(m.content).toContain('at 9:16');
    expect(m.messageReference?.message_id).toBe(parent.id);
  });

  it('Rerun repeats the job with new images', async () => {
    const before = h.runblob!.tasks.size;
    const { m } = await clickResult(customIdOf(parent, { label: 'Rerun' }), USERS.alice);
    const tasks = [...h.runblob!.tasks.values()].slice(before);
    expect(tasks.map((t) => [t.prompt, t.aspectRatio, t.images.length])).toEqual([
      ['a castle on a hill', '3:2', 0],
      ['a castle on a hill', '3:2', 0],
    ]);
    expect(m.attachments).toHaveLength(2);
    expect(m.content).toContain('Rerun');
  });

  it('keeps the buttons working after a restart between the post and the click', async () => {
    await h.restart();
    await h.discord.waitForBot();
    const { m } = await clickResult(customIdOf(parent, { label: 'U1' }), USERS.alice);
    expect(m.content).toContain('Upscaled image 1 to 4K');
    expect(m.attachments).toHaveLength(1);
    expectDiscordInvariants(h.discord);
  });

  it('answers a click on a vanished job privately, with what to do', async () => {
    const old = h.discord.seedBotMessage({
      content: 'an image from long ago',
      components: [{ type: 1, components: [{ type: 2, style: 2, label: 'Rerun', custom_id: 'imagine:rerun:ZZZZZZZZZZZZ' }] }],
    });
    const click = await h.discord.clickComponent({ message: old, customId: 'imagine:rerun:ZZZZZZZZZZZZ', user: USERS.bob });
    const answer = await h.discord.waitFor(
      () => [...h.discord.messages.values()].find((m) => m.interactionId === click.id && (m.flags & 64) !== 0 && m.content !== ''),
      5_000,
      'the private answer',
    );
    expect(answer.content).toContain('too old or was deleted');
    // Nothing public is left behind.
    expect(h.discord.originalMessage(click)?.deleted).toBe(true);
    expectDiscordInvariants(h.discord);
  });

  it('lets only the requester or a moderator delete a result', async () => {
    const own = await h.result(await h.imagine('delete me', { user: USERS.alice }));
    const del = customIdOf(own, { label: 'Delete' });

    const byOther = await h.discord.clickComponent({ message: own, customId: del, user: USERS.bob });
    const refusal = await h.discord.waitFor(
      () => [...h.discord.messages.values()].find((m) => m.interactionId === byOther.id && (m.flags & 64) !== 0),
      5_000,
      'the refusal',
    );
    expect(byOther.callbackType).toBe(6);
    expect(refusal.content).toContain(`Only <@${USERS.alice.id}>`);
    expect(own.deleted).toBe(false);

    const byMod = await h.discord.clickComponent({ message: own, customId: del, user: USERS.mod, permissions: MODERATOR_PERMISSIONS });
    await h.discord.waitFor(() => own.deleted, 5_000, 'deletion by a moderator');
    expect(byMod.callbackType).toBe(6);

    const mine = await h.result(await h.imagine('delete me too', { user: USERS.alice }));
    await h.discord.clickComponent({ message: mine, customId: customIdOf(mine, { label: 'Delete' }), user: USERS.alice });
    await h.discord.waitFor(() => mine.deleted, 5_000, 'deletion by the requester');
    expectDiscordInvariants(h.discord);
  });

  it('clicks on a private result stay private', async () => {
    const secret = await h.result(await h.imagine('a private owl', { values: { private: true } }));
    const click = await h.discord.clickComponent({ message: secret, customId: customIdOf(secret, { label: 'Rerun' }), user: USERS.alice });
    const m = await h.result(click);
    expect(m.flags & 64).toBe(64);
    expect(isFinal(m)).toBe(true);
    expect(componentsOf(m).length).toBeGreaterThan(0);
  });
});
