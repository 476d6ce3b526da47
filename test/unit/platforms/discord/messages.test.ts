/**
 * DiscordMessages over the real @discordjs/rest client against the fake Discord: interaction-token
 * calls do not wait for the bot's global rate limit, which Discord does not apply to them
 * (docs/discord.md "Rate limits and errors").
 */
import { describe, expect, it } from 'vitest';
import { Routes } from 'discord.js';
import { DiscordMessages } from '../../../../src/platforms/discord/messages.ts';
import { INTERACTION_TOKEN_LIFETIME_MS, type DiscordLocation } from '../../../../src/platforms/discord/location.ts';
import { startWithClient } from '../../../fakes/discord/test-client.ts';

/** How long the fake's global 429 holds the bot token's requests: far longer than the calls below take. */
const GLOBAL_RETRY_AFTER_S = 5;

describe('DiscordMessages and the global rate limit', () => {
  it("edits the original response and follows up while the bot token's requests wait out a global 429", async () => {
    const { discord, client } = await startWithClient();
    client.on('interactionCreate', (i) => {
      if (i.isChatInputCommand()) void i.deferReply();
    });
    const interaction = await discord.sendCommand({ name: 'imagine', options: [{ name: 'prompt', type: 3, value: 'a lighthouse' }] });
    await discord.waitFor(() => interaction.ackedAt !== undefined, 5_000, 'the deferral');

    // Discord answers one of the bot's own requests with a global 429: @discordjs/rest then holds
    // every request of that client until it has passed (X-RateLimit-Global).
    discord.injectRateLimit({ method: 'GET', path: /^\/users\/@me$/, times: 1, retryAfterS: GLOBAL_RETRY_AFTER_S, global: true });
    void client.rest.get(Routes.user()).catch(() => undefined);
    await discord.waitFor(() => client.rest.globalRemaining <= 0 && client.rest.globalReset > Date.now() + 1_000, 5_000, 'the global 429 applied');
    const blockedUntil = client.rest.globalReset;

    const messages = new DiscordMessages(client.rest);
    const loc: DiscordLocation = {
      applicationId: discord.applicationId,
      interactionId: interaction.id,
      interactionToken: interaction.token,
      tokenExpiresAt: Date.now() + INTERACTION_TOKEN_LIFETIME_MS,
      channelId: interaction.channelId,
      ephemeral: false,
      attachmentSizeLimit: 10 * 1024 * 1024,
    };
    try {
      await messages.editOriginal(loc, { content: 'Generating…' });
      await messages.followUp(loc, { content: 'only for you', flags: 64 });
      // Both went through before the bot token's requests may go again.
      expect(Date.now()).toBeLessThan(blockedUntil);
      expect(discord.originalMessage(interaction)?.content).toBe('Generating…');
      expect(interaction.followupIds).toHaveLength(1);
    } finally {
      messages.interactionRest.clearHashSweeper();
      messages.interactionRest.clearHandlerSweeper();
    }
  });
});
