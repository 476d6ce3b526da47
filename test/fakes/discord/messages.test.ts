/**
 * The fake Discord's user messages, checked with the real discord.js client: MESSAGE_CREATE
 * follows the identified intents, content is empty without MESSAGE_CONTENT unless the bot is
 * mentioned (or it is a DM), replies carry message_reference and referenced_message, and a
 * result's attachments can be read back with GET /channels/{id}/messages/{id}.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Client, GatewayIntentBits, Partials, Routes, type Message } from 'discord.js';
import { startFakeDiscord, type FakeDiscord } from './index.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function start(intents: number[]): Promise<{ discord: FakeDiscord; client: Client; seen: Message[] }> {
  const discord = await startFakeDiscord();
  cleanups.push(() => discord.close());
  const client = new Client({ intents, partials: [Partials.Channel], rest: { api: discord.apiUrl } });
  const ready = new Promise<void>((resolve) => client.once('clientReady', () => resolve()));
  await client.login(discord.token);
  await ready;
  cleanups.push(() => client.destroy());
  const seen: Message[] = [];
  client.on('messageCreate', (m) => void seen.push(m));
  return { discord, client, seen };
}

const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 4, 0, 0, 0, 3]), Buffer.alloc(20)]);

describe('fake Discord: messages that mention the bot', () => {
  it('without MESSAGE_CONTENT the bot gets content only when mentioned; replies carry the referenced message', async () => {
    const { discord, client, seen } = await start([GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessages]);
    const result = discord.seedBotMessage({ content: 'a cat', components: [] });

    const plain = await discord.postUserMessage({ content: 'just chatting', attachments: [{ filename: 'x.png', data: png }] });
    const mention = await discord.postUserMessage({ content: `<@${discord.botUser.id}> make the sky purple`, replyTo: result, replyPing: false });
    const ping = await discord.postUserMessage({ content: '2: remove the car', replyTo: result });
    await discord.waitFor(() => seen.length === 3, 2000, 'three messages');
    expect([plain.dispatched, mention.dispatched, ping.dispatched]).toEqual([true, true, true]);
    expect(seen.map((m) => [m.content, m.attachments.size])).toEqual([
      ['', 0],
      [`<@${discord.botUser.id}> make the sky purple`, 0],
      ['2: remove the car', 0],
    ]);
    expect(seen[1]!.mentions.users.has(discord.botUser.id)).toBe(true);
    expect(seen[1]!.reference).toMatchObject({ messageId: result.id, channelId: result.channelId, guildId: discord.guildId });
    expect(seen[1]!.type).toBe(19);
    expect(seen[1]!.author.id).not.toBe(discord.botUser.id);
    // The reply's referenced_message is the bot's own message, content included.
    const raw = await client.rest.get(Routes.channelMessage(result.channelId, mention.message.id));
    expect(raw).toMatchObject({ type: 19, message_reference: { message_id: result.id }, referenced_message: { id: result.id, content: 'a cat' } });
    // REST reads follow the intent too: the plain message's content and files stay hidden.
    expect(await client.rest.get(Routes.channelMessage(result.channelId, plain.message.id))).toMatchObject({ content: '', attachments: [] });
  });

  it('with MESSAGE_CONTENT everything arrives; without GUILD_MESSAGES nothing; DMs need DIRECT_MESSAGES and carry content', async () => {
    const full = await start([GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessages, GatewayIntentBits.MessageContent]);
    await full.discord.postUserMessage({ content: 'hello', attachments: [{ filename: 'x.png', data: png }] });
    await full.discord.waitFor(() => full.seen.length === 1, 2000, 'the message');
    expect(full.seen[0]!.content).toBe('hello');
    expect([...full.seen[0]!.attachments.values()].map((a) => [a.name, a.width, a.height])).toEqual([['x.png', 4, 3]]);

    const deaf = await start([GatewayIntentBits.Guilds]);
    expect((await deaf.discord.postUserMessage({ content: `<@${deaf.discord.botUser.id}> hi` })).dispatched).toBe(false);
    expect((await deaf.discord.postUserMessage({ content: 'hi', dm: true })).dispatched).toBe(false);

    const dms = await start([GatewayIntentBits.Guilds, GatewayIntentBits.DirectMessages]);
    const dm = await dms.discord.postUserMessage({ content: 'make a cat', dm: true });
    expect(dm.dispatched).toBe(true);
    await dms.discord.waitFor(() => dms.seen.length === 1, 2000, 'the DM');
    expect(dms.seen[0]!.content).toBe('make a cat');
    expect(dms.seen[0]!.guildId).toBeNull();
  });

  it('GET /channels/{id}/messages/{id} returns a result with its attachments, readable from the CDN', async () => {
    const { discord, client } = await start([GatewayIntentBits.Guilds]);
    const form = new FormData();
    form.append('payload_json', JSON.stringify({ content: 'result', attachments: [{ id: '0', filename: 'cat-1.png' }] }));
    form.append('files[0]', new Blob([png], { type: 'image/png' }), 'cat-1.png');
    const posted = (await (await fetch(`${discord.apiUrl}/v10/channels/${discord.channelId}/messages`, { method: 'POST', headers: { authorization: `Bot ${discord.token}` }, body: form })).json()) as { id: string };
    const read = (await client.rest.get(Routes.channelMessage(discord.channelId, posted.id))) as { attachments: { filename: string; url: string; width: number }[] };
    expect(read.attachments.map((a) => [a.filename, a.width])).toEqual([['cat-1.png', 4]]);
    expect(Buffer.from(await (await fetch(read.attachments[0]!.url)).arrayBuffer())).toEqual(png);
  });
});
