/**
 * DiscordMessages over the real @discordjs/rest client against the fake Discord: interaction-token
 * calls are neither counted against the bot's global rate limit nor held by it, since Discord does
 * not apply it to them (docs/discord.md "Rate limits and errors").
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { REST, Routes } from 'discord.js';
import { DiscordMessages, INTERACTION_HANDLER_SWEEP_MS, interactionRestFor } from '../../../../src/platforms/discord/messages.ts';
import { INTERACTION_TOKEN_LIFETIME_MS } from '../../../../src/platforms/discord/location.ts';
import { deferred, locationOf } from './fixtures.ts';

/** How long the fake's global 429 holds the bot token's requests: far longer than the calls below take. */
const GLOBAL_RETRY_AFTER_S = 5;

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const fn of cleanups.splice(0)) fn();
});

/** DiscordMessages over `rest`, its interaction REST client's sweepers stopped after the test. */
function messagesOver(rest: REST): DiscordMessages {
  const messages = new DiscordMessages(rest);
  cleanups.push(() => {
    messages.interactionRest.clearHashSweeper();
    messages.interactionRest.clearHandlerSweeper();
  });
  return messages;
}

describe('DiscordMessages and the global rate limit', () => {
  it("edits, follows up and deletes while the bot token's requests wait out a global 429", async () => {
    const { discord, client, interactions } = await deferred(1);
    const interaction = interactions[0]!;

    // Discord answers one of the bot's own requests with a global 429: @discordjs/rest then holds
    // every request of that client until it has passed (X-RateLimit-Global).
    discord.injectRateLimit({ method: 'GET', path: /^\/users\/@me$/, times: 1, retryAfterS: GLOBAL_RETRY_AFTER_S, global: true });
    const held = new AbortController();
    cleanups.push(() => held.abort());
    void client.rest.get(Routes.user(), { signal: held.signal }).catch(() => undefined);
    await discord.waitFor(() => client.rest.globalRemaining <= 0 && client.rest.globalReset > Date.now() + 1_000, 5_000, 'the global 429 applied');
    const blockedUntil = client.rest.globalReset;

    const messages = messagesOver(client.rest);
    const loc = locationOf(discord, interaction);
    await messages.editOriginal(loc, { content: 'Generating…' });
    expect(discord.originalMessage(interaction)?.content).toBe('Generating…');
    await messages.followUp(loc, { content: 'only for you', flags: 64 });
    expect(interaction.followupIds).toHaveLength(1);
    await messages.deleteOriginal(loc);
    expect(discord.originalMessage(interaction)?.deleted).toBe(true);
    // All went through before the bot token's requests may go again.
    expect(Date.now()).toBeLessThan(blockedUntil);
  });

  it("does not count interaction-token calls against the bot's global limit", async () => {
    const { discord, interactions } = await deferred(3);
    // A bot allowed one request a second stands in for 50 a second under load: counted against
    // it, the second and third edits would wait for the next second.
    const rest = new REST({ api: discord.apiUrl, globalRequestsPerSecond: 1 }).setToken(discord.token);
    cleanups.push(() => {
      rest.clearHashSweeper();
      rest.clearHandlerSweeper();
    });
    const messages = messagesOver(rest);
    const started = performance.now();
    await Promise.all(interactions.map((i, n) => messages.editOriginal(locationOf(discord, i), { content: `edit ${n}` })));
    expect(performance.now() - started).toBeLessThan(900);
    expect(interactions.map((i) => discord.originalMessage(i)?.content)).toEqual(['edit 0', 'edit 1', 'edit 2']);
  });
});

describe('interactionRestFor', () => {
  it("drops idle per-token request handlers well within a token's lifetime, not after @discordjs/rest's hour", () => {
    vi.useFakeTimers();
    try {
      const rest = interactionRestFor(new REST());
      // What a job's webhook calls leave behind: a handler keyed by its token, idle once they are answered.
      rest.handlers.set('hash:1234567890123456789/token', { inactive: true } as never);
      rest.handlers.set('hash:1234567890123456789/busy', { inactive: false } as never);
      vi.advanceTimersByTime(INTERACTION_HANDLER_SWEEP_MS);
      expect([...rest.handlers.keys()]).toEqual(['hash:1234567890123456789/busy']);
      expect(INTERACTION_HANDLER_SWEEP_MS).toBeLessThan(INTERACTION_TOKEN_LIFETIME_MS);
      rest.clearHandlerSweeper();
      rest.clearHashSweeper();
    } finally {
      vi.useRealTimers();
    }
  });
});
