/**
 * /settings: every user's own defaults (model, ratio, resolution, count, private by default),
 * used by /imagine whenever an option is not given; a server's limits still apply
 * (docs/governance.md). Private. No option shows them; options set them (the others are kept);
 * `reset` clears them first.
 */
import type { UserPreferences } from '../src/engine/governance/api.ts';
import { resolveModel } from '../src/engine/validate.ts';
import { ValidationError } from '../src/engine/errors.ts';
import type { Command, CommandInput, Invocation, PrepareContext } from './command.ts';
import { IMAGINE_OPTIONS } from './imagine/definition.ts';
import { parseOptionValues } from './imagine/flags.ts';
import { DEFAULT_COUNT } from './imagine/definition.ts';
import type { CommandDefinition } from './options.ts';
import { modelLabel, type TextFormat } from './render.ts';

/** The preference options share /imagine's types, ranges and choices (declared once there). */
export const SETTINGS_DEFINITION = {
  name: 'settings',
  description: 'Your own defaults for /imagine: model, ratio, size, count, private',
  options: {
    model: { ...IMAGINE_OPTIONS.model, description: 'Your default model' },
    ratio: { ...IMAGINE_OPTIONS.ratio, description: 'Your default aspect ratio (width:height)' },
    resolution: { ...IMAGINE_OPTIONS.resolution, description: 'Your default image size' },
    count: { ...IMAGINE_OPTIONS.count, description: `How many images by default (${IMAGINE_OPTIONS.count.minValue}-${IMAGINE_OPTIONS.count.maxValue})` },
    private: { ...IMAGINE_OPTIONS.private, description: 'Make your images private by default (an option still wins)' },
    reset: { type: 'boolean', description: 'Forget your defaults first' },
  },
} as const satisfies CommandDefinition;

const PREFERENCE_NAMES = ['model', 'ratio', 'resolution', 'count', 'private'] as const satisfies readonly (keyof UserPreferences)[];

/** The preferences the options give (validated like /imagine's options), without I/O. */
function givenPreferences(options: Readonly<Record<string, unknown>>, context: PrepareContext): UserPreferences {
  const picked = Object.fromEntries(PREFERENCE_NAMES.map((n) => [n, options[n]]));
  const parsed = parseOptionValues(picked);
  const given: UserPreferences = {};
  if (parsed.model !== undefined) given.model = resolveModel(context.models, parsed.model).key;
  if (parsed.ratio !== undefined) given.ratio = parsed.ratio;
  if (parsed.resolution !== undefined) given.resolution = parsed.resolution;
  if (parsed.count !== undefined) given.count = parsed.count;
  if (parsed.private !== undefined) given.private = parsed.private;
  return given;
}

/** true for Discord's boolean and a form's "true"; anything else that is given is refused. */
function resetAsked(value: unknown): boolean {
  if (value === undefined || value === null || value === '' || value === false || value === 'false') return false;
  if (value === true || value === 'true') return true;
  throw new ValidationError('reset', 'The reset option takes true or false.');
}

/** "Your defaults: model …, ratio …" (what is not set says so). */
export function preferencesText(p: UserPreferences, fmt: TextFormat, headline = 'Your defaults for /imagine'): string {
  const unset = '(not set)';
  return [
    fmt.bold(headline),
    `Model: ${p.model ? modelLabel(p.model) : unset}`,
    `Ratio: ${p.ratio ?? unset}`,
    `Resolution: ${p.resolution ?? unset}`,
    `Images: ${p.count ?? `${unset}, ${DEFAULT_COUNT}`}`,
    `Private by default: ${p.private === true ? 'yes' : 'no'}`,
    "What is not set comes from this server's defaults, then the bot's. An option you give /imagine always wins; the server's limits still apply.",
  ].join('\n');
}

function prepare(input: CommandInput, context: PrepareContext): Invocation {
  const given = givenPreferences(input.options, context);
  const reset = resetAsked(input.options.reset);
  const changing = reset || Object.keys(given).length > 0;
  return {
    visibility: 'private',
    run: async (surface) => {
      const governance = surface.engine.governance;
      if (!changing) return surface.reply(preferencesText(await governance.preferences(input.requester), surface.format));
      const current = reset ? {} : await governance.preferences(input.requester);
      const saved = await governance.setPreferences(input.requester, { ...current, ...given });
      return surface.reply(preferencesText(saved, surface.format, reset ? 'Saved: your defaults were reset' : 'Saved: your defaults for /imagine'));
    },
  };
}

export const settings = { ...SETTINGS_DEFINITION, prepare } satisfies Command;
