import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../../commands/index.ts';
import {
  DISCORD_COMMAND_NAME_PATTERN,
  DISCORD_MAX_CHOICES,
  DISCORD_MAX_DESCRIPTION_CHARS,
  IMAGINE_DEFINITION,
  IMAGINE_OPTIONS,
  IMAGINE_VALUE_OPTION_NAMES,
  resolveOptions,
  type ImagineOptions,
} from '../../../commands/index.ts';
import { ALL_RATIOS, MODEL_CATALOG, configuredModels } from '../../../src/engine/models.ts';
import { MAX_PROMPT_CHARS } from '../../../src/engine/request.ts';

describe('command definitions', () => {
  it('lists imagine, quota, history, show, settings and imagine-admin explicitly', () => {
    expect(COMMANDS.map((c) => c.name)).toEqual(['imagine', 'quota', 'history', 'show', 'settings', 'imagine-admin']);
  });

  it.each(COMMANDS.map((c) => [c.name, c] as const))('%s fits Discord limits for names, descriptions and choices', (_name, command) => {
    expect(command.name).toMatch(DISCORD_COMMAND_NAME_PATTERN);
    expect(command.description.length).toBeGreaterThan(0);
    expect(command.description.length).toBeLessThanOrEqual(DISCORD_MAX_DESCRIPTION_CHARS);
    const options = resolveOptions(command, MODEL_CATALOG);
    expect(options.length).toBeLessThanOrEqual(25);
    for (const option of options) {
      expect(option.name, option.name).toMatch(DISCORD_COMMAND_NAME_PATTERN);
      expect(option.description.length, option.name).toBeGreaterThan(0);
      expect(option.description.length, option.name).toBeLessThanOrEqual(DISCORD_MAX_DESCRIPTION_CHARS);
      if (option.choices) {
        expect(option.choices.length, option.name).toBeGreaterThan(0);
        expect(option.choices.length, option.name).toBeLessThanOrEqual(DISCORD_MAX_CHOICES);
        for (const choice of option.choices) {
          expect(choice.name.length).toBeLessThanOrEqual(100);
          expect(choice.value.length).toBeLessThanOrEqual(100);
        }
      }
    }
  });

  it('puts required options first, as Discord demands', () => {
    const options = resolveOptions(IMAGINE_DEFINITION, MODEL_CATALOG);
    const firstOptional = options.findIndex((o) => !o.required);
    expect(options.slice(firstOptional).some((o) => o.required)).toBe(false);
    expect(options[0]).toMatchObject({ name: 'prompt', type: 'string', required: true, maxLength: MAX_PROMPT_CHARS });
  });

  it('offers the configured models as choices, labelled for users and valued by key', () => {
    const runblobOnly = configuredModels(new Set(['runblob']));
    const model = resolveOptions(IMAGINE_DEFINITION, runblobOnly).find((o) => o.name === 'model');
    expect(model?.choices).toEqual([
      { name: 'Nano Banana (RunBlob)', value: 'runblob-standard' },
      { name: 'Nano Banana Pro (RunBlob)', value: 'runblob-pro' },
      { name: 'Nano Banana 2 (RunBlob)', value: 'runblob-2' },
    ]);
  });

  it('offers every ratio with a shape label, and the limits of count and creativity', () => {
    const options = resolveOptions(IMAGINE_DEFINITION, MODEL_CATALOG);
    const ratio = options.find((o) => o.name === 'ratio');
    expect(ratio?.choices?.map((c) => c.value)).toEqual([...ALL_RATIOS]);
    expect(ratio?.choices).toContainEqual({ name: '16:9 (landscape)', value: '16:9' });
    expect(options.find((o) => o.name === 'resolution')?.choices?.map((c) => c.value)).toEqual(['1K', '2K', '4K']);
    expect(options.find((o) => o.name === 'count')).toMatchObject({ type: 'integer', minValue: 1, maxValue: 4 });
    expect(options.find((o) => o.name === 'creativity')).toMatchObject({ type: 'number', minValue: 0, maxValue: 1 });
  });

  it('offers only ratios, resolutions and options some configured model supports', () => {
    const runblob = configuredModels(new Set(['runblob']));
    const options = resolveOptions(IMAGINE_DEFINITION, runblob);
    expect(options.find((o) => o.name === 'ratio')?.choices?.map((c) => c.value)).toEqual([
      'auto', '1:1', '2:3', '3:2', '3:4', '4:3', '4:5', '5:4', '9:16', '16:9', '21:9',
    ]);
    const standardOnly = MODEL_CATALOG.filter((m) => m.key === 'runblob-standard');
    expect(resolveOptions(IMAGINE_DEFINITION, standardOnly).find((o) => o.name === 'resolution')?.choices).toEqual([{ name: '1K', value: '1K' }]);
    // Creativity exists only on RunBlob models.
    expect(options.some((o) => o.name === 'creativity')).toBe(true);
    const runbase = resolveOptions(IMAGINE_DEFINITION, configuredModels(new Set(['runbase'])));
    expect(runbase.some((o) => o.name === 'creativity')).toBe(false);
  });

  it('keeps attachments and private to Discord', () => {
    const discord = resolveOptions(IMAGINE_DEFINITION, MODEL_CATALOG, 'discord').map((o) => o.name);
    const slack = resolveOptions(IMAGINE_DEFINITION, MODEL_CATALOG, 'slack').map((o) => o.name);
    expect(discord).toEqual(['prompt', 'model', 'ratio', 'resolution', 'count', 'creativity', 'image', 'image2', 'image3', 'image4', 'private']);
    expect(slack).toEqual(['prompt', 'model', 'ratio', 'resolution', 'count', 'creativity']);
  });

  it('gives every value option at least one flag, with no flag used twice', () => {
    const flags = IMAGINE_VALUE_OPTION_NAMES.flatMap((name) => IMAGINE_OPTIONS[name].flags);
    expect(new Set(flags).size).toBe(flags.length);
    expect(IMAGINE_VALUE_OPTION_NAMES).toEqual(['model', 'ratio', 'resolution', 'count', 'creativity', 'private']);
  });

  it('derives the parsed option types from the data', () => {
    // Compile-time check (tsc runs over tests): a wrong type here fails `npm run typecheck`.
    const options: ImagineOptions = { model: 'pro', ratio: '16:9', resolution: '4K', count: 2, creativity: 0.5, private: true };
    // @ts-expect-error 7:3 is not one of the ratio choices
    const bad: Partial<ImagineOptions> = { ratio: '7:3' };
    expect(Object.keys(options)).toEqual([...IMAGINE_VALUE_OPTION_NAMES]);
    expect(bad).toBeDefined();
  });
});
