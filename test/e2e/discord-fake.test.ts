/**
 * The fake Discord itself, driven by a bare discord.js client: the handshake works, the
 * deadlines and limits real Discord enforces are enforced, and bodies are checked against
 * Discord's schemas. If these fail, every other Discord e2e result is suspect.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AttachmentBuilder, Client, GatewayIntentBits, MessageFlags, Routes, type ChatInputCommandInteraction } from 'discord.js';
import { startFakeDiscord, type FakeDiscord, MiB } from '../fakes/discord/index.ts';

/** Short enough for a test, long enough for the edits before expiry on a loaded machine. */
const TOKEN_LIFETIME_MS = 2500;

let discord: FakeDiscord;
let client: Client;
let onCommand: (i: ChatInputCommandInteraction) => Promise<void>;

async function connect(fake: FakeDiscord): Promise<Client> {
  const c = new Client({ intents: [GatewayIntentBits.Guilds], rest: { api: fake.apiUrl } });
  c.on('interactionCreate', (i) => {
    if (i.isChatInputCommand()) void onCommand(i).catch(() => {});
  });
  const ready = new Promise<void>((resolve) => c.once('clientReady', () => resolve()));
  await c.login(fake.token);
  await ready;
  return c;
}

beforeEach(async () => {
  discord = await startFakeDiscord({ ackDeadlineMs: 400, tokenLifetimeMs: TOKEN_LIFETIME_MS });
  client = await connect(discord);
});
afterEach(async () => {
  await client.destroy();
  await discord.close();
});

describe('fake Discord', () => {
  it('logs discord.js in and delivers a slash command with options and attachments', async () => {
    expect(discord.identifies[0]?.intents).toBe(1);
    let seen: { prompt: string | null; count: number | null; image: string | undefined; size: number | undefined; limit: number; guild: string | null } | undefined;
    onCommand = async (i) => {
      seen = {
        prompt: i.options.getString('prompt'),
        count: i.options.getInteger('count'),
        image: i.options.getAttachment('image')?.url,
        size: i.options.getAttachment('image')?.size,
        limit: i.attachmentSizeLimit,
        guild: i.guildId,
      };
      await i.deferReply();
    };
    const png = Buffer.from('89504e470d0a1a0a0000000d4948445200000002000000030806000000', 'hex');
    const interaction = await discord.sendCommand({
      name: 'imagine',
      options: [
        { name: 'prompt', type: 3, value: 'a fox' },
        { name: 'count', type: 4, value: 2 },
      ],
      attachments: { image: { filename: 'ref.png', data: png } },
    });
    await discord.waitFor(() => interaction.ackedAt !== undefined, 2000, 'ack');
    expect(seen).toMatchObject({ prompt: 'a fox', count: 2, size: png.length, limit: 10 * MiB, guild: discord.guildId });
    const fetched = await fetch(seen!.image!);
    expect(Buffer.from(await fetched.arrayBuffer())).toEqual(png);
    expect(discord.originalMessage(interaction)?.flags).toBe(128);
  });

  it('refuses a late first response (10062) and a second one (40060)', async () => {
    const results: string[] = [];
    onCommand = async (i) => {
      await new Promise((r) => setTimeout(r, 500));
      await i.deferReply().catch((e: { code: number }) => results.push(`late:${e.code}`));
    };
    await discord.sendCommand({ name: 'imagine', options: [{ name: 'prompt', type: 3, value: 'x' }] });
    await discord.waitFor(() => results.length === 1, 3000, 'late answer');
    onCommand = async (i) => {
      await i.deferReply();
      await client.rest.post(Routes.interactionCallback(i.id, i.token), { body: { type: 5 }, auth: false }).catch((e: { code: number }) => results.push(`twice:${e.code}`));
    };
    await discord.sendCommand({ name: 'imagine', options: [{ name: 'prompt', type: 3, value: 'x' }] });
    await discord.waitFor(() => results.length === 2, 3000, 'second answer');
    expect(results).toEqual(['late:10062', 'twice:40060']);
  });

  it('expires the interaction token (50027) and enforces files, size and component rules', async () => {
    const results: (string | number)[] = [];
    const record = (label: string) => (e: { code?: number; status?: number }) => void results.push(`${label}:${e.status}:${e.code ?? ''}`);
    onCommand = async (i) => {
      const receivedAt = Date.now();
      await i.deferReply({ flags: MessageFlags.Ephemeral });
      const big = new AttachmentBuilder(Buffer.alloc(10 * MiB + 1), { name: 'big.png' });
      await i.editReply({ files: [big] }).catch(record('big'));
      const many = Array.from({ length: 11 }, (_, n) => new AttachmentBuilder(Buffer.from('x'), { name: `f${n}.txt` }));
      await i.editReply({ files: many }).catch(record('many'));
      const row = { type: 1, components: Array.from({ length: 6 }, (_, n) => ({ type: 2, style: 1, label: `b${n}`, custom_id: `b${n}` })) };
      await i.editReply({ components: [row] as never }).catch(record('row'));
      await i.editReply({ content: 'x'.repeat(2001) }).catch(record('long'));
      await i.editReply({ content: 'ok' });
      results.push('edited');
      // Wait until the token has surely expired, however long the edits above took on a busy machine.
      await new Promise((r) => setTimeout(r, Math.max(0, receivedAt + TOKEN_LIFETIME_MS + 200 - Date.now())));
      await i.editReply({ content: 'late' }).catch(record('expired'));
    };
    const interaction = await discord.sendCommand({ name: 'imagine', options: [{ name: 'prompt', type: 3, value: 'x' }] });
    await discord.waitFor(() => results.length === 6, 5000, 'all calls');
    expect(results).toEqual(['big:413:40005', 'many:400:30015', 'row:400:50035', 'long:400:50035', 'edited', 'expired:401:50027']);
    expect(discord.originalMessage(interaction)).toMatchObject({ content: 'ok', flags: 64 });
  });

  it('answers injected 429s with retry_after, which discord.js waits out', async () => {
    discord.injectRateLimit({ method: 'PATCH', path: /messages\/@original$/, times: 2, retryAfterS: 0.1 });
    onCommand = async (i) => {
      await i.deferReply();
      await i.editReply({ content: 'after the limit' });
    };
    const interaction = await discord.sendCommand({ name: 'imagine', options: [{ name: 'prompt', type: 3, value: 'x' }] });
    await discord.waitFor(() => discord.originalMessage(interaction)?.content === 'after the limit', 5000, 'edit');
    expect(discord.requests.filter((r) => r.rateLimited === 'injected')).toHaveLength(2);
  });
});
