/**
 * The registry: every command the bot offers, listed explicitly (no folder scanning). Discord's
 * command JSON (npm run register), Slack's manifest and both platforms' dispatchers read this
 * list; adding a command means its module and one line here.
 */
import type { Command } from './command.ts';
import { imagine } from './imagine/index.ts';
import { quota } from './quota.ts';
import { history } from './history.ts';
import { show } from './show.ts';
import { settings } from './settings.ts';
import { imagineAdmin } from './admin/index.ts';

export const COMMANDS = [imagine, quota, history, show, settings, imagineAdmin] as const satisfies readonly Command[];
export type CommandName = (typeof COMMANDS)[number]['name'];

/** The command called `name` (without the slash), if the bot has one. */
export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name);
}

/** The commands' names, for sentences that list them. */
export const COMMAND_NAMES: readonly string[] = COMMANDS.map((c) => c.name);

export * from './command.ts';
export * from './options.ts';
export * from './imagine/index.ts';
export * from './quota.ts';
export * from './history.ts';
export * from './show.ts';
export * from './settings.ts';
export * from './admin/index.ts';
export * from './custom-id.ts';
export * from './buttons.ts';
export * from './render.ts';
