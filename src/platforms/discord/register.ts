/**
 * `npm run register`: replaces the bot's whole command set on Discord (PUT, idempotent) —
 * globally, or in DISCORD_GUILD_ID when set (instant, for testing). A separate deploy step,
 * never run at start-up: Discord allows 200 command creations per day per guild.
 * The model choices come from the configured providers, so run it again after changing keys.
 */
import { REST, Routes } from 'discord.js';
import { configuredModels } from '../../engine/models.ts';
import { configuredProviders, loadDotEnv, parseConfig, type Config } from '../../config.ts';
import { DISCORD_API_DEFAULT, allCommandsJson } from './command-json.ts';
import { discordRestOptions } from './rest-request.ts';

export interface RegisterResult {
  scope: 'global' | 'guild';
  guildId?: string;
  names: string[];
}

export async function registerCommands(config: Config, rest?: REST): Promise<RegisterResult> {
  if (!config.DISCORD_TOKEN || !config.DISCORD_APPLICATION_ID) {
    throw new Error('DISCORD_TOKEN and DISCORD_APPLICATION_ID are needed to register commands.');
  }
  const models = configuredModels(configuredProviders(config));
  if (models.length === 0) throw new Error('No image provider is configured (RUNBASE_API_KEY or RUNBLOB_API_KEY): /imagine would offer no model.');
  const client = rest ?? new REST(discordRestOptions(config.DISCORD_API_URL ?? DISCORD_API_DEFAULT)).setToken(config.DISCORD_TOKEN);
  const body = allCommandsJson(models);
  const guildId = config.DISCORD_GUILD_ID;
  const route = guildId
    ? Routes.applicationGuildCommands(config.DISCORD_APPLICATION_ID, guildId)
    : Routes.applicationCommands(config.DISCORD_APPLICATION_ID);
  const saved = (await client.put(route, { body })) as { name: string }[];
  return { scope: guildId ? 'guild' : 'global', ...(guildId && { guildId }), names: saved.map((c) => c.name) };
}

async function main(): Promise<void> {
  loadDotEnv();
  const config = parseConfig();
  const result = await registerCommands(config);
  const where = result.scope === 'guild' ? `in guild ${result.guildId}` : 'globally (may take up to an hour to appear)';
  process.stdout.write(`Registered ${result.names.map((n) => `/${n}`).join(', ')} ${where}.\n`);
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
