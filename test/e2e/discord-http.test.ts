/**
 * Discord's HTTP interactions endpoint (DISCORD_PUBLIC_KEY): the fake Discord POSTs signed
 * interactions to the bot's /discord/interactions instead of using the gateway, and reads the
 * HTTP answer as the first response. The bot is the real one (src/app.ts, discord.js for the
 * interaction objects and REST), with no gateway connection at all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.ts';
import type { EngineApi } from '../../src/engine/api.ts';
import { startDiscord } from '../../src/platforms/discord/index.ts';
import { startHttpServer } from '../../src/platforms/http/server.ts';
import { captureLogger } from '../integration/engine-harness.ts';
import { startFakeDiscord } from '../fakes/discord/index.ts';
import { USERS, componentsOf, customIdOf, expectDiscordInvariants, startDiscordHarness, type DiscordHarness } from './discord-harness.ts';

let h: DiscordHarness;
beforeAll(async () => {
  // The harness saves the endpoint URL the way the developer portal does: Discord's PING and its
  // deliberately bad signatures must be answered right, or the start fails.
  // Discord applies an HTTP answer a little after receiving it: the bot's next webhook call (an
  // error in the placeholder, /quota's answer, a progress edit) must not be lost to that race.
  h = await startDiscordHarness({ interactions: 'http', discord: { httpAnswerLatencyMs: 80 } });
});
afterAll(async () => {
  await h?.close();
});

/**
 * The Discord invariants, where the only refusals allowed are webhook calls that overtook their
 * interaction's HTTP answer (10015 before Discord applied it): the bot retries those.
 */
function expectHttpModeInvariants() {
  const interactions = [...h.discord.interactions.values()];
  for (const r of h.discord.refusals.filter((x) => x.error?.code === 10015)) {
    const i = interactions.find((x) => r.path.includes(`/${x.token}`));
    expect(i?.ackedAt, `${r.method} ${r.path}`).toBeDefined();
    // (ackedAt is the fake's performance.now(); `at` is epoch ms.)
    expect(r.at, 'a 10015 that was not an overtaken answer').toBeLessThanOrEqual(performance.timeOrigin + i!.ackedAt! + 1);
  }
  expectDiscordInvariants(h.discord, [10015]);
}

/** A signed-looking /imagine payload the bot would accept if the signature were right. */
function imaginePayload(id: string) {
  return {
    id,
    application_id: h.discord.applicationId,
    type: 2,
    token: `forged-${id}`,
    version: 1,
    data: { id: '1', name: 'imagine', type: 1, options: [{ name: 'prompt', type: 3, value: 'forged request' }] },
    channel_id: h.discord.channelId,
    user: { id: USERS.bob.id, username: 'bob', discriminator: '0', avatar: null, global_name: 'Bob' },
    // Fields Discord always sends (discord.js needs them to build the interaction).
    app_permissions: '0',
    locale: 'en-US',
    entitlements: [],
    authorizing_integration_owners: { '1': USERS.bob.id },
    context: 1,
    attachment_size_limit: 10 * 1024 * 1024,
  };
}

