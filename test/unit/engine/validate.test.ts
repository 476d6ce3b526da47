import { describe, expect, it } from 'vitest';
import { ReferenceError, ValidationError } from '../../../src/engine/errors.ts';
import { configuredModels, MODEL_CATALOG } from '../../../src/engine/models.ts';
import type { ImagineRequestInput } from '../../../src/engine/request.ts';
import { parseRequest, resolveModel, validateAgainstModel } from '../../../src/engine/validate.ts';

const ALL = configuredModels(new Set(['runbase', 'runblob']));
const model = (key: string) => MODEL_CATALOG.find((m) => m.key === key)!;
const input = (over: Partial<ImagineRequestInput> = {}): ImagineRequestInput => ({
  prompt: 'a fox',
  model: 'runbase-pro',
  ratio: '1:1',
  resolution: '1K',
  count: 1,
  requester: { platform: 'discord', userId: 'u' },
  ...over,
});

function problem(fn: () => unknown): ValidationError | ReferenceError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ValidationError || err instanceof ReferenceError) return err;
    throw err;
  }
  throw new Error('expected a validation problem');
}

describe('parseRequest', () => {
  it('fills the default model when none is given and keeps the rest', () => {
    const r = parseRequest(input({ model: '' }), 'runblob-2');
    expect(r).toMatchObject({ model: 'runblob-2', prompt: 'a fox', references: [], location: {} });
  });

  it.each([
    [{ prompt: '   ' }, 'prompt', 'The prompt is empty: describe the image you want, e.g. "a red fox in the snow --ar 16:9".'],
    [{ prompt: 'x'.repeat(4001) }, 'prompt', 'The prompt is 4001 characters long; the limit is 4000. Shorten it.'],
    [{ count: 5 }, 'count', 'The number of images must be a whole number from 1 to 4.'],
    [{ count: 1.5 }, 'count', 'The number of images must be a whole number from 1 to 4.'],
    [{ ratio: '7:3' as never }, 'ratio', '"7:3" is not an aspect ratio. Use a ratio like 1:1, 16:9 or 9:16, or auto.'],
    [{ resolution: '8K' as never }, 'resolution', '"8K" is not a resolution. Choose 1K, 2K or 4K.'],
    [{ creativity: 2 }, 'creativity', 'Creativity must be a number from 0 (faithful) to 1 (most creative).'],
  ])('%j → a sentence about %s', (over, field, sentence) => {
    const err = problem(() => parseRequest(input(over), 'runbase-pro'));
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).field).toBe(field);
    expect(err.userMessage).toBe(sentence);
  });
});

describe('resolveModel', () => {
  it('accepts keys, labels and aliases, case-insensitively', () => {
    expect(resolveModel(ALL, 'RUNBLOB-PRO').key).toBe('runblob-pro');
    expect(resolveModel(ALL, 'Nano Banana 2 (Runbase)').key).toBe('runbase-2');
    expect(resolveModel(ALL, 'nb2').key).toBe('runbase-2');
  });

  it('names the configured choices for an unknown model', () => {
    const err = problem(() => resolveModel(configuredModels(new Set(['runblob'])), 'dalle'));
    expect(err.userMessage).toBe(
      '"dalle" is not a model this bot offers. Choose one of: Nano Banana (RunBlob) (--model runblob-standard), Nano Banana Pro (RunBlob) (--model runblob-pro), Nano Banana 2 (RunBlob) (--model runblob-2).',
    );
  });
});

describe('validateAgainstModel', () => {
  const check = (key: string, over: Partial<ImagineRequestInput>) =>
    problem(() => validateAgainstModel(parseRequest(input({ model: key, ...over }), key), model(key), ALL));

  it('refuses a ratio the model lacks, listing its ratios and the models that have it', () => {
    const err = check('runbase-pro', { ratio: '8:1' });
    expect((err as ValidationError).field).toBe('ratio');
    expect(err.userMessage).toBe(
      'Nano Banana Pro (Runbase) does not support the aspect ratio 8:1. Choose one of: auto, 1:1, 2:3, 3:2, 3:4, 4:3, 4:5, 5:4, 9:16, 16:9, 21:9, or choose Nano Banana 2 (Runbase).',
    );
  });

  it('refuses 4K on RunBlob standard, naming the models that make 4K', () => {
    const err = check('runblob-standard', { resolution: '4K' });
    expect((err as ValidationError).field).toBe('resolution');
    expect(err.userMessage).toMatch(/^Nano Banana \(RunBlob\) cannot make 4K images\. Choose 1K, or choose Nano Banana Pro \(Runbase\) or/);
  });

  it('refuses creativity on Runbase, pointing at the models that have it', () => {
    const err = check('runbase-2', { creativity: 0.4 });
    expect((err as ValidationError).field).toBe('creativity');
    expect(err.userMessage).toContain('Nano Banana 2 (Runbase) has no creativity option. Leave it out, or choose Nano Banana (RunBlob)');
  });

  it('refuses more references than the model takes', () => {
    const refs = Array.from({ length: 5 }, (_, i) => ({ kind: 'url' as const, url: `https://example.com/${i}.png` }));
    const err = check('runblob-standard', { references: refs });
    expect(err).toBeInstanceOf(ReferenceError);
    expect(err.code).toBe('REFERENCE_TOO_MANY');
    expect(err.userMessage).toBe('Too many reference images: Nano Banana (RunBlob) takes at most 4, and 5 were given. Remove some and try again.');
  });

  it('accepts what the model can do', () => {
    expect(() =>
      validateAgainstModel(parseRequest(input({ model: 'runblob-2', ratio: '21:9', resolution: '4K', creativity: 0.9 }), 'x'), model('runblob-2'), ALL),
    ).not.toThrow();
  });
});
