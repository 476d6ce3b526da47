/**
 * Request validation: first the shape (imagineRequestSchema), then the chosen model's
 * capabilities (ratios, resolutions, creativity, reference count) from the catalog. Every problem
 * becomes one ValidationError whose sentence names the option and the values that would work,
 * because it is shown as is to a chat user.
 */
import type { z } from 'zod';
import { ReferenceError, ValidationError } from './errors.ts';
import { findModel, type ModelSpec } from './models.ts';
import {
  imagineRequestSchema,
  PROMPT_SENTENCES,
  MAX_IMAGES_PER_JOB,
  type ImagineRequest,
  type ImagineRequestInput,
} from './request.ts';

const list = (values: readonly string[]) => values.join(', ');

/** "Nano Banana Pro (Runbase) (--model runbase-pro), …": the choices an unknown-model error lists. */
export function describeModels(models: readonly ModelSpec[]): string {
  return models.map((m) => `${m.label} (--model ${m.key})`).join(', ');
}

/** The sentence for the first problem zod found, named after the option a user can change. */
function sentenceFor(issue: z.core.$ZodIssue, input: ImagineRequestInput): { field: string; sentence: string } {
  const field = String(issue.path[0] ?? 'request');
  const given = (input as Record<string, unknown>)[field];
  switch (field) {
    case 'prompt':
      // The schema carries user-facing messages for the prompt; a non-string prompt is a caller bug.
      return { field, sentence: issue.code === 'invalid_type' ? PROMPT_SENTENCES.empty : issue.message };
    case 'ratio':
      return { field, sentence: `"${String(given)}" is not an aspect ratio. Use a ratio like 1:1, 16:9 or 9:16, or auto.` };
    case 'resolution':
      return { field, sentence: `"${String(given)}" is not a resolution. Choose 1K, 2K or 4K.` };
    case 'count':
      return { field, sentence: `The number of images must be a whole number from 1 to ${MAX_IMAGES_PER_JOB}.` };
    case 'creativity':
      return { field, sentence: 'Creativity must be a number from 0 (faithful) to 1 (most creative).' };
    case 'references':
      return { field, sentence: `Reference image ${Number(issue.path[1] ?? 0) + 1} is not a valid link or file.` };
    case 'model':
      return { field, sentence: 'Choose a model.' };
    default:
      // requester, location, parent: filled by the bot, not the user.
      return { field, sentence: `The request is malformed (${field}: ${issue.message}). Please try again.` };
  }
}

/**
 * Parses a request's shape. An empty or missing model means the default model. Throws
 * ValidationError for the first problem.
 */
export function parseRequest(input: ImagineRequestInput, defaultModelKey: string): ImagineRequest {
  const withModel = input.model?.trim() ? input : { ...input, model: defaultModelKey };
  const parsed = imagineRequestSchema.safeParse(withModel);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  if (!issue) throw new ValidationError('request', 'The request is malformed. Please try again.');
  const { field, sentence } = sentenceFor(issue, withModel);
  throw new ValidationError(field, sentence);
}

/**
 * A model choice (key, label or alias, any case) among the configured models, or a ValidationError
 * listing them. The one resolver: the commands' parsers and the engine's submit both use it.
 */
export function resolveModel(models: readonly ModelSpec[], choice: string): ModelSpec {
  const model = findModel(models, choice);
  if (!model) {
    throw new ValidationError('model', `"${choice}" is not a model this bot offers. Choose one of: ${describeModels(models)}.`);
  }
  return model;
}

/**
 * Checks the request against what `model` can do. `models` (the configured ones) lets a sentence
 * suggest a model that can do what was asked.
 */
export function validateAgainstModel(request: ImagineRequest, model: ModelSpec, models: readonly ModelSpec[]): void {
  const others = (ok: (m: ModelSpec) => boolean) => models.filter((m) => m !== model && ok(m)).map((m) => m.label);
  const suggest = (names: string[]) => (names.length ? `, or choose ${names.join(' or ')}` : '');

  if (!model.ratios.includes(request.ratio)) {
    const can = others((m) => m.ratios.includes(request.ratio));
    throw new ValidationError(
      'ratio',
      `${model.label} does not support the aspect ratio ${request.ratio}. Choose one of: ${list(model.ratios)}${suggest(can)}.`,
    );
  }
  if (!model.resolutions.includes(request.resolution)) {
    const can = others((m) => m.resolutions.includes(request.resolution));
    throw new ValidationError(
      'resolution',
      `${model.label} cannot make ${request.resolution} images. Choose ${list(model.resolutions)}${suggest(can)}.`,
    );
  }
  if (request.creativity !== undefined && !model.creativity) {
    const can = others((m) => m.creativity);
    throw new ValidationError(
      'creativity',
      `${model.label} has no creativity option. Leave it out${suggest(can)}.`,
    );
  }
  if (request.references.length > model.maxReferences) {
    throw new ReferenceError(
      model.maxReferences,
      'too_many',
      `${model.label} takes at most ${model.maxReferences}, and ${request.references.length} were given`,
    );
  }
}
