/**
 * /imagine's request building, platform-neutral: turns what a platform collected (prompt,
 * explicit options, reference images) into the engine's request, with the defaults and the
 * precedence every platform shares. The model's capabilities are checked by the engine's
 * validation (src/engine/validate.ts), which the command runs before the platform answers.
 */
import { ValidationError } from '../../src/engine/errors.ts';
import type { ModelSpec } from '../../src/engine/models.ts';
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

/** buildImagineRequest's work, and whether the requester asked for a private result (`--private`, Discord's option). */
export function parseImagineInput(
  input: ImagineInput,
  models: readonly ModelSpec[],
  defaultModel: ModelSpec,
): { request: ImagineRequestInput; private: boolean } {
  const parsed = parseImagineText(input.prompt);
  const options: Partial<ImagineOptions> = { ...parsed.options, ...definedOnly(input.options) };

  if (parsed.prompt === '') throw new ValidationError('prompt', PROMPT_SENTENCES.empty);
  if (parsed.prompt.length > MAX_PROMPT_CHARS) throw new ValidationError('prompt', PROMPT_SENTENCES.tooLong(parsed.prompt.length));

  const references: ReferenceInput[] = [
    ...input.refs,
    ...parsed.refs.map((url): ReferenceInput => ({ kind: 'url', url })),
  ];
  const model = options.model !== undefined ? resolveModel(models, options.model) : defaultModel;

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
  };
  return { request, private: options.private === true };
}
