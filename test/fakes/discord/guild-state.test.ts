/**
 * The fake Discord's guild state, checked with the real discord.js client: roles and members'
 * permissions on interactions, channel types, DMs, command registration with
 * default_member_permissions / contexts (and the client-side visibility the driver enforces),
 * reactions.
 */
import { describe, expect, it } from 'vitest';
import { ChannelType as DjsChannelType, PermissionFlagsBits, Routes, type Interaction } from 'discord.js';
import { ALL_PERMISSIONS, ChannelType, MEMBER_PERMISSIONS, Permission } from './index.ts';
import { snowflake } from './snowflake.ts';
import { startWithClient } from './test-client.ts';

const start = startWithClient;

const bob = { id: '100000000000000002', username: 'bob' };

describe('fake Discord: roles and permissions', () => {
  it('member.roles and member.permissions follow the member’s roles; ADMINISTRATOR and the owner get everything', async () => {
    const guildId = snowflake();
    const { discord, client, seen } = await start({ guilds: [{ id: guildId, name: 'G', ownerId: '100000000000000009', channels: [{ id: snowflake(), name: 'general' }] }] });
    const mods = discord.createRole({ name: 'Mods', permissions: Permission.ManageGuild });
    const admins = discord.createRole({ name: 'Admins', permissions: Permission.Administrator });
    // The bot hears about new roles (GUILD_ROLE_CREATE) and can list them (GET /guilds/{id}/roles).
    await discord.waitFor(() => client.guilds.cache.get(guildId)?.roles.cache.has(admins.id), 2000, 'GUILD_ROLE_CREATE');
    const fetched = await client.guilds.cache.get(guildId)!.roles.fetch();
    expect([...fetched.values()].map((r) => r.name).sort()).toEqual(['@everyone', 'Admins', 'Mods']);

    discord.setMemberRoles(bob.id, [mods.id]);
    await discord.sendCommand({ name: 'imagine', user: bob });
    discord.setMemberRoles(bob.id, [admins.id]);
    await discord.sendCommand({ name: 'imagine', user: bob });
    await discord.sendCommand({ name: 'imagine' });
    await discord.sendCommand({ name: 'imagine', user: { id: '100000000000000009', username: 'owner' } });
    await discord.waitFor(() => seen.length === 4, 2000, 'four interactions');
    const [asMod, asAdmin, plain, owner] = seen.map((i) => i as Interaction & { member: { roles: unknown } });
    expect(asMod!.memberPermissions!.has(PermissionFlagsBits.ManageGuild)).toBe(true);
    expect(asMod!.memberPermissions!.has(PermissionFlagsBits.ManageRoles)).toBe(false);
    expect([...asMod!.memberPermissions!.toArray()].length).toBeGreaterThan(1);
    expect(asAdmin!.memberPermissions!.bitfield).toBe(ALL_PERMISSIONS);
    expect(plain!.memberPermissions!.bitfield).toBe(MEMBER_PERMISSIONS);
    expect(owner!.memberPermissions!.bitfield).toBe(ALL_PERMISSIONS);
    const raw = [...discord.interactions.values()].map((i) => i.payload.member as { roles: string[] });
    expect(raw.map((m) => m.roles)).toEqual([[mods.id], [admins.id], [], []]);
    // app_permissions: what the bot may do here.
    expect(plain!.appPermissions!.has(PermissionFlagsBits.SendMessages)).toBe(true);
  });

  it('channels carry their type in GUILD_CREATE, GET /channels/{id} and interactions; threads come as threads', async () => {
    const guildId = snowflake();
    const [text, voice, category, news, forum] = [snowflake(), snowflake(), snowflake(), snowflake(), snowflake()];
    const { discord, client, seen } = await start({
      guilds: [
        {
          id: guildId,
          name: 'G',
          channels: [
            { id: text, name: 'general', parentId: category },
            { id: voice, name: 'voice', type: ChannelType.GuildVoice },
            { id: category, name: 'cat', type: ChannelType.GuildCategory },
            { id: news, name: 'news', type: ChannelType.GuildAnnouncement },
            { id: forum, name: 'forum', type: ChannelType.GuildForum },
          ],
        },
      ],
    });
    const guild = client.guilds.cache.get(guildId)!;
    expect([text, voice, category, news, forum].map((id) => guild.channels.cache.get(id)?.type)).toEqual([
      DjsChannelType.GuildText,
      DjsChannelType.GuildVoice,
      DjsChannelType.GuildCategory,
      DjsChannelType.GuildAnnouncement,
      DjsChannelType.GuildForum,
    ]);
    expect(guild.channels.cache.get(text)!.parentId).toBe(category);
    const thread = discord.addChannel({ name: 'a thread', type: ChannelType.PublicThread, parentId: text });
    await discord.waitFor(() => client.channels.cache.get(thread.id), 2000, 'THREAD_CREATE');
    expect(client.channels.cache.get(thread.id)!.isThread()).toBe(true);
    const rest = (await client.rest.get(Routes.channel(forum))) as { type: number; name: string };
    expect([rest.type, rest.name]).toEqual([15, 'forum']);
    const missing = await client.rest.get(Routes.channel(snowflake())).catch((e: { code: number }) => e.code);
    expect(missing).toBe(10003);
    await discord.sendCommand({ name: 'imagine', channelId: thread.id });
    await discord.waitFor(() => seen.length === 1, 2000, 'the interaction');
    expect(seen[0]!.channel?.type).toBe(DjsChannelType.PublicThread);
  });

  it('a DM interaction has no guild, a `user` instead of `member`, context 1 and a DM channel', async () => {
    const { discord, seen } = await start();
    const i = await discord.sendCommand({ name: 'imagine', where: 'dm', user: bob });
    await discord.waitFor(() => seen.length === 1, 2000, 'the interaction');
    expect(i.payload.guild_id).toBeUndefined();
    expect(i.payload.member).toBeUndefined();
    expect(i.payload).toMatchObject({ user: { id: bob.id }, context: 1, channel: { type: 1 } });
    expect(seen[0]!.inGuild()).toBe(false);
    expect(seen[0]!.user.id).toBe(bob.id);
  });
});

