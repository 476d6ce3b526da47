/**
 * Malformed gateway events, against the real discord.js client: INTERACTION_CREATE payloads that
 * discord.js cannot build (bad bit fields, a user command without `resolved`, a click without its
 * message or with a broken one, `entitlements` not an array, no user at all, no payload at all).
 * Each one costs that event only: it is logged with its id and type, never its token; nothing is
 * thrown out of the library (which would kill the process: an unhandled rejection in
 * @discordjs/ws's message handler), and the next /imagine is answered as usual.
 */
import { readdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snowflake, type FakeInteraction } from '../fakes/discord/index.ts';
import { captureProcessErrors, type ProcessErrors } from '../support/process-errors.ts';
import { expectDiscordInvariants, isFinal, startDiscordHarness, type DiscordHarness } from './discord-harness.ts';

let h: DiscordHarness;
let fatal: ProcessErrors;

beforeAll(async () => {
  fatal = captureProcessErrors();
  h = await startDiscordHarness();
});
afterAll(async () => {
  fatal?.stop();
  await h?.close();
});

/** A copy of a real interaction payload with a fresh id and token, then `change` applied. */
function variant(base: FakeInteraction, change: (p: Record<string, unknown>) => void): Record<string, unknown> {
  const p = structuredClone(base.payload);
  p.id = snowflake();
  p.token = Buffer.from(`malformed-interaction-token-${String(p.id)}`).toString('base64url');
  change(p);
  return p;
}

describe('Discord malformed gateway events', () => {
  it('drops each event discord.js cannot build, logs it without its token, and keeps answering', async () => {
    const first = await h.imagine('a lighthouse at dawn');
    const message = await h.result(first);
    expect(message.attachments.length).toBeGreaterThan(0);

    const bad: Record<string, Record<string, unknown>> = {
      'message flags not a bit field': variant(first, (p) => {
        p.type = 3;
        p.data = { custom_id: 'whatever', component_type: 2 };
        p.message = { ...h.discord.messageJson(message), flags: 'not-a-flag' };
      }),
      'member permissions not a bit field': variant(first, (p) => {
        (p.member as Record<string, unknown>).permissions = 'all-of-them';
      }),
      'app permissions not a bit field': variant(first, (p) => {
        p.app_permissions = '-x';
      }),
      'user context menu without resolved': variant(first, (p) => {
        p.data = { id: snowflake(), name: 'Imagine', type: 2, target_id: snowflake() };
      }),
      'component without its message': variant(first, (p) => {
        p.type = 3;
        p.data = { custom_id: 'whatever', component_type: 2 };
      }),
      'component whose message has a field of the wrong kind': variant(first, (p) => {
        p.type = 3;
        p.data = { custom_id: 'whatever', component_type: 2 };
        p.message = { ...h.discord.messageJson(message), embeds: null };
      }),
      'entitlements not an array': variant(first, (p) => {
        p.entitlements = { 0: 'sku' };
      }),
      'no user and no member': variant(first, (p) => {
        delete p.member;
        delete p.user;
      }),
    };
    for (const payload of Object.values(bad)) expect(h.discord.sendDispatch('INTERACTION_CREATE', payload)).toBe(true);
    expect(h.discord.sendDispatch('INTERACTION_CREATE', null)).toBe(true);

    // Dispatches are handled in order: once this one is answered, every bad one was handled.
    const next = await h.imagine('a lighthouse at dusk');
    expect(isFinal(await h.result(next))).toBe(true);

    expect(fatal.caught).toEqual([]);
    const dropped = h.logLines
      .map((l) => JSON.parse(l) as { msg?: string; event?: string; id?: string; type?: number })
      .filter((l) => l.event === 'INTERACTION_CREATE' && l.msg?.includes('dropped'));
    for (const [shape, payload] of Object.entries(bad)) {
      expect(dropped.find((l) => l.id === payload.id), shape).toMatchObject({ type: payload.type });
    }
    expect(dropped).toHaveLength(Object.keys(bad).length + 1);
    const all = h.logLines.join('');
    for (const payload of Object.values(bad)) expect(all).not.toContain(String(payload.token));
    expectDiscordInvariants(h.discord);
  });

  it('drops other events discord.js cannot build as well (a channel, a guild update)', async () => {
    expect(h.discord.sendDispatch('CHANNEL_CREATE', null)).toBe(true);
    expect(h.discord.sendDispatch('GUILD_UPDATE', null)).toBe(true);
    expect(isFinal(await h.result(await h.imagine('a lighthouse at night')))).toBe(true);
    expect(fatal.caught).toEqual([]);
    const events = h.logLines.map((l) => JSON.parse(l) as { msg?: string; event?: string }).filter((l) => l.msg?.includes('dropped')).map((l) => l.event);
    expect(events).toEqual(expect.arrayContaining(['CHANNEL_CREATE', 'GUILD_UPDATE']));
  });
});

