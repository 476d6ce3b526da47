/**
 * /history and /show on Discord: the requester's last jobs privately (prompt, model, when, link,
 * job id), and a job's images posted again with working buttons, also after a restart; a
 * private job only to its requester, privately.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MESSAGE_FLAG_EPHEMERAL, type FakeMessage, type FakeUser } from '../fakes/discord/index.ts';
import { USERS, customIdOf, expectDiscordInvariants, startDiscordHarness, type DiscordHarness } from './discord-harness.ts';

let h: DiscordHarness;
let publicResult: FakeMessage;
let publicId: string;
let privateId: string;

const jobIdOf = (m: FakeMessage) => customIdOf(m, { label: 'Delete' }).split(':')[2]!;

beforeAll(async () => {
  h = await startDiscordHarness();
  publicResult = await h.result(await h.imagine('a red kite over a beach', { values: { model: 'runblob-standard' }, user: USERS.alice }));
  publicId = jobIdOf(publicResult);
  privateId = jobIdOf(await h.result(await h.imagine('a secret garden', { values: { private: true }, user: USERS.alice })));
});
afterAll(async () => {
  await h?.close();
});

const show = (jobId: string, user: FakeUser = USERS.alice, more: { private?: boolean } = {}) =>
  h.discord.sendCommand({
    name: 'show',
    user,
    options: [{ name: 'job', type: 3, value: jobId }, ...(more.private ? [{ name: 'private', type: 5, value: true }] : [])],
  });

describe('Discord /history and /show', () => {
  it('result summaries show the job id', () => {
    expect(publicResult.content).toContain(`job ${publicId}`);
  });

  it('/history lists your last jobs privately, newest first, with ids and a link to the public message', async () => {
    const answer = await h.privateAnswer(await h.discord.sendCommand({ name: 'history', user: USERS.alice }));
    const lines = answer.content.split('\n');
    expect(lines[0]).toBe('Your last 2 jobs, newest first:');
    expect(lines[1]).toContain('a secret garden');
    expect(lines[1]).toContain(`job **${privateId}**`);
    expect(lines[1]).not.toContain('discord.com/channels'); // a private job has no public message
    expect(lines[2]).toContain('a red kite over a beach');
    expect(lines[2]).toContain('(RunBlob)');
    expect(lines[2]).toMatch(/^2\. \d{4}-\d\d-\d\d \d\d:\d\d UTC · /);
    expect(lines[2]).toContain(`job **${publicId}**`);
    expect(lines[2]).toContain(`https://discord.com/channels/${publicResult.guildId}/${publicResult.channelId}/${publicResult.id}`);
    // Someone else's history is their own.
    const bobs = await h.privateAnswer(await h.discord.sendCommand({ name: 'history', user: USERS.bob }));
    expect(bobs.content).toBe('You have no images yet. Run /imagine to make one.');
  });

  it('/show after a restart posts a public job again for anyone, with working buttons', async () => {
    await h.restart();
    await h.discord.waitForBot();
    const i = await show(publicId, USERS.bob);
    const shown = await h.result(i);
    expect(shown.flags & MESSAGE_FLAG_EPHEMERAL).toBe(0);
    expect(shown.attachments).toHaveLength(1);
    expect(shown.content).toContain('a red kite over a beach');
    expect(shown.content).toContain(`job ${publicId}`);
    // Its buttons act on the same job: Rerun makes a new job from it, charged to the clicker.
    const before = h.runblob!.tasks.size;
    const click = await h.discord.clickComponent({ message: shown, customId: customIdOf(shown, { label: 'Rerun' }), user: USERS.bob });
    const rerun = await h.result(click);
    expect(rerun.attachments).toHaveLength(1);
    expect([...h.runblob!.tasks.values()].slice(before).map((t) => t.prompt)).toEqual(['a red kite over a beach']);
    expect(rerun.messageReference?.message_id).toBe(shown.id);
    expectDiscordInvariants(h.discord);
  });

  it('/show of a private job: unknown to others, only privately to its requester', async () => {
    const byBob = await h.privateAnswer(await show(privateId, USERS.bob));
    expect(byBob.content).toContain(`There is no job "${privateId}" of yours`);
    const publicly = await h.privateAnswer(await show(privateId, USERS.alice));
    expect(publicly.content).toContain('can only be shown privately');
    const i = await show(privateId, USERS.alice, { private: true });
    const shown = await h.result(i);
    expect(shown.flags & MESSAGE_FLAG_EPHEMERAL).not.toBe(0);
    expect(shown.attachments).toHaveLength(1);
    expect(shown.content).toContain('a secret garden');
  });

  it('/show of an unknown id says how to find one', async () => {
    const answer = await h.privateAnswer(await show('NoSuchJob123', USERS.alice));
    expect(answer.content).toContain('/history lists your jobs');
  });
});
