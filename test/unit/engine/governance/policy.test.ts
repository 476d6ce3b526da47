/**
 * The policy as a pure function (src/engine/governance/policy.ts): what a server's rules make of a
 * request, within the operator's ceilings, and which admin changes are valid.
 */
import { describe, expect, it } from 'vitest';
import { BotError } from '../../../../src/errors.ts';
import { serverSettingsSchema, type OperatorCeilings, type ServerSettings } from '../../../../src/engine/governance/api.ts';
import { COMPILED_FILTERS_KEPT, compiledFiltersKept, filterEntryProblem, filterIsCompiled, fold, promptMatches } from '../../../../src/engine/governance/filter.ts';
import { applyChange, baseAllowance, decide, validatePreferences, type PolicyInput } from '../../../../src/engine/governance/policy.ts';
import { MODEL_CATALOG } from '../../../../src/engine/models.ts';
import { parseRequest } from '../../../../src/engine/validate.ts';
import type { ImagineRequestInput, Requester } from '../../../../src/engine/request.ts';

const models = MODEL_CATALOG;
const ceilings: OperatorCeilings = { defaultDailyUnits: 20, maxDailyUnits: 100, allowUnlimited: false, globalSpendCapUsd: 10 };
const member: Requester = { platform: 'discord', userId: 'u1', scope: 'g1', channelId: 'c1', roles: ['r-low', 'r-high'] };
const settingsOf = (s: Partial<ServerSettings> = {}): ServerSettings => serverSettingsSchema.parse(s);

function input(over: Partial<ImagineRequestInput> = {}, s: Partial<ServerSettings> = {}, rest: Partial<PolicyInput> = {}): PolicyInput {
  const request = parseRequest({ prompt: 'a red fox in the snow', model: 'runblob-2', ratio: '1:1', resolution: '1K', count: 1, requester: member, ...over }, 'runblob-2');
  return { request, settings: settingsOf(s), ceilings, models, exempt: false, granted: 0, ...rest };
}

function refusal(i: PolicyInput): { code: string; message: string; filtered: boolean } {
  const d = decide(i);
  if (d.ok) throw new Error('expected a refusal');
  return { code: d.error.code, message: d.error.userMessage, filtered: d.filtered };
}

function accepted(i: PolicyInput) {
  const d = decide(i);
  if (!d.ok) throw new Error(`refused: ${d.error.userMessage}`);
  return d;
}

function thrown(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof BotError) return { code: err.code, message: err.userMessage };
    throw err;
  }
  throw new Error('expected a BotError');
}

describe('allowance', () => {
  it('falls back from override to tiers to server units to the operator default', () => {
    expect(baseAllowance(settingsOf(), member, ceilings)).toBe(20);
    expect(baseAllowance(settingsOf({ dailyUnits: 5 }), member, ceilings)).toBe(5);
    expect(baseAllowance(settingsOf({ dailyUnits: 5, roleTiers: { 'r-low': 10 } }), member, ceilings)).toBe(10);
    expect(baseAllowance(settingsOf({ dailyUnits: 5, roleTiers: { 'r-low': 10 }, userLimits: { u1: 2 } }), member, ceilings)).toBe(2);
  });

  it('gives the highest tier among the member’s roles, unlimited highest, and ignores roles they lack', () => {
    expect(baseAllowance(settingsOf({ roleTiers: { 'r-low': 10, 'r-high': 40, other: 90 } }), member, ceilings)).toBe(40);
    expect(baseAllowance(settingsOf({ roleTiers: { 'r-high': 40, 'r-low': 'unlimited' } }), member, { ...ceilings, allowUnlimited: true })).toBe('unlimited');
  });

  it('never passes the operator’s ceiling, and treats unlimited as the ceiling where the operator forbids it', () => {
    // Stored before the operator lowered the ceiling: the ceiling still wins.
    expect(baseAllowance(settingsOf({ roleTiers: { 'r-low': 500 } }), member, ceilings)).toBe(100);
    expect(baseAllowance(settingsOf({ userLimits: { u1: 'unlimited' } }), member, ceilings)).toBe(100);
  });

  it('adds today’s grant to the limit the request reserves against', () => {
    expect(accepted(input({}, { dailyUnits: 5 }, { granted: 3 })).limit).toBe(8);
    expect(accepted(input({}, { userLimits: { u1: 'unlimited' } }, { ceilings: { ...ceilings, allowUnlimited: true }, granted: 3 })).limit).toBe('unlimited');
  });

  it('uses the operator’s flat rule without a server, and reserves nothing for exempt users', () => {
    expect(accepted(input({}, {}, { settings: undefined })).limit).toBe(20);
    expect(accepted(input({}, { dailyUnits: 1, maxCount: 1 }, { exempt: true })).limit).toBeUndefined();
    expect(accepted(input({ count: 4 }, { maxCount: 1 }, { exempt: true })).request.count).toBe(4);
  });
});

