/**
 * The Discord dispatcher with small fakes: an interaction object with the fields discord.js gives
 * the handler, an engine, and the webhook calls. What is asserted is what the user would see:
 * the first response (ephemeral or not), the placeholder's fate, and the private sentence.
 */
import { MessageFlags, type Interaction } from 'discord.js';
import { describe, expect, it } from 'vitest';
import type { EngineApi } from '../../../../src/engine/api.ts';
import { UNREAD_PREFERENCES, unreadPreferencesNotice, type UserPreferences } from '../../../../src/engine/governance/api.ts';
import type { JobRecord } from '../../../../src/engine/job.ts';
import { configuredModels, type ModelSpec } from '../../../../src/engine/models.ts';
import type { ImagineRequestInput } from '../../../../src/engine/request.ts';
import { QuotaExceededError } from '../../../../src/engine/errors.ts';
import { sentenceFor } from '../../../../src/errors.ts';
import { COMMAND_NAMES, imagine } from '../../../../commands/index.ts';
import { createLogger } from '../../../../src/log.ts';
import { InteractionHandler, commandInputOf } from '../../../../src/platforms/discord/interactions.ts';
import type { DiscordMessages } from '../../../../src/platforms/discord/messages.ts';
import { makeJob } from '../../commands/job-fixture.ts';
import { startWithClient } from '../../../fakes/discord/test-client.ts';

const models = configuredModels(new Set(['runbase', 'runblob']));
const runblobStandard = models.find((m) => m.key === 'runblob-standard') as ModelSpec;

type Call = [string, ...unknown[]];

function fakeEngine(opts: { submit?: (r: ImagineRequestInput) => Promise<JobRecord>; preferences?: { now?: UserPreferences; later?: UserPreferences } } = {}) {
  const submitted: ImagineRequestInput[] = [];
  const engine = {
    models,
    defaultModel: models[0] as ModelSpec,
    submit: async (r: ImagineRequestInput) => (submitted.push(r), opts.submit ? opts.submit(r) : makeJob({ id: 'job_1' })),
    getJob: async () => undefined,
    quota: async () => ({ exempt: false, limit: 20, used: 3, left: 17, resetsAt: Date.UTC(2026, 11, 6), costs: { '1K': 1, '2K': 2, '4K': 4 } }),
    // /imagine reads the requester's /settings before prepare: at once where the store can
    // (SQLite), else asynchronously (Redis). Nobody here has any unless a test says so.
    governance: { preferencesNow: () => opts.preferences?.now, preferences: async () => opts.preferences?.later ?? {} },
  } as unknown as EngineApi;
  return { engine, submitted };
}

function fakeMessages(calls: Call[]): DiscordMessages {
  const record = (name: string) => async (...args: unknown[]) => (calls.push([name, ...args.slice(1)]), { id: 'm1' });
  return { editOriginal: record('editOriginal'), followUp: record('followUp'), deleteOriginal: record('deleteOriginal') } as unknown as DiscordMessages;
}

/** A slash command as discord.js hands it over: only what the dispatcher reads. */
function slashCommand(calls: Call[], name: string, values: Record<string, string | number | boolean>): Interaction {
  const base = interactionBase(calls);
  return {
    ...base,
    commandName: name,
    isChatInputCommand: () => true,
    isButton: () => false,
    isStringSelectMenu: () => false,
    options: {
      data: Object.entries(values).map(([n, value]) => ({ name: n, value })),
      getAttachment: () => null,
    },
  } as unknown as Interaction;
}

function button(calls: Call[], customId: string): Interaction {
  return {
    ...interactionBase(calls),
    customId,
    isChatInputCommand: () => false,
    isButton: () => true,
    isStringSelectMenu: () => false,
    message: { id: 'msg1', flags: { has: () => false } },
    deferUpdate: async () => void calls.push(['deferUpdate']),
  } as unknown as Interaction;
}

function interactionBase(calls: Call[]) {
  return {
    id: 'i1',
    applicationId: 'app1',
    token: 'tok',
    createdTimestamp: Date.now(),
    isModalSubmit: () => false,
    channelId: 'c1',
    guildId: 'g1',
    user: { id: 'u1', username: 'ada', globalName: null },
    deferReply: async (o: { flags?: number }) => void calls.push(['deferReply', o.flags === MessageFlags.Ephemeral ? 'ephemeral' : 'public']),
    reply: async (o: { content: string; flags?: number }) => void calls.push(['reply', o.flags === MessageFlags.Ephemeral ? 'ephemeral' : 'public', o.content]),
  };
}

