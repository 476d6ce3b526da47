/**
 * /imagine-admin on Discord end to end (docs/governance.md "Admin command"): the real discord.js
 * client, the real engine and store, against the fake Discord (roles, member permissions, DMs)
 * and the fake providers. What is asserted is what members see and what reaches the providers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { USAGE_TOP_MEMBERS, usageText } from '../../commands/index.ts';
import { sentenceFor } from '../../src/errors.ts';
import { DISCORD_FORMAT } from '../../src/platforms/discord/render.ts';
import { DISCORD_ADMINS } from '../../src/platforms/discord/interactions.ts';
import { Permission, type FakeInteraction, type FakeMessage, type FakeUser } from '../fakes/discord/index.ts';
import { USERS, expectDiscordInvariants, startDiscordHarness, type DiscordHarness } from './discord-harness.ts';

const carol: FakeUser = { id: '100000000000000004', username: 'carol', global_name: 'Carol' };

let h: DiscordHarness;
let art: string;
let general: string;
/** A result in the server, to reply to. */
let aResult: FakeMessage;
beforeAll(async () => {
  // Units per member per day where the server sets nothing: 4; servers may give up to 50.
  h = await startDiscordHarness({ env: { QUOTA_DAILY_UNITS: '4', QUOTA_MAX_DAILY_UNITS: '50' } });
  const mods = h.discord.createRole({ name: 'Mods', permissions: Permission.ManageGuild });
  h.discord.setMemberRoles(USERS.mod.id, [mods.id]);
  general = h.discord.channelId;
  art = h.discord.addChannel({ name: 'art' }).id;
});
afterAll(async () => {
  await h?.close();
});

/** Types /imagine-admin with `text`, like an admin, and returns the private answer. */
async function admin(text: string, user: FakeUser = USERS.mod, more: { where?: string; ignoreCommandVisibility?: boolean } = {}): Promise<string> {
  const i = await h.discord.sendCommand({ name: 'imagine-admin', user, options: text ? [{ name: 'action', type: 3, value: text }] : [], ...more });
  return (await h.privateAnswer(i)).content;
}

/** Images the providers were asked for so far. */
const providerJobs = () => (h.runbase?.requests.length ?? 0) + (h.runblob?.tasks.size ?? 0);

const refused = async (i: FakeInteraction) => (await h.privateAnswer(i)).content.replace(/^⚠️ /, '');

