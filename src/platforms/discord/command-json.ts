/**
 * Discord's application command JSON, generated from the platform-neutral definitions in the
 * command registry (commands/index.ts): one source for Discord, Slack and the parsers.
 */
import {
  COMMANDS,
  DISCORD_MAX_CHOICES,
  DISCORD_MAX_DESCRIPTION_CHARS,
  resolveOptions,
  type CommandDefinition,
  type OptionType,
  type ResolvedOption,
} from '../../../commands/index.ts';
import { PermissionFlagsBits } from 'discord.js';
import type { Command } from '../../../commands/index.ts';
import type { ModelSpec } from '../../engine/models.ts';

/** https://discord.com/developers/docs/interactions/application-commands#application-command-object-application-command-option-type */
export const OPTION_TYPE: Record<OptionType, number> = { string: 3, integer: 4, boolean: 5, number: 10, attachment: 11 };
/** Contexts: 0 guild, 1 the bot's DM, 2 private channels (user installs). */
export const COMMAND_CONTEXTS = [0, 1] as const;
/** An admin command exists only in guilds (context 0): there is no server to govern in a DM. */
export const ADMIN_COMMAND_CONTEXTS = [0] as const;
/** 0 = guild install. */
export const INTEGRATION_TYPES = [0] as const;
/**
 * Manage Server (MANAGE_GUILD, 1 << 5): admin commands are shown by default only to members with
 * it; a server's owner can re-assign them in Integrations settings
 * (https://discord.com/developers/docs/interactions/application-commands#permissions). Discord
 * takes the bit set as a string.
 */
export const ADMIN_DEFAULT_MEMBER_PERMISSIONS = PermissionFlagsBits.ManageGuild.toString();

const MAX_STRING_LENGTH = 6000;

export interface DiscordCommandOption {
  type: number;
  name: string;
  description: string;
  required: boolean;
  choices?: { name: string; value: string | number }[];
  min_value?: number;
  max_value?: number;
  min_length?: number;
  max_length?: number;
}

export interface DiscordCommand {
  type: 1;
  name: string;
  description: string;
  options: DiscordCommandOption[];
  contexts: number[];
  integration_types: number[];
  /** Admin commands only: the permissions a member needs to see it by default. */
  default_member_permissions?: string;
}

const clip = (s: string, n: number) => (s.length <= n ? s : `${s.slice(0, n - 1)}…`);

function optionJson(o: ResolvedOption): DiscordCommandOption {
  const type = OPTION_TYPE[o.type];
  const json: DiscordCommandOption = { type, name: o.name, description: clip(o.description, DISCORD_MAX_DESCRIPTION_CHARS), required: o.required };
  if (o.choices && o.choices.length > 0) {
    json.choices = o.choices.slice(0, DISCORD_MAX_CHOICES).map((c) => ({ name: clip(c.name, 100), value: c.value }));
  }
  if (o.type === 'string' && o.maxLength !== undefined) json.max_length = Math.min(o.maxLength, MAX_STRING_LENGTH);
  if ((o.type === 'integer' || o.type === 'number') && !json.choices) {
    if (o.minValue !== undefined) json.min_value = o.minValue;
    if (o.maxValue !== undefined) json.max_value = o.maxValue;
  }
  return json;
}

export function commandJson(command: CommandDefinition & Pick<Command, 'admin'>, models: readonly ModelSpec[]): DiscordCommand {
  // Options no configured model can use (creativity without RunBlob) are already left out.
  const options = resolveOptions(command, models, 'discord');
  return {
    type: 1,
    name: command.name,
    description: clip(command.description, DISCORD_MAX_DESCRIPTION_CHARS),
    options: options.map(optionJson),
    contexts: command.admin ? [...ADMIN_COMMAND_CONTEXTS] : [...COMMAND_CONTEXTS],
    integration_types: [...INTEGRATION_TYPES],
    ...(command.admin && { default_member_permissions: ADMIN_DEFAULT_MEMBER_PERMISSIONS }),
  };
}

/** The whole command set, as `PUT /applications/{id}/commands` takes it. */
export function allCommandsJson(models: readonly ModelSpec[]): DiscordCommand[] {
  return COMMANDS.map((c) => commandJson(c, models));
}

/** Discord's REST base when DISCORD_API_URL is not set. */
export const DISCORD_API_DEFAULT = 'https://discord.com/api';