function handler(engine: EngineApi, calls: Call[]) {
  return new InteractionHandler({
    engine,
    log: createLogger({ level: 'silent' }),
    messages: fakeMessages(calls),
    tellAfterPlaceholder: (jobId, location, content) => void calls.push(['tellAfterPlaceholder', jobId, location.ephemeral, content]),
  });
}

describe('Discord dispatcher', () => {
  it('runs /imagine through the registry: a public defer, then the job submitted where the placeholder is', async () => {
    const calls: Call[] = [];
    const { engine, submitted } = fakeEngine();
    await handler(engine, calls).handle(slashCommand(calls, 'imagine', { prompt: 'a fox --ar 16:9', count: 2 }));
    expect(calls).toEqual([['deferReply', 'public']]);
    expect(submitted).toHaveLength(1);
    expect(submitted[0]).toMatchObject({ prompt: 'a fox', ratio: '16:9', count: 2, location: { interactionId: 'i1', ephemeral: false } });
  });

  it('refuses a bad option with an ephemeral reply before anything public exists, and submits nothing', async () => {
    const calls: Call[] = [];
    const { engine, submitted } = fakeEngine();
    await handler(engine, calls).handle(slashCommand(calls, 'imagine', { prompt: 'a dog --ar 7:3' }));
    expect(calls).toHaveLength(1);
    expect(calls[0]?.slice(0, 2)).toEqual(['reply', 'ephemeral']);
    expect(calls[0]?.[2]).toMatch(/^⚠️ --ar 7:3 is not a ratio this bot knows/);
    expect(submitted).toEqual([]);
  });

  it('refuses what the chosen model cannot make (4K on RunBlob standard) before answering', async () => {
    const calls: Call[] = [];
    const { engine, submitted } = fakeEngine();
    await handler(engine, calls).handle(slashCommand(calls, 'imagine', { prompt: 'a dog', model: runblobStandard.key, resolution: '4K' }));
    expect(calls.map((c) => c.slice(0, 2))).toEqual([['reply', 'ephemeral']]);
    expect(String(calls[0]?.[2])).toContain('cannot make 4K images');
    expect(submitted).toEqual([]);
  });

  it('a refusal after a public defer removes the placeholder and tells the requester privately', async () => {
    const calls: Call[] = [];
    const refusal = new QuotaExceededError(4, 1, Date.UTC(2026, 11, 6));
    const { engine } = fakeEngine({ submit: async () => Promise.reject(refusal) });
    await handler(engine, calls).handle(slashCommand(calls, 'imagine', { prompt: 'a big batch', count: 4 }));
    expect(calls.map((c) => c[0])).toEqual(['deferReply', 'deleteOriginal', 'followUp']);
    expect(calls[2]?.[1]).toMatchObject({ content: `⚠️ ${refusal.userMessage}`, flags: MessageFlags.Ephemeral });
  });

  it('--private defers ephemerally, and a refusal then edits the private placeholder', async () => {
    const calls: Call[] = [];
    const { engine } = fakeEngine({ submit: async () => Promise.reject(new QuotaExceededError(1, 0, Date.UTC(2026, 11, 6))) });
    await handler(engine, calls).handle(slashCommand(calls, 'imagine', { prompt: 'a secret --private' }));
    expect(calls.map((c) => c[0])).toEqual(['deferReply', 'editOriginal']);
    expect(calls[0]).toEqual(['deferReply', 'ephemeral']);
  });

  it('reads /settings at once where the store can: a private preference defers ephemerally in the same turn as the interaction', async () => {
    const calls: Call[] = [];
    const { engine } = fakeEngine({ preferences: { now: { private: true } } });
    const handling = handler(engine, calls).handle(slashCommand(calls, 'imagine', { prompt: 'a secret' }));
    // Nothing awaited yet: the defer is already on its way.
    expect(calls).toEqual([['deferReply', 'ephemeral']]);
    await handling;
  });

  it('where the store cannot read at once (Redis), reads /settings before the defer', async () => {
    const calls: Call[] = [];
    const { engine } = fakeEngine({ preferences: { later: { private: true } } });
    await handler(engine, calls).handle(slashCommand(calls, 'imagine', { prompt: 'a secret' }));
    expect(calls[0]).toEqual(['deferReply', 'ephemeral']);
  });

  it('/settings that could not be read in time: the defer is ephemeral, the job goes ahead, and the requester will be told why', async () => {
    const calls: Call[] = [];
    const { engine, submitted } = fakeEngine({ preferences: { later: UNREAD_PREFERENCES } });
    await handler(engine, calls).handle(slashCommand(calls, 'imagine', { prompt: 'a cat' }));
    expect(calls[0]).toEqual(['deferReply', 'ephemeral']);
    expect(submitted).toHaveLength(1);
    // Not a follow-up now (the deferred reply would become it): once the placeholder is shown.
    expect(calls.slice(1)).toEqual([['tellAfterPlaceholder', 'job_1', true, unreadPreferencesNotice({ private: true })]]);
  });

  it('/settings that could not be read, but the user chose public: posted in public, told only that the defaults applied', async () => {
    const calls: Call[] = [];
    const { engine } = fakeEngine({ preferences: { later: UNREAD_PREFERENCES } });
    await handler(engine, calls).handle(slashCommand(calls, 'imagine', { prompt: 'a cat', private: false }));
    expect(calls[0]).toEqual(['deferReply', 'public']);
    expect(calls.slice(1)).toEqual([['tellAfterPlaceholder', 'job_1', false, unreadPreferencesNotice({ private: false })]]);
  });

  it('/settings read (private by default, or none): nobody is told anything', async () => {
    for (const preferences of [{ later: { private: true } }, { now: {} }]) {
      const calls: Call[] = [];
      const { engine } = fakeEngine({ preferences });
      await handler(engine, calls).handle(slashCommand(calls, 'imagine', { prompt: 'a cat' }));
      expect(calls.filter((c) => c[0] === 'tellAfterPlaceholder')).toEqual([]);
    }
  });

  it('/quota answers privately with the allowance', async () => {
    const calls: Call[] = [];
    const { engine } = fakeEngine();
    await handler(engine, calls).handle(slashCommand(calls, 'quota', {}));
    expect(calls[0]).toEqual(['deferReply', 'ephemeral']);
    expect(calls[1]?.[0]).toBe('editOriginal');
    expect(calls[1]?.[1]).toMatchObject({ content: expect.stringMatching(/used 3 of 20 units today; 17 left/) });
  });

  it('an unknown command or control gets its catalogue sentence, privately', async () => {
    const calls: Call[] = [];
    const { engine } = fakeEngine();
    await handler(engine, calls).handle(slashCommand(calls, 'paint', {}));
    await handler(engine, calls).handle(button(calls, 'someone-else:thing'));
    expect(calls).toEqual([
      ['reply', 'ephemeral', `⚠️ ${sentenceFor('UNKNOWN_COMMAND', { command: 'paint', known: COMMAND_NAMES })}`],
      ['reply', 'ephemeral', `⚠️ ${sentenceFor('UNKNOWN_CONTROL', {})}`],
    ]);
  });

  it('a click on a job the store no longer has: deferred, then the placeholder removed and the reason told privately', async () => {
    const calls: Call[] = [];
    const { engine } = fakeEngine();
    await handler(engine, calls).handle(button(calls, 'imagine:rerun:job_gone'));
    expect(calls.map((c) => c[0])).toEqual(['deferReply', 'deleteOriginal', 'followUp']);
    expect(calls[2]?.[1]).toMatchObject({ content: `⚠️ ${sentenceFor('JOB_NOT_FOUND', {})}` });
  });
});

