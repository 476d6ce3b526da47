/** Deferred /imagine interactions at the fake Discord, and their locations, for the Discord adapter's unit tests. */
import { INTERACTION_TOKEN_LIFETIME_MS, type DiscordLocation } from '../../../../src/platforms/discord/location.ts';
import type { FakeDiscord, FakeDiscordOptions, FakeInteraction } from '../../../fakes/discord/index.ts';
import { startWithClient } from '../../../fakes/discord/test-client.ts';

/** Where a job of `interaction` says its messages are (job.request.location), with a fresh token. */
export const locationOf = (discord: FakeDiscord, interaction: FakeInteraction): DiscordLocation => ({
  applicationId: discord.applicationId,
  interactionId: interaction.id,
  interactionToken: interaction.token,
  tokenExpiresAt: Date.now() + INTERACTION_TOKEN_LIFETIME_MS,
  channelId: interaction.channelId,
  ephemeral: false,
  attachmentSizeLimit: 10 * 1024 * 1024,
});

/** `count` /imagine interactions, each deferred by a bare discord.js client. */
export async function deferred(count: number, opts: FakeDiscordOptions = {}) {
  const { discord, client } = await startWithClient(opts);
  client.on('interactionCreate', (i) => {
    if (i.isChatInputCommand()) void i.deferReply();
  });
  const interactions: FakeInteraction[] = [];
  for (let n = 0; n < count; n++) interactions.push(await discord.sendCommand({ name: 'imagine', options: [{ name: 'prompt', type: 3, value: `a lighthouse ${n}` }] }));
  await discord.waitFor(() => interactions.every((i) => i.ackedAt !== undefined), 10_000, 'the deferrals');
  return { discord, client, interactions };
}