describe('refusals, in order', () => {
  it('refuses a blocked member, even an exempt one', () => {
    expect(refusal(input({}, { blocked: ['u1'] })).code).toBe('USER_BLOCKED');
    expect(refusal(input({}, { blocked: ['u1'] }, { exempt: true })).code).toBe('USER_BLOCKED');
  });

  it('applies a channel allow-list (naming the allowed channels) and a deny-list', () => {
    const allow = refusal(input({ requester: { ...member, channelId: 'c9' } }, { channels: { mode: 'allow', ids: ['c1', 'c2'] } }));
    expect(allow.code).toBe('CHANNEL_NOT_ALLOWED');
    expect(allow.message).toContain('<#c1>, <#c2>');
    accepted(input({}, { channels: { mode: 'allow', ids: ['c1'] } }));
    expect(refusal(input({}, { channels: { mode: 'deny', ids: ['c1'] } })).code).toBe('CHANNEL_NOT_ALLOWED');
    accepted(input({ requester: { ...member, channelId: 'c2' } }, { channels: { mode: 'deny', ids: ['c1'] } }));
    // Where the channel is unknown an allow-list cannot be satisfied.
    expect(refusal(input({ requester: { ...member, channelId: undefined } }, { channels: { mode: 'allow', ids: ['c1'] } })).code).toBe('CHANNEL_NOT_ALLOWED');
    expect(refusal(input({}, { channels: { mode: 'allow', ids: ['c9'] } }, { exempt: true })).code).toBe('CHANNEL_NOT_ALLOWED');
  });

  it('filters prompts regardless of case and accents, as whole words, without echoing the rule', () => {
    const filter = ['café noir', 'BAD'];
    const r = refusal(input({ prompt: 'A CAFE  NOIR at dawn' }, { filter }));
    expect(r).toMatchObject({ code: 'PROMPT_FILTERED', filtered: true });
    expect(r.message).not.toMatch(/caf|noir|bad/i);
    expect(refusal(input({ prompt: 'a bád dog' }, { filter })).code).toBe('PROMPT_FILTERED');
    accepted(input({ prompt: 'a badger in a cafeteria' }, { filter }));
    expect(refusal(input({ prompt: 'a bad dog' }, { filter }, { exempt: true })).code).toBe('PROMPT_FILTERED');
  });

  it('matches /patterns/ case-insensitively on the folded prompt', () => {
    expect(promptMatches('Some GORE here', ['/go+re/'])).toBe(true);
    expect(promptMatches('gööore', ['/go+re/'])).toBe(true);
    expect(promptMatches('a gore-tex jacket', ['/\\bgore\\b(?!-)/'])).toBe(false);
    expect(fold('Ｃafé')).toBe('cafe');
  });

  it('refuses a prompt when one of the entries would on its own (they are matched together)', () => {
    const filter = ['ass', 'café noir', 'red  wine', '/go+re/', '/^(a)\\1/', 'c++', 'sang', 'f-word', 'a.b', 'x|y', '[x]', 'back\\slash', 'a/b'];
    const prompts = ['a classy glass', 'assassin', 'an ass', 'xcafe noirx', 'usang', 'CAFE NOIR', 'a café-noir', 'red\twine', 'redwine', 'gooore', 'aardvark', 'c++ code', 'sangría', 'sang'];
    prompts.push('no f-word here', 'fword', 'a.b.c', 'axb', 'x|y', 'x', '[x] marks', 'back\\slash', 'a/b');
    const alone = prompts.map((p) => filter.some((entry) => promptMatches(p, [entry])));
    expect(prompts.map((p) => promptMatches(p, filter))).toEqual(alone);
    // Both outcomes are exercised.
    expect(alone).toContain(true);
    expect(alone).toContain(false);
  });

  it('takes any word or phrase as typed, hyphens and other punctuation included; refuses one that folds to nothing', () => {
    for (const entry of ['f-word', 'a.b', 'x|y', '[x]', 'c++', 'back\\slash', 'a/b']) expect(filterEntryProblem(entry)).toBeUndefined();
    expect(promptMatches('no f-word here', ['f-word', 'ass'])).toBe(true);
    expect(filterEntryProblem('\u0301\u0301')).toBe('A filter entry needs a word, a phrase or a /pattern/.');
    // Stored by an older version: it refuses nothing, and the rest still apply.
    expect(promptMatches('hello there!', ['\u0301'])).toBe(false);
    expect(promptMatches('a bad dog', ['\u0301', 'bad'])).toBe(true);
  });

  it('never takes one filter for another, whatever their entries hold', () => {
    expect(promptMatches('a', ['a\u0000b'])).toBe(false);
    expect(promptMatches('a', ['a', 'b'])).toBe(true);
  });

  it('keeps the COMPILED_FILTERS_KEPT filters used last, the least recently used going first', () => {
    const first = ['word-first', 'storm'];
    promptMatches('a lighthouse', first);
    for (let n = 0; n < COMPILED_FILTERS_KEPT + 50; n++) {
      promptMatches('a lighthouse', [`word${n}`, 'storm']);
      // Used again all along: never the least recent.
      if (n % 100 === 0) promptMatches('a lighthouse', first);
    }
    expect(compiledFiltersKept()).toBe(COMPILED_FILTERS_KEPT);
    expect(filterIsCompiled(first)).toBe(true);
    expect(filterIsCompiled(['word0', 'storm'])).toBe(false);
    expect(promptMatches('a word0 here', ['word0', 'storm'])).toBe(true);
  });

  it('refuses a model the server does not allow, listing the allowed ones', () => {
    const r = refusal(input({ model: 'runblob-pro' }, { models: ['runblob-2', 'runblob-standard'] }));
    expect(r.code).toBe('MODEL_NOT_ALLOWED');
    expect(r.message).toContain('Choose one of: Nano Banana (RunBlob), Nano Banana 2 (RunBlob).');
  });

  it('moves a model the user did not choose to an allowed one that can do the request', () => {
    const d = accepted(input({ model: 'runblob-pro', modelFromDefault: true, defaulted: ['model'] }, { models: ['runblob-2'] }));
    expect(d.request.model).toBe('runblob-2');
    expect(d.allowedModels.map((m) => m.key)).toEqual(['runblob-2']);
  });

  it('refuses a resolution above the server’s highest, and a count above its most', () => {
    expect(refusal(input({ resolution: '4K' }, { maxResolution: '2K' }))).toMatchObject({ code: 'RESOLUTION_NOT_ALLOWED' });
    accepted(input({ resolution: '2K' }, { maxResolution: '2K' }));
    expect(refusal(input({ count: 3 }, { maxCount: 2 })).message).toContain('at most 2 images per request, not 3');
  });
});

