/** /quota: the requester's allowance today, privately, in words both platforms show. */
import type { Command, CommandInput, Invocation } from './command.ts';
import type { CommandDefinition } from './options.ts';
import { quotaText } from './render.ts';

export const QUOTA_DEFINITION = {
  name: 'quota',
  description: 'See how many image units you have left today',
  options: {},
} as const satisfies CommandDefinition;

function prepare(input: CommandInput): Invocation {
  return {
    visibility: 'private',
    run: async (surface) => surface.reply(quotaText(await surface.engine.quota(input.requester), surface.format)),
  };
}

export const quota = { ...QUOTA_DEFINITION, prepare } satisfies Command;
