/**
 * /imagine: make images from a prompt. The definition is data (definition.ts); the handler parses
 * what the platform collected (flags in the prompt, explicit options, reference images), checks it
 * against the chosen model's capabilities, all before the platform answers, then submits the job
 * where the platform's placeholder is.
 */
import { parseRequest, resolveModel, validateAgainstModel } from '../../src/engine/validate.ts';
import type { Command, CommandInput, Invocation, PrepareContext } from '../command.ts';
import { IMAGINE_DEFINITION } from './definition.ts';
import { parseOptionValues } from './flags.ts';
import { parseImagineInput } from './request.ts';

function prepare(input: CommandInput, context: PrepareContext): Invocation {
  const { prompt, ...values } = input.options;
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
  );
  // The engine checks the same again on submit; here it answers before anything is shown.
  const request = parseRequest(parsed.request, context.defaultModel.key);
  validateAgainstModel(request, resolveModel(context.models, request.model), context.models);
  return {
    visibility: parsed.private ? 'private' : 'public',
    run: (surface) => surface.submit({ ...parsed.request, location: surface.location }),
  };
}

export const imagine = { ...IMAGINE_DEFINITION, prepare } satisfies Command;

export * from './definition.ts';
export * from './flags.ts';
export * from './help.ts';
export * from './request.ts';