describe('server defaults', () => {
  it('replace only the fields nobody chose', () => {
    const defaults = { model: 'runbase-2', ratio: '16:9' as const, resolution: '2K' as const };
    const d = accepted(input({ defaulted: ['model', 'ratio', 'resolution'] }, { defaults }));
    expect(d.request).toMatchObject({ model: 'runbase-2', ratio: '16:9', resolution: '2K', modelFromDefault: false });
    const kept = accepted(input({ defaulted: [] }, { defaults }));
    expect(kept.request).toMatchObject({ model: 'runblob-2', ratio: '1:1', resolution: '1K' });
  });

  it('keep the request’s fields when the default model cannot do them', () => {
    // RunBlob standard only makes 1K: a chosen 2K keeps the request's model.
    const d = accepted(input({ resolution: '2K', defaulted: ['model'] }, { defaults: { model: 'runblob-standard' } }));
    expect(d.request.model).toBe('runblob-2');
    const r = accepted(input({ model: 'runblob-standard', defaulted: ['resolution'] }, { defaults: { resolution: '4K' } }));
    expect(r.request.resolution).toBe('1K');
  });
});

describe('applyChange', () => {
  const s = settingsOf();
  it('keeps allowances within the ceilings', () => {
    expect(applyChange(s, { kind: 'role-tier', roleId: 'r', allowance: 50 }, ceilings, models).roleTiers).toEqual({ r: 50 });
    expect(thrown(() => applyChange(s, { kind: 'role-tier', roleId: 'r', allowance: 101 }, ceilings, models))).toMatchObject({ code: 'ABOVE_CEILING' });
    expect(thrown(() => applyChange(s, { kind: 'daily-units', units: 500 }, ceilings, models)).message).toContain('at most 100 units');
    expect(thrown(() => applyChange(s, { kind: 'user-limit', userId: 'u', allowance: 'unlimited' }, ceilings, models)).code).toBe('UNLIMITED_NOT_ALLOWED');
    expect(applyChange(s, { kind: 'user-limit', userId: 'u', allowance: 'unlimited' }, { ...ceilings, allowUnlimited: true }, models).userLimits).toEqual({ u: 'unlimited' });
    const cleared = applyChange(settingsOf({ roleTiers: { r: 5, q: 6 } }), { kind: 'role-tier', roleId: 'r', allowance: null }, ceilings, models);
    expect(cleared.roleTiers).toEqual({ q: 6 });
  });

  it('checks models against the catalog and stores their keys', () => {
    expect(applyChange(s, { kind: 'models', modelKeys: ['standard', 'runblob-2'] }, ceilings, models).models).toEqual(['runblob-standard', 'runblob-2']);
    expect(thrown(() => applyChange(s, { kind: 'models', modelKeys: ['dall-e'] }, ceilings, models))).toMatchObject({ code: 'UNKNOWN_MODEL' });
    expect(thrown(() => applyChange(s, { kind: 'models', modelKeys: [] }, ceilings, models)).code).toBe('ADMIN_INVALID');
    expect(thrown(() => applyChange(s, { kind: 'default', field: 'model', value: 'nope' }, ceilings, models)).code).toBe('UNKNOWN_MODEL');
    expect(applyChange(s, { kind: 'default', field: 'ratio', value: '16:9' }, ceilings, models).defaults).toEqual({ ratio: '16:9' });
    expect(thrown(() => applyChange(s, { kind: 'default', field: 'ratio', value: '7:3' }, ceilings, models)).code).toBe('ADMIN_INVALID');
  });

  it('validates filter entries: an invalid or overlong pattern is refused, a duplicate kept once', () => {
    const one = applyChange(s, { kind: 'filter-add', pattern: ' /go+re/ ' }, ceilings, models);
    expect(applyChange(one, { kind: 'filter-add', pattern: '/go+re/' }, ceilings, models).filter).toEqual(['/go+re/']);
    expect(thrown(() => applyChange(s, { kind: 'filter-add', pattern: '/(unclosed/' }, ceilings, models))).toMatchObject({ code: 'ADMIN_INVALID' });
    expect(thrown(() => applyChange(s, { kind: 'filter-add', pattern: 'x'.repeat(201) }, ceilings, models)).message).toContain('at most 200');
    expect(thrown(() => applyChange(s, { kind: 'filter-remove', pattern: 'absent' }, ceilings, models)).code).toBe('ADMIN_INVALID');
  });

  it('keeps a server’s spending cap under the operator’s and the global cap', () => {
    expect(applyChange(s, { kind: 'spend-cap', usd: 2.5 }, ceilings, models).spendCapUsd).toBe(2.5);
    expect(thrown(() => applyChange(s, { kind: 'spend-cap', usd: 11 }, ceilings, models)).message).toContain('$10.00');
    expect(thrown(() => applyChange(s, { kind: 'spend-cap', usd: 3 }, { ...ceilings, maxServerSpendCapUsd: 2 }, models)).code).toBe('ABOVE_CEILING');
  });

  it('sets channels, blocks and counts', () => {
    expect(applyChange(s, { kind: 'channels', mode: 'allow', channelIds: ['a', 'a', 'b'] }, ceilings, models).channels).toEqual({ mode: 'allow', ids: ['a', 'b'] });
    expect(thrown(() => applyChange(s, { kind: 'channels', mode: 'deny', channelIds: [] }, ceilings, models)).code).toBe('ADMIN_INVALID');
    const blocked = applyChange(s, { kind: 'block', userId: 'u' }, ceilings, models);
    expect(applyChange(blocked, { kind: 'unblock', userId: 'u' }, ceilings, models).blocked).toEqual([]);
    expect(thrown(() => applyChange(s, { kind: 'max-count', count: 9 }, ceilings, models)).code).toBe('ADMIN_INVALID');
  });
});

describe('validatePreferences', () => {
  const def = MODEL_CATALOG[4]!;
  it('stores the model by key and refuses what the model cannot do', () => {
    expect(validatePreferences({ model: 'standard', ratio: '1:1' }, models, def)).toEqual({ model: 'runblob-standard', ratio: '1:1' });
    expect(thrown(() => validatePreferences({ model: 'nope' }, models, def)).code).toBe('UNKNOWN_MODEL');
    expect(thrown(() => validatePreferences({ model: 'standard', resolution: '4K' }, models, def))).toMatchObject({ code: 'INVALID_REQUEST' });
    expect(thrown(() => validatePreferences({ ratio: '8:1' }, models, def)).message).toContain('8:1');
  });
});
