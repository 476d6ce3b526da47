/** /history: the requester's last jobs, privately (prompt, model, when, link, job id), on every platform. */
import type { Command, CommandInput, Invocation } from './command.ts';
import type { CommandDefinition } from './options.ts';
import { historyText } from './render.ts';

/** How many jobs /history lists (the store keeps the newest 50 per user: HISTORY_MAX_JOBS). */
export const HISTORY_LISTED = 10;

export const HISTORY_DEFINITION = {
  name: 'history',
  description: 'List your last images, with their job ids for /show',
  options: {},
} as const satisfies CommandDefinition;

function prepare(input: CommandInput): Invocation {
  return {
    visibility: 'private',
    run: async (surface) => surface.reply(historyText(await surface.engine.history(input.requester, HISTORY_LISTED), surface.format)),
  };
}

export const history = { ...HISTORY_DEFINITION, prepare } satisfies Command;
