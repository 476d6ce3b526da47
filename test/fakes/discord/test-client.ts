/**
 * For the fake's own tests: the fake Discord with a bare discord.js client logged in to it,
 * recording the interactions it receives; both are closed after each test.
 */
import { afterEach } from 'vitest';
import { Client, GatewayIntentBits, type Interaction } from 'discord.js';
import { startFakeDiscord, type FakeDiscord, type FakeDiscordOptions } from './index.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

export async function startWithClient(opts: FakeDiscordOptions = {}): Promise<{ discord: FakeDiscord; client: Client; seen: Interaction[] }> {
  const discord = await startFakeDiscord(opts);
  cleanups.push(() => discord.close());
  const client = new Client({ intents: [GatewayIntentBits.Guilds], rest: { api: discord.apiUrl } });
  const ready = new Promise<void>((resolve) => client.once('clientReady', () => resolve()));
  await client.login(discord.token);
  await ready;
  cleanups.push(() => client.destroy());
  const seen: Interaction[] = [];
  client.on('interactionCreate', (i) => void seen.push(i));
  return { discord, client, seen };
}