describe('commandInputOf, on the interaction discord.js builds from a real payload', () => {
  it('reads the options the user gave, and the reference images in the declared order whatever order they were filled in', async () => {
    const { discord, seen } = await startWithClient();
    const file = (filename: string) => ({ filename, data: Buffer.from(filename), contentType: 'image/png' });
    await discord.sendCommand({
      name: 'imagine',
      options: [
        { name: 'ratio', type: 3, value: '16:9' },
        { name: 'prompt', type: 3, value: 'a lighthouse' },
        { name: 'count', type: 4, value: 2 },
      ],
      // Filled in last-first: Discord sends them in that order.
      attachments: { image3: file('c.png'), image: file('a.png'), image2: file('b.png') },
    });
    await discord.waitFor(() => seen.length === 1, 5_000, 'the interaction');
    const i = seen[0]!;
    if (!i.isChatInputCommand()) throw new Error('not a slash command');

    const input = commandInputOf(i, imagine);

    expect(input.options).toEqual({ ratio: '16:9', prompt: 'a lighthouse', count: 2 });
    expect(input.refs.map((r) => r.name)).toEqual(['a.png', 'b.png', 'c.png']);
    expect(input.refs.every((r) => r.kind === 'url' && r.url.startsWith(discord.cdnUrl))).toBe(true);
    expect(input.requester).toMatchObject({ platform: 'discord', userId: i.user.id });
  });
});