describe('every gateway event discord.js handles, with no data or data of the wrong kind', () => {
  it('costs that event only, and the next /imagine is answered', async () => {
    // The dispatches discord.js has a handler for (its packet handler table), READY and RESUMED included.
    const handlers = join(dirname(createRequire(import.meta.url).resolve('discord.js')), 'client/websocket/handlers');
    const events = (await readdir(handlers)).filter((f) => /^[A-Z_]+\.js$/.test(f)).map((f) => f.slice(0, -3));
    expect(events.length).toBeGreaterThan(50);
    for (const event of events) for (const d of [null, 7, [], { id: 'x', guild_id: 'y', channel_id: [], user: null }]) expect(h.discord.sendDispatch(event, d), event).toBe(true);
    expect(isFinal(await h.result(await h.imagine('a lighthouse after the storm')))).toBe(true);
    expect(fatal.caught).toEqual([]);
  });
});

describe('Discord malformed gateway events before the guilds arrive', () => {
  it('drops each (held-back interactions, guilds with no or broken data) and answers the next /imagine', async () => {
    const id = snowflake();
    const token = 'held-back-interaction-token-0123456789';
    const guildId = snowflake();
    const bot = await startDiscordHarness({
      beforeStart: (discord) => {
        // Sent between READY and GUILD_CREATE: discord.js queues them and replays them from setImmediate.
        discord.sendDispatchBeforeGuilds('INTERACTION_CREATE', { id, type: 2, token, version: 1, data: { id: snowflake(), name: 'imagine', type: 1 }, app_permissions: 'nope', user: { id: '100000000000000009', username: 'eve' }, entitlements: [] });
        discord.sendDispatchBeforeGuilds('INTERACTION_CREATE', null);
        // While the shard waits for its guilds, discord.js reads each GUILD_CREATE's id itself.
        discord.sendDispatchBeforeGuilds('GUILD_CREATE', null);
        discord.sendDispatchBeforeGuilds('GUILD_CREATE', { id: guildId, name: 'broken', channels: 'not-a-list', roles: 7 });
      },
    });
    try {
      expect(isFinal(await bot.result(await bot.imagine('a lighthouse in fog')))).toBe(true);
      expect(fatal.caught).toEqual([]);
      const dropped = bot.logLines.map((l) => JSON.parse(l) as { msg?: string; event?: string; id?: string }).filter((l) => l.msg?.includes('dropped'));
      expect(dropped.filter((l) => l.event === 'INTERACTION_CREATE').map((l) => l.id)).toEqual([id, undefined]);
      // Each bad guild once (discord.js's handler and its own read of the id both fail on null).
      expect(dropped.filter((l) => l.event === 'GUILD_CREATE').map((l) => l.id)).toEqual([undefined, guildId]);
      expect(bot.logLines.join('')).not.toContain(token);
    } finally {
      await bot.close();
    }
  });
});
