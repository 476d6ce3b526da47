/**
 * The /imagine command's handler logic, platform-neutral: turns what a platform collected
 * (prompt, explicit options, reference images) into the engine's request. Capability checks
 * (does this model take 4K, this ratio, creativity, that many references?) happen in the engine's
 * submit, against the configured catalog; this only parses and fills defaults.
 */
import { ValidationError } from '../src/engine/errors.ts';
import { findModel, type ModelSpec, type Ratio, type Resolution } from '../src/engine/models.ts';
import {
  MAX_PROMPT_CHARS,
  type ImagineRequestInput,
  type PlatformLocation,
  type ReferenceInput,
  type Requester,
} from '../src/engine/request.ts';
import { parseImagineText } from './flags.ts';
import type { ImagineOptions, ImagineOptionsInput } from './options.ts';

export const DEFAULT_RATIO: Ratio = '1:1';
/** With reference images the model keeps their shape unless told otherwise. */
export const DEFAULT_RATIO_WITH_REFERENCES: Ratio = 'auto';
export const DEFAULT_RESOLUTION: Resolution = '1K';
export const DEFAULT_COUNT = 1;

export interface ImagineInput {
  /** The prompt as typed: it may still hold flags ("a cat --ar 16:9"), which are parsed here. */
  prompt: string;
  /** Options the platform collected explicitly (Discord options, Slack modal fields; see parseOptionValues). */
  options: ImagineOptionsInput;
  /** Attachments / uploaded files / links; `--ref` links from the prompt are appended after them. */
  refs: ReferenceInput[];
  requester: Requester;
  location: PlatformLocation;
}

/** Drops keys whose value is undefined, so they do not override flags. */
function definedOnly(options: ImagineOptionsInput): Partial<ImagineOptions> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<ImagineOptions>;
}

/** "Nano Banana Pro (Runbase) (--model runbase-pro), …": how an unknown-model error lists the choices. */
export function describeModelChoices(models: readonly ModelSpec[]): string {
  return models.map((m) => `${m.label} (--model ${m.key})`).join(', ');
}

/** A model choice (key, label or alias, any case) among the configured models, or a ValidationError listing them. */
export function resolveModel(models: readonly ModelSpec[], choice: string): ModelSpec {
  const model = findModel(models, choice);
  if (!model) {
    throw new ValidationError(
      'model',
      `"${choice}" is not a model this bot offers. Choose one of: ${describeModelChoices(models)}.`,
    );
  }
  return model;
}

/**
 * Builds the engine request for /imagine.
 *
 * Precedence: an option the platform set explicitly (a Discord option, a Slack modal field) wins
 * over the same flag typed in the prompt, because it was chosen from a validated list, while the
 * prompt may be pasted from elsewhere. Defaults: the engine's default model, ratio 1:1 ('auto'
 * when reference images are given, so the result keeps their shape), 1K, one image.
 *
 * Throws ValidationError for a bad flag, an unknown model, or an empty/too long prompt.
 * `options.private` is not part of the request: the adapter reads it (see wantsPrivate).
 */
export function buildImagineRequest(
  input: ImagineInput,
  models: readonly ModelSpec[],
  defaultModel: ModelSpec,
): ImagineRequestInput {
  const parsed = parseImagineText(input.prompt);
  const options: Partial<ImagineOptions> = { ...parsed.options, ...definedOnly(input.options) };

  if (parsed.prompt === '') {
    throw new ValidationError(
      'prompt',
      'The prompt is empty: describe the image you want, e.g. "a red fox in the snow --ar 16:9".',
    );
  }
  if (parsed.prompt.length > MAX_PROMPT_CHARS) {
    throw new ValidationError(
      'prompt',
      `The prompt is ${parsed.prompt.length} characters long; the limit is ${MAX_PROMPT_CHARS}. Shorten it.`,
    );
  }

  const references: ReferenceInput[] = [
    ...input.refs,
    ...parsed.refs.map((url): ReferenceInput => ({ kind: 'url', url })),
  ];
  const model = options.model !== undefined ? resolveModel(models, options.model) : defaultModel;

  return {
    prompt: parsed.prompt,
    model: model.key,
    ratio: options.ratio ?? (references.length > 0 ? DEFAULT_RATIO_WITH_REFERENCES : DEFAULT_RATIO),
    resolution: options.resolution ?? DEFAULT_RESOLUTION,
    count: options.count ?? DEFAULT_COUNT,
    ...(options.creativity !== undefined && { creativity: options.creativity }),
    references,
    requester: input.requester,
    location: input.location,
  };
}
