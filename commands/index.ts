/**
 * The commands the bot offers, listed explicitly (no folder scanning), and the shared pieces the
 * platform adapters use. Discord's registration and Slack's manifest are generated from COMMANDS.
 */
import { IMAGINE_COMMAND, QUOTA_COMMAND } from './options.ts';

export const COMMANDS = [IMAGINE_COMMAND, QUOTA_COMMAND] as const;
export type CommandName = (typeof COMMANDS)[number]['name'];

export * from './options.ts';
export * from './flags.ts';
export * from './imagine.ts';
export * from './custom-id.ts';
export * from './buttons.ts';
export * from './render.ts';
export * from './quota.ts';
