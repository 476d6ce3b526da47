import { describe, expect, it } from 'vitest';
import { MODEL_CATALOG, configuredModels } from '../../../../src/engine/models.ts';
import { allCommandsJson } from '../../../../src/platforms/discord/command-json.ts';
import { validateBody } from '../../../fakes/discord/validation.ts';

describe('Discord command JSON', () => {
  it('is valid for Discord and offers every /imagine option with the configured models', () => {
    const models = configuredModels(new Set(['runbase', 'runblob']));
    const commands = allCommandsJson(models);
    expect(validateBody('commandsBulkOverwrite', commands)).toBeUndefined();
    const imagine = commands.find((c) => c.name === 'imagine')!;
    expect(imagine.options.map((o) => [o.name, o.type, o.required])).toEqual([
      ['prompt', 3, true],
      ['model', 3, false],
      ['ratio', 3, false],
      ['resolution', 3, false],
      ['count', 4, false],
      ['creativity', 10, false],
      ['image', 11, false],
      ['image2', 11, false],
      ['image3', 11, false],
      ['image4', 11, false],
      ['private', 5, false],
    ]);
    const option = (name: string) => imagine.options.find((o) => o.name === name)!;
    expect(option('model').choices?.map((c) => c.value)).toEqual(MODEL_CATALOG.map((m) => m.key));
    expect(option('resolution').choices?.map((c) => c.value)).toEqual(['1K', '2K', '4K']);
    expect(option('ratio').choices?.length).toBeLessThanOrEqual(25);
    expect(option('count')).toMatchObject({ min_value: 1, max_value: 4 });
    expect(option('creativity')).toMatchObject({ min_value: 0, max_value: 1 });
    expect(option('prompt').max_length).toBeLessThanOrEqual(6000);
    // Usable in servers and in DMs with the bot.
    expect(imagine.contexts).toEqual([0, 1]);
    expect(commands.find((c) => c.name === 'quota')).toMatchObject({ options: [] });
    expect(imagine.default_member_permissions).toBeUndefined();
  });

  it('registers the admin command for servers only, shown by default to members with Manage Server', () => {
    const commands = allCommandsJson(configuredModels(new Set(['runbase'])));
    const admin = commands.find((c) => c.name === 'imagine-admin')!;
    // MANAGE_GUILD is 1 << 5 (https://discord.com/developers/docs/topics/permissions#permissions-bitwise-permission-flags), as a string.
    expect(admin).toMatchObject({ contexts: [0], default_member_permissions: '32' });
    expect(admin.options.map((o) => [o.name, o.type, o.required])).toEqual([['action', 3, false]]);
    expect(commands.find((c) => c.name === 'settings')).toMatchObject({ contexts: [0, 1] });
    expect(commands.filter((c) => c.default_member_permissions !== undefined).map((c) => c.name)).toEqual(['imagine-admin']);
  });

  it('offers only configured models, and no creativity without a RunBlob model', () => {
    const imagine = allCommandsJson(configuredModels(new Set(['runbase']))).find((c) => c.name === 'imagine')!;
    expect(imagine.options.find((o) => o.name === 'model')!.choices?.map((c) => c.value)).toEqual(['runbase-pro', 'runbase-2']);
    expect(imagine.options.some((o) => o.name === 'creativity')).toBe(false);
  });
});
