/**
 * What /imagine accepts, as data: each option's type, description, range, choices and flags.
 * Discord's command JSON, Slack's modal, manifest and flag parser, the CLI's parser, the help text
 * and the TypeScript types of parsed options are all derived from these definitions, so an option
 * is declared exactly once.
 */
import type { Ratio, Resolution } from '../../src/engine/models.ts';
import { ALL_RATIOS, RESOLUTIONS } from '../../src/engine/models.ts';
import { MAX_IMAGES_PER_JOB, MAX_PROMPT_CHARS } from '../../src/engine/request.ts';
import type { CommandDefinition, OptionDefinition } from '../options.ts';

export const DEFAULT_RATIO: Ratio = '1:1';
/** With reference images the model keeps their shape unless told otherwise. */
export const DEFAULT_RATIO_WITH_REFERENCES: Ratio = 'auto';
export const DEFAULT_RESOLUTION: Resolution = '1K';
export const DEFAULT_COUNT = 1;

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


/** /imagine's definition: what Discord registers, Slack's manifest lists, and the parsers read. */
export const IMAGINE_DEFINITION = {
  name: 'imagine',
  description: 'Make images from a prompt with Google Nano Banana models',
  options: IMAGINE_OPTIONS,
} as const satisfies CommandDefinition;