describe('fake Discord: command registration and who may see a command', () => {
  it('keeps default_member_permissions, contexts and integration_types and returns them as Discord does', async () => {
    const { discord, client } = await start();
    const saved = (await client.rest.put(Routes.applicationCommands(discord.applicationId), {
      body: [
        { name: 'imagine', description: 'make an image' },
        { name: 'imagine-admin', description: 'govern', default_member_permissions: String(PermissionFlagsBits.ManageGuild), contexts: [0], integration_types: [0] },
      ],
    })) as { name: string; default_member_permissions: string | null; contexts: number[] | null; integration_types: number[]; dm_permission: boolean }[];
    expect(saved.map((c) => [c.name, c.default_member_permissions, c.contexts, c.integration_types, c.dm_permission])).toEqual([
      ['imagine', null, [0, 1, 2], [0], true],
      ['imagine-admin', '32', [0], [0], false],
    ]);
    expect(discord.registeredCommands().map((c) => c.default_member_permissions)).toEqual([null, '32']);

    // Not a bitfield: 400 50035 as Discord answers.
    const bad = await client.rest
      .put(Routes.applicationCommands(discord.applicationId), { body: [{ name: 'x', description: 'x', default_member_permissions: 'manage' }] })
      .catch((e: { code: number; rawError: { errors: unknown } }) => e);
    expect(bad).toMatchObject({ code: 50035, rawError: { errors: { 0: { default_member_permissions: { _errors: [{ code: 'NUMBER_TYPE_COERCE' }] } } } } });
    expect(discord.registeredCommands().map((c) => c.name)).toEqual(['imagine', 'imagine-admin']);
  });

  it('the driver refuses to send a command the member could not see, unless told to', async () => {
    const { discord, seen } = await start();
    await discord.waitForBot();
    await (await fetch(`${discord.apiUrl}/v10/applications/${discord.applicationId}/commands`, {
      method: 'PUT',
      headers: { authorization: `Bot ${discord.token}`, 'content-type': 'application/json' },
      body: JSON.stringify([{ name: 'imagine-admin', description: 'govern', default_member_permissions: '32', contexts: [0] }]),
    })).text();
    await expect(discord.sendCommand({ name: 'imagine-admin', user: bob })).rejects.toThrow(/would not offer/);
    await expect(discord.sendCommand({ name: 'imagine-admin', user: bob, where: 'dm' })).rejects.toThrow(/not available in DMs/);
    // What a stale or forged client could still send: Discord's API delivers it.
    await discord.sendCommand({ name: 'imagine-admin', user: bob, ignoreCommandVisibility: true });
    const managers = discord.createRole({ name: 'Managers', permissions: Permission.ManageGuild });
    discord.setMemberRoles(bob.id, [managers.id]);
    await discord.sendCommand({ name: 'imagine-admin', user: bob });
    await discord.waitFor(() => seen.length === 2, 2000, 'two interactions');
    expect(seen.map((i) => i.memberPermissions?.has(PermissionFlagsBits.ManageGuild))).toEqual([false, true]);
  });
});

describe('fake Discord: reactions', () => {
  it('PUT and DELETE …/reactions/{emoji}/@me on a message', async () => {
    const { discord, client } = await start();
    const msg = discord.seedBotMessage({ content: 'result', components: [] });
    await client.rest.put(Routes.channelMessageOwnReaction(msg.channelId, msg.id, encodeURIComponent('✅')));
    expect([...(msg.reactions?.keys() ?? [])]).toEqual(['✅']);
    await client.rest.delete(Routes.channelMessageOwnReaction(msg.channelId, msg.id, encodeURIComponent('✅')));
    expect(msg.reactions?.size).toBe(0);
    const unknown = await client.rest.put(Routes.channelMessageOwnReaction(msg.channelId, snowflake(), encodeURIComponent('✅'))).catch((e: { code: number }) => e.code);
    expect(unknown).toBe(10008);
  });
});
