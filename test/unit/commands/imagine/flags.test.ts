import { describe, expect, it } from 'vitest';
import { helpText, parseImagineText, parseOptionValues } from '../../../../commands/imagine/index.ts';
import { ValidationError } from '../../../../src/engine/errors.ts';
import { MODEL_CATALOG } from '../../../../src/engine/models.ts';

/** The ValidationError a parse throws (fails the test when it does not throw one). */
function parseError(text: string): ValidationError {
  try {
    parseImagineText(text);
  } catch (err) {
    if (err instanceof ValidationError) return err;
    throw err;
  }
  throw new Error(`expected ${JSON.stringify(text)} to be refused`);
}

describe('parseImagineText', () => {
  it('reads the Midjourney-style example and leaves the prompt clean', () => {
    expect(parseImagineText('a cat on a sofa --ar 16:9 --res 4K --n 2 --model pro')).toEqual({
      prompt: 'a cat on a sofa',
      options: { ratio: '16:9', resolution: '4K', count: 2, model: 'pro' },
      refs: [],
    });
  });

  it('takes flags in the middle of the prompt and joins the words around them', () => {
    expect(parseImagineText('a cat --ar 3:2 on a sofa')).toEqual({
      prompt: 'a cat on a sofa',
      options: { ratio: '3:2' },
      refs: [],
    });
  });

  it('leaves a prompt without flags untouched (apart from trimming)', () => {
    expect(parseImagineText('  a fox — in the snow, well-lit -- moody  ')).toEqual({
      prompt: 'a fox — in the snow, well-lit -- moody',
      options: {},
      refs: [],
    });
  });

  it.each([
    ['--ar 16:9', { ratio: '16:9' }],
    ['--aspect 9:16', { ratio: '9:16' }],
    ['--ratio auto', { ratio: 'auto' }],
    ['--ar AUTO', { ratio: 'auto' }],
    ['--ar 16x9', { ratio: '16:9' }],
    ['--ar 21/9', { ratio: '21:9' }],
    ['--ar 8:1', { ratio: '8:1' }],
    ['--res 2K', { resolution: '2K' }],
    ['--resolution 4k', { resolution: '4K' }],
    ['--quality 1k', { resolution: '1K' }],
    ['--n 3', { count: 3 }],
    ['--count 4', { count: 4 }],
    ['--model nb2', { model: 'nb2' }],
    ['--m standard', { model: 'standard' }],
    ['--creativity 0.3', { creativity: 0.3 }],
    ['--cr 1', { creativity: 1 }],
    ['--temp 0,7', { creativity: 0.7 }],
    ['--cr .5', { creativity: 0.5 }],
    ['--private', { private: true }],
    ['--private=false', { private: false }],
  ])('reads %s', (flags, options) => {
    expect(parseImagineText(`a lighthouse ${flags}`)).toEqual({ prompt: 'a lighthouse', options, refs: [] });
  });

  it('reads --flag=value and case-insensitive flag names', () => {
    expect(parseImagineText('a lighthouse --AR=4:3 --Res=2k --N=2').options).toEqual({
      ratio: '4:3',
      resolution: '2K',
      count: 2,
    });
  });

  it('reads the em dash and en dash phones type for --', () => {
    expect(parseImagineText('a lighthouse —ar 16:9 –res 2K —n 2')).toEqual({
      prompt: 'a lighthouse',
      options: { ratio: '16:9', resolution: '2K', count: 2 },
      refs: [],
    });
  });

  it('reads quoted values, straight and curly', () => {
    expect(parseImagineText('a lighthouse --model "Nano Banana Pro (RunBlob)"').options).toEqual({
      model: 'Nano Banana Pro (RunBlob)',
    });
    expect(parseImagineText('a lighthouse --model “nano banana 2”').options).toEqual({ model: 'nano banana 2' });
    expect(parseImagineText("a lighthouse --model='pro'").options).toEqual({ model: 'pro' });
  });

  it('does not let --private swallow the next word of the prompt', () => {
    expect(parseImagineText('a --private lighthouse at dusk')).toEqual({
      prompt: 'a lighthouse at dusk',
      options: { private: true },
      refs: [],
    });
  });

  it('collects repeated --ref links, unwrapping Slack <url|label> and <url> forms', () => {
    expect(
      parseImagineText('mix these --ref https://example.com/a.png --ref <https://example.com/b.jpg|b.jpg> --ref <https://example.com/c.webp>'),
    ).toEqual({
      prompt: 'mix these',
      options: {},
      refs: ['https://example.com/a.png', 'https://example.com/b.jpg', 'https://example.com/c.webp'],
    });
  });

  it('refuses an unknown ratio, naming the flag as typed and listing the ratios', () => {
    const err = parseError('a cat --ar 7:3');
    expect(err.field).toBe('ratio');
    expect(err.userMessage).toBe(
      '--ar 7:3 is not a ratio this bot knows. Use one of: auto, 1:1, 2:3, 3:2, 3:4, 4:3, 4:5, 5:4, 9:16, 16:9, 21:9, 1:4, 1:8, 4:1, 8:1.',
    );
    expect(parseError('a cat --aspect 7:3').userMessage).toMatch(/^--aspect 7:3 is not a ratio/);
  });

  it('refuses bad values for every flag with a sentence naming it', () => {
    expect(parseError('a cat --res 8K').userMessage).toBe('--res 8K is not a resolution this bot knows. Use one of: 1K, 2K, 4K.');
    expect(parseError('a cat --n 5').userMessage).toBe(
      '--n 5 is not a number of images this bot can make. Use a whole number from 1 to 4, e.g. --n 2.',
    );
    expect(parseError('a cat --count 0').userMessage).toMatch(/^--count 0 is not a number of images/);
    expect(parseError('a cat --n 1.5').userMessage).toMatch(/^--n 1\.5 /);
    expect(parseError('a cat --cr 2').userMessage).toBe('--cr 2 is not a valid creativity. Use a number from 0 to 1, e.g. --cr 0.7.');
    expect(parseError('a cat --temp hot').userMessage).toMatch(/^--temp hot is not a valid creativity/);
    expect(parseError('a cat --private=maybe').userMessage).toBe('--private maybe is not understood. Write just --private.');
    const ref = parseError('a cat --ref ftp://example.com/a.png');
    expect(ref.field).toBe('references');
    expect(ref.userMessage).toMatch(/^--ref ftp:\/\/example\.com\/a\.png is not a link to an image\. Give a link starting with https:\/\//);
  });

  it('refuses a flag with no value', () => {
    expect(parseError('a cat --ar').userMessage).toMatch(/^--ar needs a ratio\. Use one of: auto, 1:1/);
    expect(parseError('a cat --model --n 2').userMessage).toBe('--model needs a model name, e.g. --model pro.');
    expect(parseError('a cat --ref').userMessage).toMatch(/^--ref needs a link to an image/);
  });

  it('refuses an unknown flag, listing the known ones', () => {
    const err = parseError('a cat --stylize 500');
    expect(err.field).toBe('flags');
    expect(err.userMessage).toBe(
      '--stylize is not a flag this bot knows. Flags: --model, --ar, --res, --n, --cr, --private, --ref.',
    );
    // Glued values are not silently left in the prompt.
    expect(parseError('a cat --ar16:9').userMessage).toMatch(/^--ar16:9 is not a flag this bot knows/);
  });

  it('refuses the same option twice, even through two aliases', () => {
    expect(parseError('a cat --ar 1:1 --aspect 16:9').userMessage).toBe('--aspect is given twice. Keep one.');
  });
});

describe('parseOptionValues', () => {
  it('types the values a platform collected (Slack modal strings, Discord typed values)', () => {
    expect(parseOptionValues({ model: 'pro', ratio: '16:9', resolution: '2k', count: '3', creativity: '0.2', private: 'true' })).toEqual({
      model: 'pro',
      ratio: '16:9',
      resolution: '2K',
      count: 3,
      creativity: 0.2,
      private: true,
    });
    expect(parseOptionValues({ count: 2, creativity: 0.5, private: false, ratio: null, model: '', prompt: 'ignored' })).toEqual({
      count: 2,
      creativity: 0.5,
      private: false,
    });
  });

  it('refuses a bad value naming the option', () => {
    expect(() => parseOptionValues({ ratio: '7:3' })).toThrow(ValidationError);
    try {
      parseOptionValues({ count: 9 });
    } catch (err) {
      expect((err as ValidationError).userMessage).toBe(
        'count 9 is not a number of images this bot can make. Use a whole number from 1 to 4, e.g. count 2.',
      );
    }
    expect.assertions(2);
  });
});


describe('helpText', () => {
  it('explains every flag and alias with an example, and names each configured model by a flag that selects it', () => {
    const text = helpText(MODEL_CATALOG);
    for (const flag of ['--ar', '--aspect', '--ratio', '--res', '--resolution', '--quality', '--n', '--count', '--model', '--m', '--creativity', '--cr', '--temp', '--ref']) {
      expect(text).toContain(flag);
    }
    expect(text).toContain('Example: --ar 16:9');
    expect(text).toContain('16:9 (landscape)');
    expect(text).toContain('Nano Banana Pro (Runbase): --model pro');
    // "pro" would pick the Runbase model first, so the RunBlob one is named by its key.
    expect(text).toContain('Nano Banana Pro (RunBlob): --model runblob-pro');
    // Slack cannot post private (ephemeral) results that update, so its help leaves --private out.
    expect(text).not.toContain('--private');
    expect(helpText(MODEL_CATALOG, 'discord')).toContain('--private');
  });

  it('leaves out what no configured model can do', () => {
    const runbase = MODEL_CATALOG.filter((m) => m.provider === 'runbase');
    const text = helpText(runbase);
    expect(text).not.toContain('--cr');
    expect(text).toContain('8:1 (wide banner)');
    expect(helpText(MODEL_CATALOG.filter((m) => m.provider === 'runblob'))).not.toContain('8:1');
  });

  it('every model example in the help parses and selects that model', async () => {
    const { findModel } = await import('../../../../src/engine/models.ts');
    const text = helpText(MODEL_CATALOG);
    for (const m of MODEL_CATALOG) {
      const line = text.split('\n').find((l) => l.trim().startsWith(`${m.label}:`));
      const choice = line?.match(/--model (\S+)/)?.[1];
      expect(choice, m.label).toBeDefined();
      expect(findModel(MODEL_CATALOG, choice ?? '')?.key).toBe(m.key);
    }
  });
});
