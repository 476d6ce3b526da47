/**
 * What the bot's commands accept, as data. Discord's command JSON, Slack's modal and flag parser,
 * the help text and the TypeScript types of parsed options are all derived from these
 * definitions (STYLE.md #2), so an option is declared exactly once.
 */
import { ALL_RATIOS, RESOLUTIONS, type ModelSpec, type Ratio, type Resolution } from '../src/engine/models.ts';
import { MAX_IMAGES_PER_JOB, MAX_PROMPT_CHARS, type Platform } from '../src/engine/request.ts';

/** Discord's limits on command data (reference/discord.md "Commands and components"). */
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

export const IMAGINE_OPTIONS = {
  prompt: {
    type: 'string',
    description: 'What to draw. Flags work here too, e.g. "a fox in snow --ar 16:9 --res 2K"',
    required: true,
    maxLength: MAX_PROMPT_CHARS,
  },
  model: {
    type: 'string',
    description: 'Which Nano Banana model makes the image',
    choices: 'models',
    flags: ['model', 'm'],
    example: '--model pro',
  },
  ratio: {
    type: 'string',
    description: 'Aspect ratio (width:height)',
    choices: ALL_RATIOS,
    flags: ['ar', 'aspect', 'ratio'],
    example: '--ar 16:9',
  },
  resolution: {
    type: 'string',
    description: 'Image size: 1K, 2K or 4K (bigger images use more of your daily units)',
    choices: RESOLUTIONS,
    flags: ['res', 'resolution', 'quality'],
    example: '--res 2K',
  },
  count: {
    type: 'integer',
    description: `How many images to make (1-${MAX_IMAGES_PER_JOB})`,
    minValue: 1,
    maxValue: MAX_IMAGES_PER_JOB,
    flags: ['n', 'count'],
    example: '--n 2',
  },
  creativity: {
    type: 'number',
    description: 'How freely the model interprets the prompt, 0 to 1 (RunBlob models only)',
    minValue: 0,
    maxValue: 1,
    flags: ['cr', 'creativity', 'temp'],
    example: '--cr 0.7',
    needsCapability: 'creativity',
  },
  image: { type: 'attachment', description: 'A reference image (JPEG, PNG or WEBP)', platforms: ['discord'] },
  image2: { type: 'attachment', description: 'A second reference image', platforms: ['discord'] },
  image3: { type: 'attachment', description: 'A third reference image', platforms: ['discord'] },
  image4: { type: 'attachment', description: 'A fourth reference image', platforms: ['discord'] },
  private: {
    type: 'boolean',
    description: 'Only you see the result (and its buttons)',
    flags: ['private'],
    platforms: ['discord'],
    example: '--private',
  },
} as const satisfies Record<string, OptionDefinition>;

export type ImagineOptionName = keyof typeof IMAGINE_OPTIONS;

/** The `--ref <url>` flag: a reference image by link. Not an option (Discord takes attachments). */
export const REF_FLAG = {
  flags: ['ref'],
  description: 'A reference image by link (repeat for several)',
  example: '--ref https://example.com/cat.png',
} as const;

type ValueOf<D> = D extends { type: 'string'; choices: readonly (infer C extends string)[] }
  ? C
  : D extends { type: 'string' }
    ? string
    : D extends { type: 'integer' | 'number' }
      ? number
      : D extends { type: 'boolean' }
        ? boolean
        : never;

type Defs = typeof IMAGINE_OPTIONS;
/** Options that a user sets by value (not the prompt itself, not file attachments). */
export type ImagineValueOptionName = {
  [K in keyof Defs]: K extends 'prompt' ? never : Defs[K] extends { type: 'attachment' } ? never : K;
}[keyof Defs];

/** Parsed /imagine options, derived from IMAGINE_OPTIONS: { model: string; ratio: Ratio; resolution: Resolution; count: number; creativity: number; private: boolean }. */
export type ImagineOptions = { [K in ImagineValueOptionName]: ValueOf<Defs[K]> };

/** What adapters may pass: any option may be absent or explicitly undefined (e.g. `getString('ratio') ?? undefined`). */
export type ImagineOptionsInput = { [K in ImagineValueOptionName]?: ImagineOptions[K] | undefined };

export const IMAGINE_VALUE_OPTION_NAMES = (Object.keys(IMAGINE_OPTIONS) as ImagineOptionName[]).filter(
  (name): name is ImagineValueOptionName => name !== 'prompt' && IMAGINE_OPTIONS[name].type !== 'attachment',
);

/** Attachment option names, in order (Discord's image, image2, …). */
export const IMAGINE_ATTACHMENT_OPTION_NAMES = (Object.keys(IMAGINE_OPTIONS) as ImagineOptionName[]).filter(
  (name) => IMAGINE_OPTIONS[name].type === 'attachment',
);

export interface CommandDefinition {
  readonly name: string;
  readonly description: string;
  readonly options: Readonly<Record<string, OptionDefinition>>;
}

export const IMAGINE_COMMAND = {
  name: 'imagine',
  description: 'Make images from a prompt with Google Nano Banana models',
  options: IMAGINE_OPTIONS,
} as const satisfies CommandDefinition;

export const QUOTA_COMMAND = {
  name: 'quota',
  description: 'See how many image units you have left today',
  options: {},
} as const satisfies CommandDefinition;

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
