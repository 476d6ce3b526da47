/**
 * The REST calls the adapter makes, in one place, over @discordjs/rest (the same REST client
 * discord.js uses, so 429s are queued and retried per bucket). Interaction-token calls go without
 * the bot token (`auth: false`), as Discord expects.
 */
import { DiscordAPIError, Routes, type REST, type RawFile } from 'discord.js';
import type { DiscordLocation } from './location.ts';

export interface SentMessage {
  id: string;
  channel_id: string;
}

export interface OutgoingFile {
  name: string;
  data: Buffer;
  contentType: string;
}

const rawFiles = (files: readonly OutgoingFile[] | undefined): RawFile[] | undefined =>
  files && files.length > 0 ? files.map((f) => ({ name: f.name, data: f.data, contentType: f.contentType })) : undefined;

export class DiscordMessages {
  readonly rest: REST;
  constructor(rest: REST) {
    this.rest = rest;
  }

  async editOriginal(loc: DiscordLocation, body: object, files?: readonly OutgoingFile[]): Promise<SentMessage> {
    const f = rawFiles(files);
    return (await this.rest.patch(Routes.webhookMessage(loc.applicationId, loc.interactionToken, '@original'), {
      body,
      ...(f && { files: f }),
      auth: false,
    })) as SentMessage;
  }

  async deleteOriginal(loc: Pick<DiscordLocation, 'applicationId' | 'interactionToken'>): Promise<void> {
    await this.rest.delete(Routes.webhookMessage(loc.applicationId, loc.interactionToken, '@original'), { auth: false });
  }

  async followUp(loc: Pick<DiscordLocation, 'applicationId' | 'interactionToken'>, body: object): Promise<SentMessage> {
    return (await this.rest.post(Routes.webhook(loc.applicationId, loc.interactionToken), { body, auth: false })) as SentMessage;
  }

  async postToChannel(channelId: string, body: object, files?: readonly OutgoingFile[]): Promise<SentMessage> {
    const f = rawFiles(files);
    return (await this.rest.post(Routes.channelMessages(channelId), { body, ...(f && { files: f }) })) as SentMessage;
  }

  async editInChannel(channelId: string, messageId: string, body: object): Promise<SentMessage> {
    return (await this.rest.patch(Routes.channelMessage(channelId, messageId), { body })) as SentMessage;
  }

  /** The DM channel with a user (created by Discord if needed). */
  async openDm(userId: string): Promise<string> {
    const channel = (await this.rest.post(Routes.userChannels(), { body: { recipient_id: userId } })) as { id: string };
    return channel.id;
  }
}

/** Discord's JSON error code, when the error is a Discord API answer. */
export function discordCode(err: unknown): number | string | undefined {
  return err instanceof DiscordAPIError ? err.code : undefined;
}

export function httpStatus(err: unknown): number | undefined {
  return typeof (err as { status?: unknown })?.status === 'number' ? (err as { status: number }).status : undefined;
}

/** The interaction token no longer works (expired: 401/50027, or unknown webhook 10015). */
export function isTokenGone(err: unknown): boolean {
  const code = discordCode(err);
  return code === 50027 || code === 10015 || (err instanceof DiscordAPIError && err.status === 401);
}

/** The message is gone (deleted, or an ephemeral one the user dismissed). */
export function isUnknownMessage(err: unknown): boolean {
  return discordCode(err) === 10008;
}

/** The bot cannot post there (no access, no permission, unknown channel, DMs closed). */
export function isNoAccess(err: unknown): boolean {
  const code = discordCode(err);
  return code === 50001 || code === 50013 || code === 10003 || code === 50007 || httpStatus(err) === 403;
}
