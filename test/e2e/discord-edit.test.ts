/**
 * Edit, Vary, Remix and reply to refine on Discord end to end (issue 11): the real discord.js
 * client against the fake Discord (modals: callback type 9 and MODAL_SUBMIT; MESSAGE_CREATE
 * with GUILD_MESSAGES) and the fake Runbase, whose recorded requests show which image each job
 * got as its reference. Every job is charged once, to whoever clicked, submitted or replied.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeMessage, FakeUser } from '../fakes/discord/index.ts';
import type { OpenModal } from '../fakes/discord/server.ts';
import { USERS, customIdOf, expectDiscordInvariants, startDiscordHarness, type DiscordHarness } from './discord-harness.ts';

let h: DiscordHarness;
let parent: FakeMessage;
let parentJob: string;

const jobIdOf = (m: FakeMessage) => customIdOf(m, { prefix: 'imagine:delete:' }).split(':')[2]!;
const used = async (user: FakeUser) => (await h.bot.engine.quota({ platform: 'discord', userId: user.id })).used;
const imageUrl = async (jobId: string, index: number) => (await h.bot.engine.getJob(jobId))!.tasks[index]!.image!.sourceUrl;
const runsFor = (prompt: string) => [...h.runbase!.runs.values()].filter((r) => r.prompt === prompt);

/** Clicks a form button on `message`, checks the modal, fills it in and returns the finished reply. */
async function viaForm(message: FakeMessage, customId: string, user: FakeUser, fill: (modal: OpenModal) => string) {
  const click = await h.discord.clickComponent({ message, customId, user });
  await waitUntil(() => click.callbackType === 9);
  const modal = click.modal!;
  expect(modal.custom_id).toBe(customId);
  const submit = await h.discord.submitModal({ interaction: click, user, values: { text: fill(modal) } });
  return { modal, submit, m: await h.result(submit) };
}

