/**
 * How the bot's Discord REST clients send a request: @discordjs/rest's `makeRequest` option
 * (https://discord.js.org/docs/packages/rest/main/RESTOptions:Interface#makeRequest), on the
 * bot's own undici `request`. @discordjs/rest keeps everything else: the routes, the per-route
 * and global rate limits, the retries, the errors (DiscordAPIError, HTTPError).
 *
 * Why not its default (undici 6's `request`, which @discordjs/rest bundles):
 * - Files. Given `files`, @discordjs/rest copies each into a Blob and builds a FormData, which
 *   undici then encodes. The bot sends its files as a multipart body of its own instead
 *   (messages.ts: the heads, the bytes as they are, the tail): a job's three calls cost about
 *   half the main thread's CPU with a 560 KiB result, a third to a sixth with an 8 MiB one
 *   (`npm run bench -- discordrest`). The pieces are kept as an array and streamed anew for each
 *   attempt, so a retry sends them again.
 * - Answers. Its default wraps undici's answer headers in a WHATWG `Headers` per response; this
 *   reads them where undici put them (src/util/fetch-like.ts). @discordjs/rest reads an answer's
 *   headers with `get` and `has` only (its rate-limit headers and Content-Type).
 * - One undici. Without an agent of its own, undici 6 took the process-wide dispatcher, which
 *   the bot's undici 8 installs, and undici 8 refuses a FormData built by another undici: every
 *   upload failed. Now @discordjs/rest's undici is never used.
 *
 * The answer's body is read as soon as its headers are in (fetch-like.ts), so a 429's or a 5xx's
 * body, which @discordjs/rest never reads, frees its connection at once. A FormData (built only by
 * discord.js's own file uploads, which the bot does not use) goes to the global `fetch`, which
 * encodes it.
 */
import { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import type { RESTOptions, ResponseLike } from 'discord.js';
import type { MultipartBody } from '../../util/multipart.ts';
import { fetchLikeAnswer } from '../../util/fetch-like.ts';

/** How long a new connection to Discord may take. */
const CONNECT_TIMEOUT_MS = 30_000;

let agent: Dispatcher | undefined;
const discordAgent = () => (agent ??= new Agent({ connect: { timeout: CONNECT_TIMEOUT_MS } }));

type RequestInit = Parameters<RESTOptions['makeRequest']>[1];

export async function discordRequest(url: string, init: RequestInit): Promise<ResponseLike> {
  const { method = 'GET', headers: sent, body: sending, signal } = init;
  if (sending instanceof FormData) return fetch(url, { method, headers: sent, body: sending, signal } as globalThis.RequestInit);
  const res = await request(url, {
    method: method as Dispatcher.HttpMethod,
    headers: sent as Record<string, string>,
    // Pieces (multipartRequest) as a stream of their own per attempt: a retry sends them again.
    body: Array.isArray(sending) ? Readable.from(sending as Uint8Array[]) : ((sending ?? null) as string | null),
    signal: signal ?? null,
    dispatcher: discordAgent(),
  });
  // @discordjs/rest reads only `get` and `has` of the headers, and neither `body` nor `bodyUsed`
  // (only `rest.raw()` callers would, and the bot has none).
  const answer = fetchLikeAnswer(res);
  return { ...answer, headers: answer.headers as unknown as Headers, body: null, bodyUsed: false };
}

/** The options every REST client of the bot's is built with (discord.js's client's, the command registration's). */
export function discordRestOptions(api: string): Partial<RESTOptions> {
  return { api, makeRequest: discordRequest };
}

/** A multipart body (messages.ts) as @discordjs/rest's request options: sent as it is. */
export function multipartRequest(body: MultipartBody): { body: Uint8Array[]; passThroughBody: true; headers: Record<string, string> } {
  return { body: body.pieces, passThroughBody: true, headers: { 'Content-Type': body.contentType, 'Content-Length': String(body.length) } };
}
