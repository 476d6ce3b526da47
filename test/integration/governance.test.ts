/**
 * Governance through real engines (src/engine/governance/): a server's rules refuse before
 * anything reaches the provider or is charged, settings live in the store (they survive a
 * reopened SQLite file, and a change through one process applies at once in another on Redis),
 * and role tiers, grants and resets decide what a member may reserve.
 */
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BotError } from '../../src/errors.ts';
import type { Requester } from '../../src/engine/request.ts';
import { startFakeRunblob, type FakeRunblob } from '../fakes/runblob.ts';
import { deleteRedisKeys, REDIS_URL } from '../support/index.ts';
import { startEngineHarness, tempDir, type EngineHarness } from './engine-harness.ts';

const RUN_PREFIX = `test-governance-${randomUUID()}:`;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});
afterAll(() => deleteRedisKeys(RUN_PREFIX));

const admin: Requester = { platform: 'discord', userId: 'admin', scope: 'g1', channelId: 'c1' };
const member: Requester = { platform: 'discord', userId: 'm1', scope: 'g1', channelId: 'c1', roles: ['r-members'] };

const request = (prompt: string, requester: Requester = member, over: Record<string, unknown> = {}) => ({
  prompt,
  model: 'runblob-standard',
  ratio: '1:1' as const,
  resolution: '1K' as const,
  count: 1,
  requester,
  ...over,
});

async function fakeRunblob(): Promise<FakeRunblob> {
  const fake = await startFakeRunblob({ durationMs: 50 });
  cleanups.push(() => fake.close());
  return fake;
}

async function harness(fake: FakeRunblob, opts: Parameters<typeof startEngineHarness>[1] = {}, env: Record<string, string> = {}): Promise<EngineHarness> {
  const h = await startEngineHarness({ RUNBLOB_API_KEY: fake.apiKey, RUNBLOB_API_URL: fake.url, QUOTA_MAX_DAILY_UNITS: '50', ...env }, opts);
  cleanups.push(() => h.close());
  return h;
}

async function refusalOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof BotError) return err.code;
    throw err;
  }
  throw new Error('expected a refusal');
}

const creates = (fake: FakeRunblob) => fake.requests.filter((r) => r.kind === 'create').length;

