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
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { DefaultUserAgent, DiscordAPIError, type REST, type RESTOptions, type ResponseLike } from 'discord.js';
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

/** An interaction's first response (Routes.interactionCallback), the route @discordjs/rest gives its burst handler. */
const CALLBACK_ROUTE = /^\/interactions\/\d+\/[^/]+\/callback$/;

/**
 * Interaction callbacks (the acknowledgements: defer, deferred update, reply, modal) sent from
 * `rest.post` straight to Discord, one undici request each, instead of through @discordjs/rest's
 * queue. That queue gives them a burst handler anyway: no bucket to wait for, and no global limit
 * ("Interaction endpoints are not bound to the bot's Global Rate Limit",
 * https://discord.com/developers/docs/topics/rate-limits#global-rate-limit; docs/discord.md
 * "Rate limits and errors"). What it adds on the way out is CPU: the route's hashing, the
 * request's resolution, the fetch-like answer, for each callback before the next interaction of a
 * burst is read. A throwaway script (500 callbacks at once against a local server in the same
 * process, ten rounds alternating) measured about half the process's CPU per callback this way;
 * docs/benchmarks.md ("Discord: acknowledgement latency") what it does to a burst's acks.
 *
 * Only the success is handled here. The rest stays @discordjs/rest's, as its burst handler would
 * do it: a 4xx with Discord's JSON error throws its DiscordAPIError; a 429 waits the Retry-After
 * (plus the client's rate-limit offset), then hands the call to @discordjs/rest, which sends it
 * again and handles what follows; a 5xx, an answer that is not JSON, a timeout or a connection
 * error hand it over at once, as its handler retries those. Calls with files, extra headers or a
 * bot token (discord.js sends callbacks without one) go to @discordjs/rest as before.
 *
 * Installed on the client's REST before the HTTP interactions endpoint wraps it (HttpAnswers),
 * so a callback for an interaction waiting on its HTTP request is still answered over HTTP.
 */
export function sendCallbacksDirectly(rest: REST): void {
  const post = rest.post.bind(rest);
  const { api, version, timeout, offset, userAgentAppendix } = rest.options;
  const userAgent = `${DefaultUserAgent} ${userAgentAppendix}`.trim();
  rest.post = async (route, options = {}) => {
    const plain = options.auth === false && options.body !== undefined && !options.files?.length && !options.passThroughBody && !options.headers && !options.reason && options.versioned !== false;
    if (!plain || !CALLBACK_ROUTE.test(route)) return post(route, options);
    const query = options.query?.toString();
    const url = `${api}/v${version}${route}${query ? `?${query}` : ''}`;
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'User-Agent': userAgent },
        body: JSON.stringify(options.body),
        signal: options.signal ?? null,
        headersTimeout: timeout,
        bodyTimeout: timeout,
        dispatcher: discordAgent(),
      });
    } catch {
      // A timeout or a connection error: @discordjs/rest tries again, as its handler would. (A
      // caller's abort ends there with its AbortError, before the network.)
      return post(route, options);
    }
    const status = res.statusCode;
    const json = String(res.headers['content-type'] ?? '').startsWith('application/json');
    if (status >= 200 && status < 300) return json ? res.body.json() : res.body.arrayBuffer();
    if (status === 429) {
      await res.body.dump();
      const retryAfterMs = Number(res.headers['retry-after']) * 1000;
      const offsetMs = typeof offset === 'function' ? offset('/interactions/:id/:token/callback') : offset;
      if (Number.isFinite(retryAfterMs) && retryAfterMs > 0) await sleep(retryAfterMs + offsetMs, undefined, options.signal ? { signal: options.signal } : {}).catch(() => undefined);
      return post(route, options);
    }
    if (status >= 400 && status < 500 && json) {
      const data = (await res.body.json()) as ConstructorParameters<typeof DiscordAPIError>[0];
      throw new DiscordAPIError(data, 'code' in data ? data.code : data.error, status, 'POST', url, { body: options.body, files: undefined });
    }
    await res.body.dump();
    return post(route, options);
  };
}
