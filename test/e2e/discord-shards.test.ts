/**
 * Discord gateway sharding (DISCORD_SHARDS, docs/discord.md "Sharding"), against the real
 * discord.js client and a fake Discord that shards as Discord does: it refuses a session holding
 * more guilds than a shard may (4011), sends each guild's events only to the shard
 * `(guild_id >> 22) % num_shards` and DMs to shard 0.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { parseConfig } from '../../src/config.ts';
import type { EngineApi } from '../../src/engine/api.ts';
import { startDiscord } from '../../src/platforms/discord/index.ts';
import { startHttpServer } from '../../src/platforms/http/server.ts';
import { captureLogger } from '../integration/engine-harness.ts';
import { shardOf, snowflake, snowflakeOnShard, startFakeDiscord, type FakeDiscordOptions, type FakeGuild, type FakeInteraction } from '../fakes/discord/index.ts';
import { expectDiscordInvariants, isFinal, startDiscordHarness, type DiscordHarness } from './discord-harness.ts';
import { captureProcessErrors, type ProcessErrors } from '../support/process-errors.ts';

function guildOnShard(shardId: number, count: number, name: string): FakeGuild {
  return { id: snowflakeOnShard(shardId, count), name, channels: [{ id: snowflake(), name: 'general' }] };
}

/** Four guilds, two on each shard of 2; one session may hold two, so Discord requires 2 shards. */
function twoShardDiscord(): FakeDiscordOptions {
  return {
    guilds: [guildOnShard(0, 2, 'Zero A'), guildOnShard(1, 2, 'One A'), guildOnShard(0, 2, 'Zero B'), guildOnShard(1, 2, 'One B')],
    maxGuildsPerShard: 2,
    // Both shards may identify at once (otherwise discord.js waits 5 s between them, as it must).
    maxConcurrency: 2,
  };
}

const shardsOf = (identifies: Record<string, unknown>[]) => identifies.map((i) => i.shard).sort();

describe('Discord with 2 shards (DISCORD_SHARDS=auto, the fake recommends 2)', () => {
  let h: DiscordHarness;
  let fatal: ProcessErrors;

  beforeAll(async () => {
    fatal = captureProcessErrors();
    h = await startDiscordHarness({ discord: twoShardDiscord() });
  });
  afterAll(async () => {
    fatal?.stop();
    await h?.close();
  });

  it('identifies shards [0,2] and [1,2], each holding its own guilds', () => {
    expect(h.config.DISCORD_SHARDS).toBe('auto');
    expect(h.discord.shardCount).toBe(2);
    expect(shardsOf(h.discord.identifies)).toEqual([
      [0, 2],
      [1, 2],
    ]);
    expect([...h.discord.connectedShards].sort()).toEqual([
      [0, 2],
      [1, 2],
    ]);
    const ready = h.logLines.map((l) => JSON.parse(l) as { msg?: string; guilds?: number; shards?: number }).find((l) => l.msg === 'discord ready');
    expect(ready).toMatchObject({ guilds: 4, shards: 2 });
  });

  it('answers /imagine once in a guild of each shard and in a DM (shard 0)', async () => {
    const [zero, one] = [h.discord.guilds[0]!, h.discord.guilds[1]!];
    expect([shardOf(zero.id, 2), shardOf(one.id, 2)]).toEqual([0, 1]);
    const sent: [FakeInteraction, number][] = [
      [await h.imagine('a fox on shard zero', { where: zero.id }), 0],
      [await h.imagine('a fox on shard one', { where: one.id }), 1],
      [await h.imagine('a fox in a DM', { where: 'dm' }), 0],
    ];
    for (const [interaction, shard] of sent) {
      expect(interaction.shard).toEqual([shard, 2]);
      const message = await h.result(interaction);
      expect(isFinal(message)).toBe(true);
      expect(message.attachments.length).toBeGreaterThan(0);
    }
    for (const [interaction] of sent) {
      // Answered once: one message, the original response, and no second first response (40060, checked below).
      const own = [...h.discord.messages.values()].filter((m) => m.interactionId === interaction.id && !m.deleted);
      expect(own.map((m) => m.id)).toEqual([interaction.originalMessageId]);
    }
    expectDiscordInvariants(h.discord);
  });

  it('the gateway guard covers shard 1: a malformed event there is dropped and the next command answered', async () => {
    const one = h.discord.guilds[3]!;
    const base = await h.imagine('a heron', { where: one.id });
    expect(isFinal(await h.result(base))).toBe(true);
    const bad = structuredClone(base.payload);
    bad.id = snowflake();
    bad.token = Buffer.from(`malformed-interaction-token-${String(bad.id)}`).toString('base64url');
    (bad.member as Record<string, unknown>).permissions = 'all-of-them';
    expect(h.discord.sendDispatch('INTERACTION_CREATE', bad)).toBe(true);

    const next = await h.imagine('a heron at dusk', { where: one.id });
    expect(next.shard).toEqual([1, 2]);
    expect(isFinal(await h.result(next))).toBe(true);
    expect(fatal.caught).toEqual([]);
    const dropped = h.logLines.map((l) => JSON.parse(l) as { msg?: string; id?: string }).filter((l) => l.msg?.includes('dropped'));
    expect(dropped.map((l) => l.id)).toEqual([bad.id]);
    expectDiscordInvariants(h.discord);
  });
});