describe('Discord over the HTTP interactions endpoint', () => {
  it('refuses bad, missing or replayed-with-changes signatures with 401, doing nothing', async () => {
    const before = { runs: h.runbase!.runs.size, tasks: h.runblob!.tasks.size, messages: h.discord.messages.size };
    for (const attempt of [{ signature: 'invalid' as const }, { signature: 'missing' as const }, { tamperBody: true }]) {
      const answer = await h.discord.postToInteractionsEndpoint(imaginePayload(`9${Date.now()}`), attempt);
      expect(answer.status, JSON.stringify(attempt)).toBe(401);
    }
    // A correctly signed PING is still answered.
    const ping = await h.discord.postToInteractionsEndpoint({ id: '1', application_id: h.discord.applicationId, type: 1, token: 't', version: 1 });
    expect([ping.status, JSON.parse(ping.body)]).toEqual([200, { type: 1 }]);
    await new Promise((r) => setTimeout(r, 200));
    expect({ runs: h.runbase!.runs.size, tasks: h.runblob!.tasks.size, messages: h.discord.messages.size }).toEqual(before);
  });

  it('refuses a correctly signed request that is stale or replayed', async () => {
    const payload = { ...imaginePayload(`8${Date.now()}`), data: { id: '1', name: 'not-a-command', type: 1, options: [] } };
    const tenMinutesAgo = String(Math.floor(Date.now() / 1000) - 600);
    expect((await h.discord.postToInteractionsEndpoint(payload, { timestamp: tenMinutesAgo })).status).toBe(401);
    const first = await h.discord.postToInteractionsEndpoint(payload);
    expect([first.status, JSON.parse(first.body).type]).toEqual([200, 4]);
    expect(JSON.parse(first.body).data.content).toContain("I don't know the command /not-a-command");
    expect((await h.discord.postToInteractionsEndpoint(payload)).status).toBe(401);
  });

  it('defers in the HTTP answer, shows progress, then posts the images with their buttons', async () => {
    const i = await h.imagine('an owl over a moonlit lake', { values: { count: 2 } });
    const m = await h.result(i);
    expect(i.httpStatus).toBe(200);
    expect(i.callbackType).toBe(5);
    expect(i.ackLatencyMs).toBeLessThan(3_000);
    // No callback request went to the REST API: the first response was the HTTP answer.
    expect(h.discord.requests.some((r) => r.path.startsWith(`/interactions/${i.id}/`))).toBe(false);
    expect(m.history.length).toBeGreaterThan(1);
    expect(m.attachments.map((a) => a.content_type)).toEqual(['image/png', 'image/png']);
    expect(m.content).toContain('"an owl over a moonlit lake"');
    expect(componentsOf(m).filter((c) => c.type === 2).map((c) => c.label)).toEqual(['U1', 'U2', 'V1', 'V2', 'E1', 'E2', 'Rerun', 'Remix', 'Delete']);
    expectHttpModeInvariants();
  });

  it('answers a button click over HTTP: Upscale becomes a new job charged to the clicker', async () => {
    const parent = await h.result(await h.imagine('a lantern in the fog', { values: { model: 'runblob-pro' } }));
    const before = await h.bot.engine.quota({ platform: 'discord', userId: USERS.bob.id });
    const click = await h.discord.clickComponent({ message: parent, customId: customIdOf(parent, { prefix: 'imagine:upscale:' }), user: USERS.bob });
    const m = await h.result(click);
    expect([click.httpStatus, click.callbackType]).toEqual([200, 5]);
    expect(m.messageReference?.message_id).toBe(parent.id);
    expect(m.content).toContain('Upscaled image 1 to 4K');
    const after = await h.bot.engine.quota({ platform: 'discord', userId: USERS.bob.id });
    expect(after.used - before.used).toBe(4);
    expectHttpModeInvariants();
  });

  it('Edit over HTTP: the modal is the HTTP answer, its submission a new job from that image', async () => {
    const parent = await h.result(await h.imagine('a paper lantern', { values: { model: 'runblob-pro' } }));
    const click = await h.discord.clickComponent({ message: parent, customId: customIdOf(parent, { prefix: 'imagine:edit:' }), user: USERS.bob });
    await h.discord.waitFor(() => click.callbackType === 9 || undefined, 5_000, 'modal');
    expect(click.httpStatus).toBe(200);
    const before = h.runblob!.tasks.size;
    const m = await h.result(await h.discord.submitModal({ interaction: click, user: USERS.bob, values: { text: 'make it glow green' } }));
    expect(m.content).toContain('Edited image 1');
    const task = [...h.runblob!.tasks.values()].slice(before)[0]!;
    expect([task.prompt, task.images.length]).toEqual(['make it glow green', 1]);
    expectHttpModeInvariants();
  });

  it('shows what is wrong with an option in the placeholder, and answers /quota privately', async () => {
    const bad = await h.result(await h.imagine('a dog --ar 7:3', { user: USERS.mod }));
    expect(bad.content).toMatch(/^⚠️ .*7:3/);
    const q = await h.discord.sendCommand({ name: 'quota', user: USERS.alice });
    const m = await h.discord.waitFor(() => {
      const msg = h.discord.originalMessage(q);
      return msg && msg.history.length > 0 ? msg : undefined;
    }, 5_000, 'quota answer');
    expect([q.httpStatus, q.callbackType]).toEqual([200, 5]);
    expect(m.flags & 64).toBe(64);
    expect(m.content).toMatch(/You've used \d+ of 40 units today; \d+ left\. Resets <t:\d+:t>\./);
  });

  it('works in a DM with the bot and keeps a private request private', async () => {
    const dm = await h.result(await h.imagine('a paper crane', { where: 'dm', user: USERS.bob }));
    expect(dm.channelId).toBe(h.discord.dmChannels.get(USERS.bob.id));
    expect(dm.attachments).toHaveLength(1);
    const i = await h.imagine('a secret crane', { values: { private: true } });
    const secret = await h.result(i);
    expect([i.callbackType, secret.flags & 64]).toEqual([5, 64]);
    expectHttpModeInvariants();
  });

  it('also hears the gateway, which Discord uses until the URL is saved and again once it is cleared; each interaction is handled once', async () => {
    await h.discord.waitForBot();
    const runs = h.runbase!.runs.size;
    // URL saved: the gateway carries nothing, the HTTP request is handled once.
    const byHttp = await h.result(await h.imagine('heard once over HTTP'));
    expect(byHttp.attachments).toHaveLength(1);
    await h.discord.setInteractionsEndpoint(undefined);
    try {
      const byGateway = await h.imagine('heard over the gateway');
      expect(byGateway.httpStatus).toBeUndefined();
      expect((await h.result(byGateway)).attachments).toHaveLength(1);
    } finally {
      await h.discord.setInteractionsEndpoint(`${h.bot.http.localUrl}/discord/interactions`);
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(h.runbase!.runs.size - runs).toBe(2);
    expectHttpModeInvariants();
  });

  it('finishes a job in flight across a restart (new process, endpoint saved again)', async () => {
    const runsBefore = h.runbase!.runs.size;
    const i = await h.imagine('crosses a restart over HTTP [slow:1500]', { user: USERS.bob });
    await h.discord.waitFor(() => h.runbase!.runs.size > runsBefore, 5_000, 'the provider run');
    const sessions = h.discord.identifies.length;
    await h.restart();
    const m = await h.result(i, 15_000);
    expect(m.attachments).toHaveLength(1);
    // The endpoint URL was saved when this process started: it opened no gateway session.
    expect(h.discord.identifies.length).toBe(sessions);
    expect(h.runbase!.runs.size - runsBefore).toBe(1);
    // The new process takes new interactions too.
    const after = await h.result(await h.imagine('after the restart'));
    expect(after.attachments).toHaveLength(1);
    expectHttpModeInvariants();
  });
});

describe('Discord HTTP interactions when the gateway is unavailable', () => {
  it('starts anyway, answers over HTTP, and still posts through the bot-token routes (the failed login must not cost the REST token)', async () => {
    const g = await startDiscordHarness({
      interactions: 'http',
      discord: { tokenLifetimeMs: 1_500 },
      // The gateway refuses the bot: only HTTP interactions reach it.
      beforeStart: (d) => d.injectError({ method: 'GET', path: /^\/gateway\/bot$/, times: 1_000, status: 401, code: 0, message: '401: Unauthorized' }),
    });
    try {
      await new Promise((r) => setTimeout(r, 300));
      expect(g.discord.identifies).toEqual([]);
      // Finishes after the (scaled) 15-minute token: delivered in the channel with the bot token.
      const i = await g.imagine('after the token [slow:2000]');
      await i.httpDelivery;
      expect([i.httpStatus, i.callbackType]).toEqual([200, 5]);
      const posted = await g.discord.waitFor(
        () => [...g.discord.messages.values()].find((m) => m.channelId === g.discord.channelId && m.attachments.length > 0 && m.content.includes('after the token')),
        15_000,
        'the result posted in the channel',
      );
      expect(posted.authorId).toBe(g.discord.applicationId);
    } finally {
      await g.close();
    }
  });
});

describe('Discord HTTP interactions: starting up', () => {
  it('with a gateway that never answers: keeps running (the login timeout is handled), answers over HTTP, and stops promptly', async () => {
    const discord = await startFakeDiscord({ gatewayUnreachable: true });
    const { log, lines } = captureLogger();
    const http = await startHttpServer(0, log, '127.0.0.1');
    const config = parseConfig({
      DISCORD_TOKEN: discord.token,
      DISCORD_APPLICATION_ID: discord.applicationId,
      DISCORD_API_URL: discord.apiUrl,
      DISCORD_PUBLIC_KEY: discord.publicKeyHex,
      RUNBLOB_API_KEY: 'unused',
    });
    // Only what startDiscord touches before an interaction arrives.
    const engine = { models: [], setDeliverer: () => undefined } as unknown as EngineApi;
    const bot = await startDiscord({ config, engine, log, http, loginTimeoutMs: 300 });
    try {
      // Past the login timeout: an unhandled rejection here would fail the run (and kill a bot).
      await new Promise((r) => setTimeout(r, 800));
      expect(lines.some((l) => l.includes('discord gateway not connected'))).toBe(true);
      expect(discord.identifies).toEqual([]);
      // The portal's checks (signed PING, refused bad signatures) pass.
      await discord.setInteractionsEndpoint(`${http.localUrl}/discord/interactions`);
    } finally {
      const started = Date.now();
      await bot.stop();
      expect(Date.now() - started).toBeLessThan(6_000);
      await http.close();
      await discord.close();
    }
  });

  it('fails the start on a token Discord refuses, but not on an application lookup that fails otherwise', async () => {
    const discord = await startFakeDiscord();
    const { log } = captureLogger();
    const http = await startHttpServer(0, log, '127.0.0.1');
    const engine = { models: [], setDeliverer: () => undefined } as unknown as EngineApi;
    const env = (token: string) =>
      parseConfig({ DISCORD_TOKEN: token, DISCORD_APPLICATION_ID: discord.applicationId, DISCORD_API_URL: discord.apiUrl, DISCORD_PUBLIC_KEY: discord.publicKeyHex, RUNBLOB_API_KEY: 'unused' });
    try {
      await expect(startDiscord({ config: env('not-the-token'), engine, log, http, loginTimeoutMs: 300 })).rejects.toThrow(/Discord refused DISCORD_TOKEN/);
      discord.injectError({ method: 'GET', path: /^\/applications\/@me$/, status: 404, code: 0, message: '404: Not Found' });
      const bot = await startDiscord({ config: env(discord.token), engine, log, http, loginTimeoutMs: 2_000 });
      await discord.waitForBot();
      await bot.stop();
    } finally {
      await http.close();
      await discord.close();
    }
  });
});
