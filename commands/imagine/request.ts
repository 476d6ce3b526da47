/**
 * /imagine's request building, platform-neutral: turns what a platform collected (prompt,
 * explicit options, reference images) into the engine's request, with the defaults and the
 * precedence every platform shares. The model's capabilities are checked by the engine's
 * validation (src/engine/validate.ts), which the command runs before the platform answers.
 */
import { ValidationError } from '../../src/engine/errors.ts';
import type { UserPreferences } from '../../src/engine/governance/api.ts';
import { findModel, type ModelSpec } from '../../src/engine/models.ts';
import {
  MAX_PROMPT_CHARS,
  PROMPT_SENTENCES,
  type ImagineRequestInput,
  type PlatformLocation,
  type ReferenceInput,
  type Requester,
} from '../../src/engine/request.ts';
import { resolveModel } from '../../src/engine/validate.ts';
import {
  DEFAULT_COUNT,
  DEFAULT_RATIO,
  DEFAULT_RATIO_WITH_REFERENCES,
  DEFAULT_RESOLUTION,
  type ImagineOptions,
  type ImagineOptionsInput,
} from './definition.ts';
import { parseImagineText } from './flags.ts';

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

/**
 * Builds the engine request for /imagine.
 *
 * Precedence: an option the platform set explicitly (a Discord option, a Slack modal field) wins
 * over the same flag typed in the prompt, because it was chosen from a validated list, while the
 * prompt may be pasted from elsewhere. Defaults: the engine's default model, ratio 1:1 ('auto'
 * when reference images are given, so the result keeps their shape), 1K, one image.
 *
 * Throws ValidationError for a bad flag, an unknown model, or an empty/too long prompt.
 * `options.private` is not part of the request: parseImagineInput returns it beside the request.
 */
export function buildImagineRequest(
  input: ImagineInput,
  models: readonly ModelSpec[],
  defaultModel: ModelSpec,
): ImagineRequestInput {
  return parseImagineInput(input, models, defaultModel).request;
}

/** The fields a server's defaults may fill (ImagineRequest.defaulted). */
const DEFAULTABLE = ['model', 'ratio', 'resolution'] as const;

/**
 * The requester's /settings as options, beneath anything they typed or chose. A preferred model
 * that is no longer configured is skipped (the default applies) rather than refusing every request.
 */
function preferredOptions(preferences: UserPreferences | undefined, models: readonly ModelSpec[]): Partial<ImagineOptions> {
  if (!preferences) return {};
  const { model, ratio, resolution, count, private: privately } = preferences;
  return definedOnly({
    model: model !== undefined && findModel(models, model) ? model : undefined,
    ratio,
    resolution,
    count,
    private: privately,
  });
}

/**
 * buildImagineRequest's work, and whether the requester asked for a private result (`--private`,
 * Discord's option). With `preferences` (the requester's /settings), an option neither typed nor
 * chosen comes from them (an explicit option wins). Model, ratio and resolution that still come
 * from nobody are listed in `request.defaulted`, so the engine applies the server's defaults.
 */
export function parseImagineInput(
  input: ImagineInput,
  models: readonly ModelSpec[],
  defaultModel: ModelSpec,
  preferences?: UserPreferences,
): { request: ImagineRequestInput; private: boolean } {
  const parsed = parseImagineText(input.prompt);
  const chosen: Partial<ImagineOptions> = { ...parsed.options, ...definedOnly(input.options) };
  const options: Partial<ImagineOptions> = { ...preferredOptions(preferences, models), ...chosen };

  if (parsed.prompt === '') throw new ValidationError('prompt', PROMPT_SENTENCES.empty);
  if (parsed.prompt.length > MAX_PROMPT_CHARS) throw new ValidationError('prompt', PROMPT_SENTENCES.tooLong(parsed.prompt.length));

  const references: ReferenceInput[] = [
    ...input.refs,
    ...parsed.refs.map((url): ReferenceInput => ({ kind: 'url', url })),
  ];
  const model = options.model !== undefined ? resolveModel(models, options.model) : defaultModel;
  // With reference images the default ratio ('auto', keep their shape) is deliberate, not a gap
  // for the server's default ratio to fill.
  const defaulted = DEFAULTABLE.filter((f) => options[f] === undefined && !(f === 'ratio' && references.length > 0));

  const request: ImagineRequestInput = {
    prompt: parsed.prompt,
    model: model.key,
    ...(options.model === undefined && { modelFromDefault: true }),
    ratio: options.ratio ?? (references.length > 0 ? DEFAULT_RATIO_WITH_REFERENCES : DEFAULT_RATIO),
    resolution: options.resolution ?? DEFAULT_RESOLUTION,
    count: options.count ?? DEFAULT_COUNT,
    ...(options.creativity !== undefined && { creativity: options.creativity }),
    references,
    requester: input.requester,
    location: input.location,
    ...(defaulted.length > 0 && { defaulted }),
  };
  return { request, private: options.private === true };
}