describe('Discord sharding: other counts', () => {
  it('DISCORD_SHARDS=2 runs shards 0 and 1 of 2 without asking Discord', async () => {
    const h = await startDiscordHarness({ discord: { ...twoShardDiscord(), recommendedShards: 1 }, env: { DISCORD_SHARDS: '2' } });
    try {
      expect(shardsOf(h.discord.identifies)).toEqual([
        [0, 2],
        [1, 2],
      ]);
      const one = h.discord.guilds[1]!;
      expect(isFinal(await h.result(await h.imagine('an owl', { where: one.id })))).toBe(true);
      expectDiscordInvariants(h.discord);
    } finally {
      await h.close();
    }
  });

  it('auto follows the count GET /gateway/bot recommends (3)', async () => {
    const h = await startDiscordHarness({ discord: { recommendedShards: 3, maxConcurrency: 3 } });
    try {
      expect(shardsOf(h.discord.identifies)).toEqual([
        [0, 3],
        [1, 3],
        [2, 3],
      ]);
      expect(isFinal(await h.result(await h.imagine('a wren')))).toBe(true);
    } finally {
      await h.close();
    }
  });

  it('too few shards: the start fails at once, naming the shard, 4011 Sharding required and the setting', async () => {
    const discord = await startFakeDiscord(twoShardDiscord());
    const { log } = captureLogger();
    const http = await startHttpServer(0, log, '127.0.0.1');
    const config = parseConfig({ DISCORD_TOKEN: discord.token, DISCORD_APPLICATION_ID: discord.applicationId, DISCORD_API_URL: discord.apiUrl, DISCORD_SHARDS: '1' });
    // Only what startDiscord touches before an interaction arrives.
    const engine = { models: [], setDeliverer: () => undefined } as unknown as EngineApi;
    try {
      const started = Date.now();
      await expect(startDiscord({ config, engine, log, http, loginTimeoutMs: 20_000 })).rejects.toThrow(/shard 0 before READY: 4011 ShardingRequired \(DISCORD_SHARDS/);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(shardsOf(discord.identifies)).toEqual([[0, 1]]);
      expect(discord.connectedShards).toEqual([]);
    } finally {
      await http.close();
      await discord.close();
    }
  });

  it('the fake refuses an identify with an invalid shard (4010)', async () => {
    const discord = await startFakeDiscord();
    try {
      for (const shard of [[2, 2], [0, 0], [-1, 2], ['0', '1'], [0]]) {
        const ws = new WebSocket(discord.gatewayUrl);
        const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
        ws.on('open', () => ws.send(JSON.stringify({ op: 2, d: { token: discord.token, intents: 1, properties: {}, shard } })));
        expect(await closed, JSON.stringify(shard)).toBe(4010);
      }
    } finally {
      await discord.close();
    }
  });
});
