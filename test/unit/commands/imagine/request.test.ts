import { describe, expect, it } from 'vitest';
import { buildImagineRequest, type ImagineInput } from '../../../../commands/imagine/index.ts';
import { refusal } from '../../../support/errors.ts';
import { MODEL_CATALOG, configuredModels, type ModelSpec } from '../../../../src/engine/models.ts';
import { imagineRequestSchema } from '../../../../src/engine/request.ts';

const models = MODEL_CATALOG;
const defaultModel = MODEL_CATALOG[1] as ModelSpec; // runbase-2
const requester = { platform: 'discord', userId: '111' } as const;

function build(input: Partial<ImagineInput>, list: readonly ModelSpec[] = models) {
  return buildImagineRequest({ prompt: 'a cat', options: {}, refs: [], requester, location: { channelId: 'c1' }, ...input }, list, defaultModel);
}

describe('buildImagineRequest', () => {
  it('applies the defaults: default model, 1:1, 1K, one image', () => {
    const request = build({});
    expect(request).toEqual({
      prompt: 'a cat',
      model: 'runbase-2',
      modelFromDefault: true,
      ratio: '1:1',
      resolution: '1K',
      count: 1,
      references: [],
      requester,
      location: { channelId: 'c1' },
      // Nobody chose these: the server's defaults may fill them (docs/governance.md).
      defaulted: ['model', 'ratio', 'resolution'],
    });
    // What it builds is what the engine accepts.
    expect(imagineRequestSchema.safeParse(request).success).toBe(true);
  });

  it('defaults the ratio to auto when reference images are given (attachments or --ref)', () => {
    expect(build({ refs: [{ kind: 'url', url: 'https://cdn.discordapp.com/a.png' }] }).ratio).toBe('auto');
    const request = build({ prompt: 'a cat --ref https://example.com/b.png' });
    expect(request.ratio).toBe('auto');
    expect(request.references).toEqual([{ kind: 'url', url: 'https://example.com/b.png' }]);
  });

  it('reads flags in the prompt and resolves the model by alias, key or label', () => {
    const request = build({ prompt: 'a cat on a sofa --ar 16:9 --res 4K --n 2 --model standard --cr 0.4' });
    expect(request).toMatchObject({ prompt: 'a cat on a sofa', model: 'runblob-standard', ratio: '16:9', resolution: '4K', count: 2, creativity: 0.4 });
    expect(build({ options: { model: 'runblob-pro' } }).model).toBe('runblob-pro');
    expect(build({ options: { model: 'nano banana 2 (runblob)' } }).model).toBe('runblob-2');
  });

  it('lets explicit platform options win over flags typed in the prompt, and keeps attachments before --ref links', () => {
    const request = build({
      prompt: 'a cat --ar 16:9 --n 3 --ref https://example.com/2.png',
      options: { ratio: '9:16', count: undefined },
      refs: [{ kind: 'url', url: 'https://cdn.discordapp.com/1.png' }],
    });
    expect(request.ratio).toBe('9:16');
    expect(request.count).toBe(3); // an undefined explicit option does not erase the flag
    expect(request.references?.map((r) => (r.kind === 'url' ? r.url : r.path))).toEqual([
      'https://cdn.discordapp.com/1.png',
      'https://example.com/2.png',
    ]);
  });

  it('refuses a model that is not configured, listing the ones that are', () => {
    const runbaseOnly = configuredModels(new Set(['runbase']));
    const err = refusal(() => build({ prompt: 'a cat --model standard' }, runbaseOnly));
    expect(err.field).toBe('model');
    expect(err.userMessage).toBe(
      '"standard" is not a model this bot offers. Choose one of: Nano Banana Pro (Runbase) (--model runbase-pro), Nano Banana 2 (Runbase) (--model runbase-2).',
    );
  });

  it('refuses an empty prompt (flags only) and passes flag errors through', () => {
    expect(refusal(() => build({ prompt: '--ar 16:9' })).userMessage).toMatch(/^The prompt is empty/);
    expect(refusal(() => build({ prompt: 'a cat --res 8K' })).userMessage).toMatch(/^--res 8K is not a resolution/);
  });

  it('refuses a prompt over 4000 characters, saying how long it is', () => {
    expect(refusal(() => build({ prompt: 'a'.repeat(4001) })).userMessage).toBe(
      'The prompt is 4001 characters long; the limit is 4000. Shorten it.',
    );
  });
});
