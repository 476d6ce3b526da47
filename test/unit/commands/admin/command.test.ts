/**
 * /imagine-admin and /settings as commands: what they ask of the engine's governance, what they
 * refuse before asking (a DM, a mention the server doesn't have), and what they answer.
 * The governance here is a recording stand-in (the real one is tested in
 * test/integration/governance.test.ts and through the e2e tests).
 */
import { describe, expect, it } from 'vitest';
import { imagineAdmin, settings, imagine, PLAIN_FORMAT, usageText, auditText, type CommandSurface, type ServerDirectory } from '../../../../commands/index.ts';
import type { EngineApi } from '../../../../src/engine/api.ts';
import { serverSettingsSchema, type AdminAction, type GovernanceApi, type UserPreferences } from '../../../../src/engine/governance/api.ts';
import { MODEL_CATALOG } from '../../../../src/engine/models.ts';
import type { ImagineRequestInput, Requester } from '../../../../src/engine/request.ts';
import { BotError, errorCode } from '../../../../src/errors.ts';

const models = MODEL_CATALOG;
const context = { models, defaultModel: models[0]! };
const admin: Requester = { platform: 'discord', userId: '900', scope: 'g1', channelId: 'c1', roles: [] };

function fakeGovernance() {
  const applied: AdminAction[] = [];
  let prefs: UserPreferences = {};
  const governance = {
    ceilings: { defaultDailyUnits: 10, maxDailyUnits: 100, allowUnlimited: false },
    settings: async () => serverSettingsSchema.parse({}),
    apply: async (_scope: string, _actor: Requester, action: AdminAction) => {
      applied.push(action);
      return serverSettingsSchema.parse(action.kind === 'daily-units' ? { dailyUnits: action.units ?? undefined } : {});
    },
    usage: async () => ({ period: 'day', label: '2026-12-05', total: { images: 3, units: 5, usd: 0.12 }, byUser: [{ key: '7', images: 3, units: 5, usd: 0.12 }], byModel: [{ key: models[0]!.key, images: 3, units: 5, usd: 0.12 }] }),
    audit: async () => [{ at: Date.UTC(2026, 11, 5, 16, 38), actorId: '900', kind: 'admin', summary: 'set daily units to 20' }],
    preferences: async () => prefs,
    setPreferences: async (_r: Requester, p: UserPreferences) => (prefs = p),
  } as unknown as GovernanceApi;
  return { governance, applied, prefs: () => prefs };
}

function surface(governance: GovernanceApi, directory?: ServerDirectory) {
  const replies: string[] = [];
  const submitted: ImagineRequestInput[] = [];
  const s: CommandSurface = {
    engine: { governance, models, defaultModel: models[0]! } as unknown as EngineApi,
    submit: async (r) => (submitted.push(r), undefined as never),
    format: PLAIN_FORMAT,
    location: {},
    reply: async (text) => void replies.push(text),
    ...(directory && { directory }),
  };
  return { s, replies, submitted };
}

const directory = (known: string[]): ServerDirectory => ({
  hasChannel: async (id) => known.includes(id),
  hasRole: async (id) => known.includes(id),
  hasMember: async (id) => known.includes(id),
});

async function code(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    expect(err).toBeInstanceOf(BotError);
    return errorCode(err);
  }
  throw new Error('not refused');
}