describe('/imagine-admin on Discord', () => {
  it('is registered for members with Manage Server, in servers only', () => {
    const registered = (h.discord.commands.global as { name: string; default_member_permissions?: string; contexts?: number[] }[] | undefined)?.find((c) => c.name === 'imagine-admin');
    expect(registered?.default_member_permissions).toBe(String(Permission.ManageGuild));
    expect(registered?.contexts).toEqual([0]);
  });

  it('refuses a member without Manage Server (even from a client that shows the command) and any DM, privately', async () => {
    expect(await admin('daily 50', USERS.alice, { ignoreCommandVisibility: true })).toBe(`⚠️ ${sentenceFor('NOT_ADMIN', { who: DISCORD_ADMINS })}`);
    expect(await admin('daily 50', USERS.mod, { where: 'dm', ignoreCommandVisibility: true })).toBe(`⚠️ ${sentenceFor('ADMIN_NEEDS_SERVER', { command: 'imagine-admin' })}`);
    // Nothing changed.
    expect(await admin('')).toContain("**Daily units per member**: 4 units (the bot's default)");
  });

  it('shows the settings summary, the help, and a sentence naming the mistake', async () => {
    const summary = await admin('show');
    expect(summary).toContain('**Channels**: /imagine works in every channel');
    expect(await admin('help')).toContain('• tier @role <units|unlimited|remove> — ');
    expect(await admin('daily lots')).toBe('⚠️ "daily lots" doesn\'t fit. Use /imagine-admin daily <units|default> (units per member per day (default: the bot\'s own)). Mention channels as #channel, roles as @role and members as @member.');
    expect(await admin('paint it black')).toMatch(/^⚠️ "paint" is not something \/imagine-admin knows/);
    expect(await admin('channels allow <#123456789012345678>')).toBe(`⚠️ ${sentenceFor('UNKNOWN_CHANNEL', { id: '123456789012345678' })}`);
    expect(await admin('daily 500')).toMatch(/^⚠️ The bot's operator allows at most 50/);
  });

  it('allow-lists a channel: a member elsewhere is refused privately and charged nothing; inside it works', async () => {
    expect(await admin(`channels allow <#${art}>`)).toBe(`Done: /imagine now works only in <#${art}>.`);
    const before = providerJobs();
    const outside = await h.imagine('a fox', { user: carol, channelId: general });
    expect(await refused(outside)).toBe(sentenceFor('CHANNEL_NOT_ALLOWED', { channels: [art] }));
    expect(providerJobs()).toBe(before);
    expect((await h.bot.engine.quota({ platform: 'discord', userId: carol.id, scope: h.discord.guildId })).used).toBe(0);
    const inside = await h.imagine('a fox', { user: carol, channelId: art });
    aResult = await h.result(inside);
    expect(aResult.attachments).toHaveLength(1);
    expect(await admin('channels all')).toBe('Done: /imagine now works in every channel.');
  });

  it('sets a role tier: a member with the role gets it, and is refused above it; others keep the daily units', async () => {
    const patrons = h.discord.createRole({ name: 'Patrons' });
    h.discord.setMemberRoles(USERS.bob.id, [patrons.id]);
    expect(await admin(`tier <@&${patrons.id}> 6`)).toBe(`Done: members with <@&${patrons.id}> now get 6 units per day (the highest of a member's tiers applies).`);
    // 2K = 2 units: 3 of them is 6 units, more than the daily 4, within the tier.
    const within = await h.imagine('a lighthouse', { user: USERS.bob, values: { resolution: '2K', count: 3 } });
    expect((await h.result(within)).attachments).toHaveLength(3);
    const before = providerJobs();
    const above = await h.imagine('one more', { user: USERS.bob });
    expect(await refused(above)).toMatch(/^You're out of image quota for today: this needs 1 unit and you have 0 units left/);
    expect(providerJobs()).toBe(before);
    // Without the role: 6 units is more than the daily 4.
    const plain = await h.imagine('a lighthouse', { user: USERS.alice, values: { resolution: '2K', count: 3 } });
    expect(await refused(plain)).toMatch(/^You're out of image quota for today: this needs 6 units and you have 4 units left/);
    expect(providerJobs()).toBe(before);
  });

  it('adds a filter word: a prompt with it (upper-case, accented) is refused and never reaches a provider', async () => {
    expect(await admin('filter add chateau')).toBe('Done: added "chateau" to the prompt filter (1 entry now).');
    const before = providerJobs();
    const i = await h.imagine('a CHÂTEAU at night', { user: USERS.alice });
    expect(await refused(i)).toBe(sentenceFor('PROMPT_FILTERED', {}));
    expect(providerJobs()).toBe(before);
    expect(await admin('filter list')).toContain('• chateau');
  });

  it('the server\'s rules apply to a reply that refines a result too: a filtered one is refused by DM, never sent', async () => {
    const before = providerJobs();
    const sent = await h.discord.postUserMessage({ user: USERS.alice, content: `<@${h.discord.botUser.id}> turn it into a Château`, replyTo: aResult.id, channelId: art });
    expect(sent.dispatched).toBe(true);
    const dm = await h.discord.waitFor(() => [...h.discord.messages.values()].find((m) => !m.guildId && m.content.includes(sentenceFor('PROMPT_FILTERED', {}))), 8_000, 'the refusal by DM');
    expect(dm.content).toContain(sentenceFor('PROMPT_FILTERED', {}));
    expect(providerJobs()).toBe(before);
  });

  it('blocks and unblocks a member, grants units and resets a day', async () => {
    expect(await admin(`block <@${carol.id}>`)).toBe(`Done: <@${carol.id}> is blocked from making images here. Blocked now: <@${carol.id}>.`);
    const blocked = await h.imagine('a fox', { user: carol });
    expect(await refused(blocked)).toBe(sentenceFor('USER_BLOCKED', {}));
    expect(await admin(`unblock <@!${carol.id}>`)).toBe(`Done: <@${carol.id}> may make images here again. Blocked now: nobody.`);

    // Bob used his 6 tier units: a grant of 2 lets him make one more 2K image today.
    expect(await admin(`grant <@${USERS.bob.id}> 2`)).toBe(`Done: gave <@${USERS.bob.id}> 2 extra units for today.`);
    const granted = await h.imagine('granted', { user: USERS.bob, values: { resolution: '2K' } });
    expect((await h.result(granted)).attachments).toHaveLength(1);
    expect(await admin(`reset <@${USERS.bob.id}>`)).toBe(`Done: <@${USERS.bob.id}>'s day starts over; nothing is counted as used today.`);
    const after = await h.imagine('after reset', { user: USERS.bob });
    expect((await h.result(after)).attachments).toHaveLength(1);
  });

  it('reads usage (what the engine reports for this server, today and this month) and the audit log', async () => {
    // The figures are the usage ledger's (src/engine/governance); the command shows its report.
    const scope = `discord:${h.discord.guildId}` as const;
    expect(await admin('usage')).toBe(usageText(await h.bot.engine.governance.usage(scope, 'day', USAGE_TOP_MEMBERS), DISCORD_FORMAT));
    expect(await admin('usage today')).toMatch(/^\*\*Usage today \(\d{4}-\d\d-\d\d, UTC\)\*\*\nTotal: \d+ images?, \d+ units?, \$\d+\.\d\d/);
    expect(await admin('usage month')).toBe(usageText(await h.bot.engine.governance.usage(scope, 'month', USAGE_TOP_MEMBERS), DISCORD_FORMAT));
    const audit = await admin('audit');
    expect(audit).toContain(`<@${USERS.mod.id}>`);
    expect(audit).toContain('filter refusal');
    // Newest first: the reset was the last change.
    expect(audit.split('\n')[1]).toMatch(/reset/);
    expectDiscordInvariants(h.discord);
  });
});

describe('/imagine-admin over HTTP interactions (DISCORD_PUBLIC_KEY)', () => {
  let hh: DiscordHarness;
  beforeAll(async () => {
    hh = await startDiscordHarness({ interactions: 'http', env: { QUOTA_DAILY_UNITS: '4' } });
    const mods = hh.discord.createRole({ name: 'Mods', permissions: Permission.ManageGuild });
    hh.discord.setMemberRoles(USERS.mod.id, [mods.id]);
  });
  afterAll(async () => {
    await hh?.close();
  });

  const say = async (text: string, user: FakeUser, more: { ignoreCommandVisibility?: boolean } = {}) =>
    (await hh.privateAnswer(await hh.discord.sendCommand({ name: 'imagine-admin', user, options: [{ name: 'action', type: 3, value: text }], ...more }))).content;

  it('checks the member\'s permissions and applies a change the next /imagine obeys', async () => {
    expect(await say('daily 40', USERS.alice, { ignoreCommandVisibility: true })).toBe(`⚠️ ${sentenceFor('NOT_ADMIN', { who: DISCORD_ADMINS })}`);
    expect(await say('daily 1', USERS.mod)).toBe('Done: members now get 1 unit per day.');
    const i = await hh.imagine('two foxes', { user: USERS.alice, values: { count: 2 } });
    expect((await hh.privateAnswer(i)).content).toMatch(/^⚠️ You're out of image quota for today: this needs 2 units and you have 1 unit left/);
    expectDiscordInvariants(hh.discord);
  });
});
