/**
 * The guild directory (admin mentions) and the log-channel post, over the real @discordjs/rest
 * client against the fake Discord's REST.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { REST } from 'discord.js';
import { captureLogger } from '../../../integration/engine-harness.ts';
import { DiscordDelivery } from '../../../../src/platforms/discord/delivery.ts';
import { DIRECTORY_CACHE_MS, DIRECTORY_REFETCH_ON_MISS_MS, DiscordDirectories } from '../../../../src/platforms/discord/directory.ts';
import { DiscordMessages } from '../../../../src/platforms/discord/messages.ts';
import { startFakeDiscord, type FakeDiscord } from '../../../fakes/discord/index.ts';

let discord: FakeDiscord | undefined;
afterEach(async () => {
  await discord?.close();
  discord = undefined;
});

async function setUp() {
  discord = await startFakeDiscord();
  const rest = new REST({ api: discord.apiUrl }).setToken(discord.token);
  let now = 1_000_000;
  const directories = new DiscordDirectories(rest, () => now);
  const listCalls = () => discord!.requests.filter((r) => /^\/guilds\/\d+\/(channels|roles)$/.test(r.path)).length;
  return { discord, rest, directories, listCalls, advance: (ms: number) => (now += ms) };
}

describe('DiscordDirectories', () => {
  it('knows the guild\'s channels and roles, and keeps the lists briefly', async () => {
    const { discord, directories, listCalls, advance } = await setUp();
    const guild = directories.forGuild(discord.guildId);
    const role = discord.createRole({ name: 'Patrons' });
    expect(await guild.hasChannel(discord.channelId)).toBe(true);
    expect(await guild.hasRole!(role.id)).toBe(true);
    expect(await guild.hasChannel('123456789012345678')).toBe(false);
    expect(listCalls()).toBe(2);
    // Cached: asking again within the minute does not call Discord.
    expect(await guild.hasChannel(discord.channelId)).toBe(true);
    expect(listCalls()).toBe(2);
    // A channel created since: a miss on a list older than a few seconds fetches it again.
    const art = discord.addChannel({ name: 'art' });
    advance(DIRECTORY_REFETCH_ON_MISS_MS);
    expect(await guild.hasChannel(art.id)).toBe(true);
    expect(listCalls()).toBe(3);
    advance(DIRECTORY_CACHE_MS);
    expect(await guild.hasRole!(role.id)).toBe(true);
    expect(listCalls()).toBe(4);
  });

  it('asks for a member with GET /guilds/{id}/members/{user}', async () => {
    const { discord, directories } = await setUp();
    expect(await directories.forGuild(discord.guildId).hasMember('100000000000000002')).toBe(true);
    expect(discord.requests.some((r) => r.path === `/guilds/${discord.guildId}/members/100000000000000002`)).toBe(true);
    // An unknown guild's member is not there (404).
    expect(await directories.forGuild('999999999999999999').hasMember('100000000000000002')).toBe(false);
  });

  it('lets answers go once they are too old to use, as other guilds and users are asked about', async () => {
    const { discord, directories, advance } = await setUp();
    const guild = directories.forGuild(discord.guildId);
    for (let n = 0; n < 20; n++) await guild.hasMember(`1000000000000001${String(n).padStart(2, '0')}`);
    await guild.hasChannel(discord.channelId);
    expect(directories.kept).toBe(21);
    advance(DIRECTORY_CACHE_MS);
    await guild.hasRole!('123456789012345678');
    await guild.hasMember('100000000000000002');
    expect(directories.kept).toBe(2);
  });
});

describe('DiscordDelivery.notify', () => {
  it('posts in the channel without pinging anyone', async () => {
    const { discord, rest } = await setUp();
    const { log } = captureLogger();
    const delivery = new DiscordDelivery({ engine: { models: [], updateLocation: async () => {} } as never, log, messages: new DiscordMessages(rest) });
    await delivery.notify(discord.channelId, '<@100000000000000003> set daily units to 20 (asked by <@100000000000000001>)');
    const [posted] = discord.channelMessages(discord.channelId);
    expect(posted?.content).toBe('<@100000000000000003> set daily units to 20 (asked by <@100000000000000001>)');
    expect(posted?.mentions).toEqual([]);
    // Best effort: a channel the bot cannot post in is logged, not thrown.
    await expect(delivery.notify('999999999999999999', 'x')).resolves.toBeUndefined();
  });
});
