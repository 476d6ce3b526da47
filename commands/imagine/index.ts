/**
 * /imagine: make images from a prompt. The definition is data (definition.ts); the handler parses
 * what the platform collected (flags in the prompt, explicit options, reference images), checks it
 * against the chosen model's capabilities, all before the platform answers, then submits the job
 * where the platform's placeholder is.
 */
import { parseRequest, resolveModel, validateAgainstModel } from '../../src/engine/validate.ts';
import type { Platform } from '../../src/engine/request.ts';
import { UserFacingError } from '../../src/errors.ts';
import type { Command, CommandInput, Invocation, PrepareContext } from '../command.ts';
import { IMAGINE_DEFINITION } from './definition.ts';
import { parseOptionValues } from './flags.ts';
import { parseImagineInput } from './request.ts';

function prepare(input: CommandInput, context: PrepareContext): Invocation {
  const { prompt, ...values } = input.options;
  // A private result is a platform's feature (Discord's ephemeral messages); elsewhere asking for
  // one must not quietly post in public, but a "private by default" preference simply doesn't apply.
  const privateOn: readonly Platform[] = IMAGINE_DEFINITION.options.private.platforms;
  const offersPrivate = privateOn.includes(input.requester.platform);
  const preferences = context.preferences && !offersPrivate ? { ...context.preferences, private: undefined } : context.preferences;
  const parsed = parseImagineInput(
    {
      prompt: typeof prompt === 'string' ? prompt : '',
      options: parseOptionValues(values),
      refs: [...input.refs],
      requester: input.requester,
      location: {},
    },
    context.models,
    context.defaultModel,
    preferences,
  );
  if (parsed.private && !offersPrivate) {
    throw new UserFacingError('PRIVATE_NOT_OFFERED', { where: privateOn.map((p) => p[0]!.toUpperCase() + p.slice(1)).join(' and ') });
  }
  // The engine checks the same again on submit; here it answers before anything is shown.
  const request = parseRequest(parsed.request, context.defaultModel.key);
  validateAgainstModel(request, resolveModel(context.models, request.model), context.models);
  return {
    visibility: parsed.private ? 'private' : 'public',
    run: (surface) => surface.submit({ ...parsed.request, location: surface.location }),
  };
}

/** usesPreferences: the dispatcher reads the requester's /settings (one store read) before prepare. */
export const imagine = { ...IMAGINE_DEFINITION, usesPreferences: true, prepare } satisfies Command;

export * from './definition.ts';
export * from './flags.ts';
export * from './help.ts';
export * from './request.ts';