describe('a server’s rules in the engine', () => {
  it('refuses a filtered prompt before the provider sees it, charges nothing, and audits who without the rule', async () => {
    const fake = await fakeRunblob();
    const h = await harness(fake);
    await h.engine.governance.apply('discord:g1', admin, { kind: 'filter-add', pattern: 'forbidden fruit' });
    const before = await h.engine.quota(member);

    expect(await refusalOf(h.engine.submit(request('A FORBÍDDEN   Fruit on a table')))).toBe('PROMPT_FILTERED');
    expect(creates(fake)).toBe(0);
    expect(await h.engine.quota(member)).toEqual(before);
    expect(await h.quotas.spentToday()).toBe(0);

    const [entry] = await h.engine.governance.audit('discord:g1', 1);
    expect(entry).toMatchObject({ kind: 'filter', actorId: 'm1' });
    expect(entry?.summary).toContain('<@m1>');
    expect(entry?.summary).not.toMatch(/forbidden|fruit/i);

    // The same prompt elsewhere (another server, a DM) is not this server's business.
    const job = await h.engine.submit(request('A forbidden fruit on a table', { ...member, scope: 'g2' }));
    expect((await h.engine.waitFor(job.id)).state).toBe('succeeded');
    expect(creates(fake)).toBe(1);
  });

  it('posts every admin change and filter refusal to the log channel through the platform’s deliverer', async () => {
    const fake = await fakeRunblob();
    const h = await harness(fake);
    const posted: Array<{ channelId: string; text: string }> = [];
    h.engine.setDeliverer('discord', { ...h.deliverer, notify: async (channelId, text) => void posted.push({ channelId, text }) });
    await h.engine.governance.apply('discord:g1', admin, { kind: 'log-channel', channelId: 'c-log' });
    await h.engine.governance.apply('discord:g1', admin, { kind: 'filter-add', pattern: 'forbidden fruit' });
    expect(await refusalOf(h.engine.submit(request('a forbidden fruit')))).toBe('PROMPT_FILTERED');
    // A server's channel ids are its platform's: nothing from another server reaches this log.
    await h.engine.governance.apply('discord:g2', admin, { kind: 'block', userId: 'm1' });

    expect(posted.map((p) => p.channelId)).toEqual(['c-log', 'c-log', 'c-log']);
    expect(posted[2]?.text).toContain('<@m1>');
    expect(posted[2]?.text).not.toMatch(/forbidden|fruit/i);
  });

  it('refuses blocked members and channels outside an allow-list, charging nothing', async () => {
    const fake = await fakeRunblob();
    const h = await harness(fake);
    await h.engine.governance.apply('discord:g1', admin, { kind: 'channels', mode: 'allow', channelIds: ['c2'] });
    expect(await refusalOf(h.engine.submit(request('a cat')))).toBe('CHANNEL_NOT_ALLOWED');
    await h.engine.governance.apply('discord:g1', admin, { kind: 'block', userId: 'm1' });
    expect(await refusalOf(h.engine.submit(request('a cat', { ...member, channelId: 'c2' })))).toBe('USER_BLOCKED');
    expect(creates(fake)).toBe(0);
    expect((await h.engine.quota(member)).used).toBe(0);
  });

  it('reserves against the highest role tier, plus grants, and a reset gives the day back', async () => {
    const fake = await fakeRunblob();
    const h = await harness(fake);
    const scope = 'discord:g1';
    await h.engine.governance.apply(scope, admin, { kind: 'daily-units', units: 1 });
    await h.engine.governance.apply(scope, admin, { kind: 'role-tier', roleId: 'r-members', allowance: 2 });
    expect(await h.engine.quota(member)).toMatchObject({ limit: 2, used: 0 });

    const ok = await Promise.allSettled(Array.from({ length: 5 }, () => h.engine.submit(request('a cat'))));
    expect(ok.filter((o) => o.status === 'fulfilled')).toHaveLength(2);
    expect(await refusalOf(h.engine.submit(request('a cat')))).toBe('QUOTA_EXCEEDED');

    await h.engine.governance.apply(scope, admin, { kind: 'grant', userId: 'm1', units: 1 });
    expect(await h.engine.governance.allowance(member)).toEqual({ allowance: 3, granted: 1, blocked: false });
    await h.engine.submit(request('a cat'));
    expect(await refusalOf(h.engine.submit(request('a cat')))).toBe('QUOTA_EXCEEDED');

    await h.engine.governance.apply(scope, admin, { kind: 'reset', userId: 'm1' });
    expect(await h.engine.quota(member)).toMatchObject({ limit: 3, used: 0, left: 3 });
    await h.engine.submit(request('a cat'));
    // Another server's admins have their own tiers, but the counter is the member's for the day.
    expect(await h.engine.quota({ ...member, scope: 'g2' })).toMatchObject({ limit: 20, used: 1 });
    const audit = await h.engine.governance.audit(scope, 10);
    expect(audit.map((e) => e.summary)).toEqual([
      "<@admin> reset <@m1>'s units for today",
      '<@admin> granted <@m1> 1 unit more for today',
      '<@admin> set the tier of <@&r-members> to 2 units',
      '<@admin> set the daily units per member to 1 unit',
    ]);
  });

  it('refuses a grant above the operator’s ceiling for the day', async () => {
    const fake = await fakeRunblob();
    const h = await harness(fake);
    await h.engine.governance.apply('discord:g1', admin, { kind: 'grant', userId: 'm1', units: 40 });
    expect(await refusalOf(h.engine.governance.apply('discord:g1', admin, { kind: 'grant', userId: 'm1', units: 11 }))).toBe('ABOVE_CEILING');
    expect((await h.engine.governance.allowance(member)).granted).toBe(40);
  });

  it('keeps every change when two admins change settings at once', async () => {
    const fake = await fakeRunblob();
    const h = await harness(fake);
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => h.engine.governance.apply('discord:g1', admin, { kind: 'block', userId: `u${i}` })),
    );
    expect((await h.engine.governance.settings('discord:g1')).blocked.sort()).toEqual(Array.from({ length: 10 }, (_, i) => `u${i}`).sort());
  });

  it('keeps settings and preferences across a reopened SQLite file', async () => {
    const fake = await fakeRunblob();
    const dir = await tempDir('governance-');
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const keyPrefix = 'persist:';
    const first = await startEngineHarness({ RUNBLOB_API_KEY: fake.apiKey, RUNBLOB_API_URL: fake.url }, { dir, keyPrefix });
    await first.engine.governance.apply('discord:g1', admin, { kind: 'max-count', count: 2 });
    await first.engine.governance.setPreferences(member, { model: 'standard', ratio: '16:9' });
    await first.close();

    const second = await harness(fake, { dir, keyPrefix });
    expect((await second.engine.governance.settings('discord:g1')).maxCount).toBe(2);
    expect(await second.engine.governance.preferences(member)).toEqual({ model: 'runblob-standard', ratio: '16:9' });
    expect(await refusalOf(second.engine.submit(request('a cat', member, { count: 3 })))).toBe('COUNT_NOT_ALLOWED');
  });

  it('applies a change made through one process at once in another sharing Redis', async () => {
    const fake = await fakeRunblob();
    const keyPrefix = `${RUN_PREFIX}two:`;
    const a = await harness(fake, { storeUrl: REDIS_URL, keyPrefix, processId: 'a' });
    const b = await harness(fake, { storeUrl: REDIS_URL, keyPrefix, processId: 'b' });

    await a.engine.governance.apply('discord:g1', admin, { kind: 'filter-add', pattern: '/dr[a@]gon/' });
    expect(await refusalOf(b.engine.submit(request('a red DRAGON')))).toBe('PROMPT_FILTERED');
    await a.engine.governance.apply('discord:g1', admin, { kind: 'role-tier', roleId: 'r-members', allowance: 7 });
    expect((await b.engine.quota(member)).limit).toBe(7);
    await b.engine.governance.apply('discord:g1', admin, { kind: 'models', modelKeys: ['runblob-2'] });
    expect(await refusalOf(a.engine.submit(request('a cat')))).toBe('MODEL_NOT_ALLOWED');
    expect(creates(fake)).toBe(0);
  });
});