describe('/imagine-admin', () => {
  it('is an admin command, refused where there is no server, before anything is asked', async () => {
    expect(imagineAdmin.admin).toBe(true);
    expect(await code(() => imagineAdmin.prepare({ options: { action: 'daily 5' }, refs: [], requester: { platform: 'discord', userId: '900' } }, context))).toBe('ADMIN_NEEDS_SERVER');
  });

  it('checks mentions against the server, then applies and confirms with the new value', async () => {
    const g = fakeGovernance();
    const run = (text: string, known: string[]) => imagineAdmin.prepare({ options: { action: text }, refs: [], requester: admin }, context).run(surface(g.governance, directory(known)).s);
    expect(await code(run('channels allow <#11111>', []))).toBe('UNKNOWN_CHANNEL');
    expect(await code(run('tier <@&22222> 5', []))).toBe('UNKNOWN_ROLE');
    expect(await code(run('block <@33333>', []))).toBe('UNKNOWN_USER');
    expect(g.applied).toEqual([]);
    const { s, replies } = surface(g.governance, directory(['33333']));
    await imagineAdmin.prepare({ options: { action: 'block <@33333>' }, refs: [], requester: admin }, context).run(s);
    expect(g.applied).toEqual([{ kind: 'block', userId: '33333' }]);
    await imagineAdmin.prepare({ options: { action: 'daily 20' }, refs: [], requester: admin }, context).run(s);
    expect(replies[1]).toBe('Done: members now get 20 units per day.');
  });

  it('a role mention on a platform without roles (Slack: no hasRole) is unknown', async () => {
    const g = fakeGovernance();
    const slack: ServerDirectory = { hasChannel: async () => true, hasMember: async () => true };
    const inv = imagineAdmin.prepare({ options: { action: 'tier <@&22222> 5' }, refs: [], requester: { ...admin, platform: 'slack' } }, context);
    expect(await code(inv.run(surface(g.governance, slack).s))).toBe('UNKNOWN_ROLE');
  });

  it('answers privately with the summary, usage and audit views', async () => {
    const g = fakeGovernance();
    const { s, replies } = surface(g.governance, directory([]));
    for (const action of ['', 'usage', 'audit']) {
      const inv = imagineAdmin.prepare({ options: { action }, refs: [], requester: admin }, context);
      expect(inv.visibility).toBe('private');
      await inv.run(s);
    }
    expect(replies[0]).toContain("Daily units per member: 10 units (the bot's default)");
    expect(replies[1]).toBe(usageText(await g.governance.usage('discord:g1', 'day', 10), PLAIN_FORMAT));
    expect(replies[1]).toContain('1. <@7>: 3 images, 5 units, $0.12');
    expect(replies[2]).toBe(auditText(await g.governance.audit('discord:g1', 15), PLAIN_FORMAT));
    expect(replies[2]).toContain('2026-12-05 16:38 UTC · <@900> · set daily units to 20');
  });
});

describe('/settings', () => {
  const alice: Requester = { platform: 'discord', userId: '1' };
  it('shows, sets (keeping the rest) and resets, privately', async () => {
    const g = fakeGovernance();
    const { s, replies } = surface(g.governance);
    const run = (options: Record<string, unknown>) => settings.prepare({ options, refs: [], requester: alice }, context).run(s);
    await run({});
    expect(replies[0]).toContain('Ratio: (not set)');
    await run({ ratio: '16:9', count: 2 });
    await run({ resolution: '2K', model: models[0]!.aliases[0] ?? models[0]!.key });
    expect(g.prefs()).toEqual({ ratio: '16:9', count: 2, resolution: '2K', model: models[0]!.key });
    await run({ reset: true, private: true });
    expect(g.prefs()).toEqual({ private: true });
    expect(await code(() => settings.prepare({ options: { count: 9 }, refs: [], requester: alice }, context))).toBe('INVALID_REQUEST');
  });
});

describe('/imagine with preferences', () => {
  const requester: Requester = { platform: 'discord', userId: '1' };
  const submit = async (options: Record<string, unknown>, preferences: UserPreferences | undefined, who = requester) => {
    const { s, submitted } = surface(fakeGovernance().governance);
    const inv = imagine.prepare({ options: { prompt: 'a cat', ...options }, refs: [], requester: who }, { ...context, ...(preferences && { preferences }) });
    await inv.run(s);
    return { request: submitted[0]!, visibility: inv.visibility };
  };

  it('declares usesPreferences', () => {
    expect(imagine.usesPreferences).toBe(true);
  });

  it('fills what the user did not give from /settings; what nobody chose is listed as defaulted', async () => {
    const { request, visibility } = await submit({}, { ratio: '16:9', count: 2, private: true });
    expect([request.ratio, request.count, request.resolution, visibility]).toEqual(['16:9', 2, '1K', 'private']);
    expect(request.defaulted).toEqual(['model', 'resolution']);
  });

  it('an explicit option or flag wins over /settings', async () => {
    const { request, visibility } = await submit({ prompt: 'a cat --ar 1:1', private: false, count: 1 }, { ratio: '16:9', count: 2, private: true });
    expect([request.ratio, request.count, visibility]).toEqual(['1:1', 1, 'public']);
    expect(request.defaulted).toEqual(['model', 'resolution']);
  });

  it('a preferred model no longer configured falls back to the default; private by default does not apply on Slack', async () => {
    const { request } = await submit({}, { model: 'gone-model' });
    expect(request.model).toBe(models[0]!.key);
    expect(request.defaulted).toEqual(['model', 'ratio', 'resolution']);
    const slack = await submit({}, { private: true }, { platform: 'slack', userId: 'U1' });
    expect(slack.visibility).toBe('public');
  });
});