async function waitUntil<T>(check: () => T | undefined | false, timeoutMs = 8000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const textInput = (modal: OpenModal) => modal.components[0]!.component as Record<string, unknown>;

beforeAll(async () => {
  h = await startDiscordHarness();
  parent = await h.result(await h.imagine('a quiet harbour', { values: { count: 2, model: 'runbase-pro', ratio: '4:3' } }));
  parentJob = jobIdOf(parent);
});
afterAll(async () => {
  await h?.close();
});

describe('Discord Edit, Vary, Remix', () => {
  it('shows U, V and E per image and Rerun, Remix, Delete, within 5 rows', () => {
    const labels = parent.components.map((row) => ((row.components ?? []) as Record<string, unknown>[]).map((c) => c.label ?? c.type));
    expect(labels.slice(0, 2)).toEqual([
      ['U1', 'U2', 'V1', 'V2'],
      ['E1', 'E2', 'Rerun', 'Remix', 'Delete'],
    ]);
    expect(parent.components.length).toBeLessThanOrEqual(5);
  });

  it('Edit chains two deep: each edit starts from the image it was clicked on, replies to it, charged to the submitter', async () => {
    const bobBefore = await used(USERS.bob);
    const { modal, m: first } = await viaForm(parent, customIdOf(parent, { label: 'E2' }), USERS.bob, () => 'make the sky purple');
    expect(modal.title).toBe('Edit image 2');
    expect(first.messageReference?.message_id).toBe(parent.id);
    expect(first.content).toContain('Edited image 2');
    expect(first.content).toContain(`<@${USERS.bob.id}>`);
    expect(first.attachments).toHaveLength(1);
    const [run1] = runsFor('make the sky purple');
    expect(run1!.input.image_urls).toEqual([await imageUrl(parentJob, 1)]);
    expect(run1!.aspectRatio).toBe('4:3');
    expect(await used(USERS.bob)).toBe(bobBefore + 1);

    const aliceBefore = await used(USERS.alice);
    const { m: second } = await viaForm(first, customIdOf(first, { label: 'Edit' }), USERS.alice, () => 'add a lighthouse');
    expect(second.messageReference?.message_id).toBe(first.id);
    expect(runsFor('add a lighthouse')[0]!.input.image_urls).toEqual([await imageUrl(jobIdOf(first), 0)]);
    expect(runsFor('add a lighthouse')).toHaveLength(1);
    expect(await used(USERS.alice)).toBe(aliceBefore + 1);
    expectDiscordInvariants(h.discord);
  });

  it('Vary: same prompt from that image, one job per click, for the clicker', async () => {
    const before = await used(USERS.bob);
    const click = await h.discord.clickComponent({ message: parent, customId: customIdOf(parent, { label: 'V1' }), user: USERS.bob });
    const m = await h.result(click);
    expect(m.content).toContain('Varied image 1');
    expect(m.messageReference?.message_id).toBe(parent.id);
    const varied = runsFor('a quiet harbour').filter((r) => ((r.input.image_urls as string[] | undefined) ?? []).length > 0);
    expect(varied).toHaveLength(2);
    for (const r of varied) expect(r.input.image_urls).toEqual([await imageUrl(parentJob, 0)]);
    expect(await used(USERS.bob)).toBe(before + 2);
  });

  it('Remix: the modal is prefilled with the prompt and its flags; the changed text runs', async () => {
    const { m } = await viaForm(parent, customIdOf(parent, { label: 'Remix' }), USERS.alice, (modal) => {
      const value = String(textInput(modal).value);
      expect(value).toBe('a quiet harbour --model runbase-pro --ar 4:3 --res 1K --n 2');
      return value.replace('a quiet harbour', 'a busy harbour').replace('--n 2', '--n 1');
    });
    expect(m.content).toContain('Remix');
    expect(runsFor('a busy harbour')).toHaveLength(1);
    expect(runsFor('a busy harbour')[0]!.aspectRatio).toBe('4:3');
  });

  it('a form opened before a restart is submitted after it', async () => {
    const click = await h.discord.clickComponent({ message: parent, customId: customIdOf(parent, { label: 'E1' }), user: USERS.alice });
    await waitUntil(() => click.callbackType === 9);
    await h.restart();
    await h.discord.waitForBot();
    const m = await h.result(await h.discord.submitModal({ interaction: click, user: USERS.alice, values: { text: 'at night' } }));
    expect(m.content).toContain('Edited image 1');
    expect(runsFor('at night')[0]!.input.image_urls).toEqual([await imageUrl(parentJob, 0)]);
  });
});

describe('Discord reply to refine', () => {
  const botMention = () => `<@${h.discord.botUser.id}>`;
  /** The bot's finished answer to a user's message: a reply to it with the image. */
  const answerTo = (messageId: string) =>
    waitUntil(() => [...h.discord.messages.values()].find((m) => m.messageReference?.message_id === messageId && m.attachments.length > 0 && !m.deleted), 15_000);

  it('a reply mentioning the bot edits the result ("2:" picks image 2), charged to the author', async () => {
    const before = await used(USERS.bob);
    const sent = await h.discord.postUserMessage({ user: USERS.bob, content: `${botMention()} 2: add a red canoe`, replyTo: parent.id });
    expect(sent.dispatched).toBe(true);
    const m = await answerTo(sent.message.id);
    expect(m.content).toContain('Edited image 2');
    expect(m.content).toContain(`<@${USERS.bob.id}>`);
    expect(runsFor('add a red canoe')[0]!.input.image_urls).toEqual([await imageUrl(parentJob, 1)]);
    expect(runsFor('add a red canoe')).toHaveLength(1);
    expect(await used(USERS.bob)).toBe(before + 1);

    // The edit's own message is a result too: replying to it refines the edit, after a restart too.
    await h.restart();
    await h.discord.waitForBot();
    const again = await h.discord.postUserMessage({ user: USERS.alice, content: `${botMention()} make it winter`, replyTo: m.id, replyPing: false });
    await answerTo(again.message.id);
    expect(runsFor('make it winter')[0]!.input.image_urls).toEqual([await imageUrl(jobIdOf(m), 0)]);
    expectDiscordInvariants(h.discord);
  });

  it('replies without a mention, or to other messages, are ignored; a bare mention is answered privately by DM', async () => {
    const runsBefore = h.runbase!.runs.size;
    // A reply pings the bot by default (it is the replied-to author), but says nothing to it: ignored.
    await h.discord.postUserMessage({ user: USERS.bob, content: 'nice picture', replyTo: parent.id });
    const other = h.discord.seedBotMessage({ content: 'not a result', components: [] });
    await h.discord.postUserMessage({ user: USERS.bob, content: `${botMention()} make it red`, replyTo: other.id });
    const bare = (await h.discord.postUserMessage({ user: USERS.bob, content: botMention(), replyTo: parent.id })).message;
    const dm = await waitUntil(() => [...h.discord.messages.values()].find((m) => !m.guildId && m.content.includes('mention me with what should change')));
    expect(dm.channelId).not.toBe(parent.channelId);
    await new Promise((r) => setTimeout(r, 300));
    expect(h.runbase!.runs.size).toBe(runsBefore);
    expect([...h.discord.messages.values()].some((m) => m.messageReference?.message_id === bare.id)).toBe(false);
  });
});
