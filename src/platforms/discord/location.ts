/**
 * What a Discord job stores in `job.request.location` so its messages can be found again by any
 * process, also after a restart (the engine persists it with the job and calls `deliver` for
 * resumed jobs).
 */
import { z } from 'zod';

/** An interaction token works for 15 minutes after the interaction was created (docs/discord.md "Interactions"). */
export const INTERACTION_TOKEN_LIFETIME_MS = 15 * 60_000;
/**
 * The final result (up to 25 MiB of files) is not sent through a token that expires within this
 * long: an upload starting at 14:58 could fail mid-way. Small progress edits use the token to
 * the end (a 50027 answer sends them to the fallback anyway).
 */
export const UPLOAD_SAFETY_MARGIN_MS = 5_000;

export const discordLocationSchema = z.object({
  applicationId: z.string().min(1),
  interactionId: z.string().min(1),
  interactionToken: z.string().min(1),
  /** Epoch ms when the token stops working (interaction created + 15 min). */
  tokenExpiresAt: z.number(),
  channelId: z.string().min(1),
  guildId: z.string().optional(),
  /** The placeholder (the deferred reply) once known. */
  messageId: z.string().optional(),
  ephemeral: z.boolean(),
  attachmentSizeLimit: z.number().int().positive(),
  /** For clicks: the message whose button was used (the result replies to it). */
  parentMessageId: z.string().optional(),
  /** Epoch ms when the bot received the interaction, by its own clock (Discord's may differ). */
  receivedAt: z.number().optional(),
});
export type DiscordLocation = z.infer<typeof discordLocationSchema>;

export function parseLocation(raw: unknown): DiscordLocation | undefined {
  const r = discordLocationSchema.safeParse(raw);
  return r.success ? r.data : undefined;
}

/** Whether the interaction token can still be used for a request starting now (`marginMs` before its expiry). */
export function tokenUsable(loc: DiscordLocation, now = Date.now(), marginMs = 0): boolean {
  return now < loc.tokenExpiresAt - marginMs;
}
