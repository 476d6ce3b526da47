/**
 * One /imagine, four ways in: Discord's typed options, Slack's flags in the command text, Slack's
 * form, and the command line. Each platform only collects; the imagine command turns what it
 * collected into the engine's request, so the same choices must give the same request.
 */
import type { ChatInputCommandInteraction } from 'discord.js';
import { describe, expect, it } from 'vitest';
import { imagine, type CommandInput } from '../../../../commands/index.ts';
import { sentenceFor } from '../../../../src/errors.ts';
import type { EngineApi } from '../../../../src/engine/api.ts';
import { UNREAD_PREFERENCES } from '../../../../src/engine/governance/api.ts';
import { configuredModels, type ModelSpec } from '../../../../src/engine/models.ts';
import type { ImagineRequestInput } from '../../../../src/engine/request.ts';
import { parseCliArgs } from '../../../../src/cli/imagine.ts';
import { commandInputOf } from '../../../../src/platforms/discord/interactions.ts';
import { readSubmission } from '../../../../src/platforms/slack/modal.ts';

const models = configuredModels(new Set(['runbase', 'runblob']));
const context = { models, defaultModel: models[0] as ModelSpec };
const requester = { platform: 'discord', userId: 'u1' } as const;

/** What the imagine command would submit for this input (requester and location aside). */
async function requestFor(input: CommandInput): Promise<Omit<ImagineRequestInput, 'requester' | 'location'>> {
  let submitted: ImagineRequestInput | undefined;
  const engine = { ...context, submit: async (r: ImagineRequestInput) => ((submitted = r), undefined) } as unknown as EngineApi;
  await imagine.prepare(input, context).run({ engine, submit: (r) => engine.submit(r), format: { bold: (t) => t, mention: () => '', time: () => '', escape: (t) => t }, location: {}, reply: async () => {} });
  const { requester: _r, location: _l, ...rest } = submitted as ImagineRequestInput;
  return rest;
}

/** Discord: the slash command's options, read as the dispatcher reads them. */
function discordInput(values: Record<string, string | number>): CommandInput {
  const i = {
    user: { id: 'u1', username: 'ada', globalName: null },
    options: { data: Object.entries(values).map(([name, value]) => ({ name, value })), getAttachment: () => null },
  } as unknown as ChatInputCommandInteraction;
  return commandInputOf(i, imagine);
}

describe('the same /imagine through every platform gives the same request', () => {
  const expected = { prompt: 'a red fox in the snow', model: 'runblob-pro', ratio: '16:9', resolution: '2K', count: 2, creativity: 0.5, references: [] };

  it('Discord options, Slack flags, Slack\'s form and the CLI agree', async () => {
    const discord = await requestFor(
      discordInput({ prompt: 'a red fox in the snow', model: 'runblob-pro', ratio: '16:9', resolution: '2K', count: 2, creativity: 0.5 }),
    );
    const slackText = await requestFor({
      options: { prompt: 'a red fox in the snow --model runblob-pro --ar 16:9 --res 2K --n 2 --cr 0.5' },
      refs: [],
      requester,
    });
    const cli = parseCliArgs(['a red fox in the snow', '--model', 'runblob-pro', '--ar', '16x9', '--quality', '2k', '--count', '2', '--temp', '0,5']);
    const fromCli = await requestFor({ options: { prompt: cli.prompt, ...cli.options }, refs: [], requester: { platform: 'cli', userId: 'op' } });
    // Slack's form: what a submission's view state holds (selects send selected_option, inputs value).
    const form = readSubmission({
      prompt: { prompt: { type: 'plain_text_input', value: 'a red fox in the snow' } },
      model: { model: { type: 'static_select', selected_option: { value: 'runblob-pro' } } },
      ratio: { ratio: { type: 'static_select', selected_option: { value: '16:9' } } },
      resolution: { resolution: { type: 'static_select', selected_option: { value: '2K' } } },
      count: { count: { type: 'static_select', selected_option: { value: '2' } } },
      creativity: { creativity: { type: 'plain_text_input', value: '0.5' } },
    });
    const slackForm = await requestFor({ options: { ...form.options, prompt: form.prompt }, refs: [], requester });
    expect(discord).toEqual(expected);
    expect(slackForm).toEqual(expected);
    expect(slackText).toEqual(expected);
    expect(fromCli).toEqual(expected);
  });

  it('flags typed in Discord\'s prompt read as they do in Slack, and explicit options win over them', async () => {
    const inPrompt = await requestFor(discordInput({ prompt: 'a red fox in the snow --model runblob-pro --ar 16:9 --res 2K --n 2 --cr 0.5' }));
    expect(inPrompt).toEqual(expected);
    const both = await requestFor(discordInput({ prompt: 'a red fox in the snow --ar 1:1 --model runblob-pro --res 2K --n 2 --cr 0.5', ratio: '16:9' }));
    expect(both).toEqual(expected);
  });
});

describe('what only one platform can do', () => {
  it('--private is refused where results cannot be private (Slack), so nothing is posted publicly by mistake', () => {
    const slack = { platform: 'slack', userId: 'U1' } as const;
    expect(() => imagine.prepare({ options: { prompt: 'a secret cat --private' }, refs: [], requester: slack }, context)).toThrow(
      expect.objectContaining({ userMessage: sentenceFor('PRIVATE_NOT_OFFERED', { where: 'Discord' }) }),
    );
    expect(imagine.prepare({ options: { prompt: 'a secret cat --private' }, refs: [], requester }, context).visibility).toBe('private');
  });

  it('/settings that could not be read answer privately on Discord, unless the user chose public; Slack posts as usual', () => {
    const unread = { ...context, preferences: UNREAD_PREFERENCES };
    expect(imagine.prepare({ options: { prompt: 'a cat' }, refs: [], requester }, unread).visibility).toBe('private');
    expect(imagine.prepare({ options: { prompt: 'a cat', private: false }, refs: [], requester }, unread).visibility).toBe('public');
    const slack = { platform: 'slack', userId: 'U1' } as const;
    expect(imagine.prepare({ options: { prompt: 'a cat' }, refs: [], requester: slack }, unread).visibility).toBe('public');
  });
});
