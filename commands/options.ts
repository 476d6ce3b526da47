/**
 * The shape of a command definition (name, description, options as data) and how its options are
 * resolved for the configured models: what Discord's command JSON, Slack's modal and manifest,
 * the parsers and the help text read. Each command declares its own options in its module.
 */
import { ALL_RATIOS, RESOLUTIONS, type ModelSpec, type Ratio, type Resolution } from '../src/engine/models.ts';
import type { Platform } from '../src/engine/request.ts';

/** Discord's limits on command data (docs/discord.md "Commands and components"). */
export const DISCORD_MAX_DESCRIPTION_CHARS = 100;
export const DISCORD_MAX_CHOICES = 25;
export const DISCORD_COMMAND_NAME_PATTERN = /^[a-z0-9_-]{1,32}$/;

export type OptionType = 'string' | 'integer' | 'number' | 'boolean' | 'attachment';

/** How a definition names its choices: a fixed list, or "the configured models" (known at run time). */
export type ChoiceSource = readonly string[] | 'models';

export interface OptionDefinition {
  readonly type: OptionType;
  readonly description: string;
  readonly required?: boolean;
  readonly maxLength?: number;
  readonly minValue?: number;
  readonly maxValue?: number;
  readonly choices?: ChoiceSource;
  /** Flag names for the text parser, without the leading `--` (first one is the canonical flag). */
  readonly flags?: readonly string[];
  /** Platforms that offer this option; all when absent. */
  readonly platforms?: readonly Platform[];
  /** Shown in the flag help text. */
  readonly example?: string;
  /** Offered only when some configured model has this capability (e.g. creativity: RunBlob only). */
  readonly needsCapability?: 'creativity';
}

/** Labels for ratio choices: users think in shapes, not numbers. */
export const RATIO_LABELS: Readonly<Record<Ratio, string>> = {
  auto: 'auto (the model decides)',
  '1:1': '1:1 (square)',
  '2:3': '2:3 (portrait)',
  '3:2': '3:2 (landscape)',
  '3:4': '3:4 (portrait)',
  '4:3': '4:3 (landscape)',
  '4:5': '4:5 (portrait)',
  '5:4': '5:4 (landscape)',
  '9:16': '9:16 (tall, phone screen)',
  '16:9': '16:9 (landscape)',
  '21:9': '21:9 (ultrawide)',
  '1:4': '1:4 (tall strip)',
  '1:8': '1:8 (very tall strip)',
  '4:1': '4:1 (banner)',
  '8:1': '8:1 (wide banner)',
};

export interface CommandDefinition {
  readonly name: string;
  readonly description: string;
  readonly options: Readonly<Record<string, OptionDefinition>>;
}

/** A choice as both platforms show it. */
export interface OptionChoice {
  readonly name: string;
  readonly value: string;
}

/** One option with its choices resolved for the configured models: what the platform adapters render. */
export interface ResolvedOption {
  readonly name: string;
  readonly type: OptionType;
  readonly description: string;
  readonly required: boolean;
  readonly maxLength?: number;
  readonly minValue?: number;
  readonly maxValue?: number;
  readonly choices?: readonly OptionChoice[];
  readonly platforms: readonly Platform[];
}

const ALL_PLATFORMS: readonly Platform[] = ['discord', 'slack', 'cli'];

/** The model choices: configured models by label, valued by their stable key. */
export function modelChoices(models: readonly ModelSpec[]): OptionChoice[] {
  return models.map((m) => ({ name: m.label, value: m.key }));
}

export function ratioChoices(ratios: readonly Ratio[] = ALL_RATIOS): OptionChoice[] {
  return ratios.map((r) => ({ name: RATIO_LABELS[r], value: r }));
}

/**
 * Fixed choices narrowed to what at least one configured model can do (no 1:4 without Runbase's
 * nano-banana-2, no 4K with only RunBlob standard), so a choice is never refused afterwards for
 * every model. With no models configured the full list stays.
 */
function choicesFor(name: string, source: ChoiceSource, models: readonly ModelSpec[]): OptionChoice[] {
  if (source === 'models') return modelChoices(models);
  if (name === 'ratio') return ratioChoices(offeredRatios(models));
  if (name === 'resolution') return offeredResolutions(models).map((r) => ({ name: r, value: r }));
  return source.map((c) => ({ name: c, value: c }));
}

/** The resolutions at least one configured model makes. */
export function offeredResolutions(models: readonly ModelSpec[]): Resolution[] {
  return RESOLUTIONS.filter((r) => models.length === 0 || models.some((m) => m.resolutions.includes(r)));
}

/** The ratios at least one configured model takes, in catalog order. */
export function offeredRatios(models: readonly ModelSpec[]): Ratio[] {
  return ALL_RATIOS.filter((r) => models.length === 0 || models.some((m) => m.ratios.includes(r)));
}

/**
 * A command's options in declaration order (required first, as Discord demands), with choices
 * filled in from the configured models, optionally only those a platform offers. An option no
 * configured model supports (creativity without RunBlob) is left out.
 */
export function resolveOptions(
  command: CommandDefinition,
  models: readonly ModelSpec[],
  platform?: Platform,
): ResolvedOption[] {
  const available = Object.entries(command.options).filter(
    ([, def]) => def.needsCapability === undefined || models.some((m) => m[def.needsCapability ?? 'creativity']),
  );
  const resolved = available.map(([name, def]): ResolvedOption => {
    const platforms = def.platforms ?? ALL_PLATFORMS;
    return {
      name,
      type: def.type,
      description: def.description,
      required: def.required ?? false,
      ...(def.maxLength !== undefined && { maxLength: def.maxLength }),
      ...(def.minValue !== undefined && { minValue: def.minValue }),
      ...(def.maxValue !== undefined && { maxValue: def.maxValue }),
      ...(def.choices !== undefined && { choices: choicesFor(name, def.choices, models) }),
      platforms,
    };
  });
  const offered = platform ? resolved.filter((o) => o.platforms.includes(platform)) : resolved;
  return [...offered.filter((o) => o.required), ...offered.filter((o) => !o.required)];
}
