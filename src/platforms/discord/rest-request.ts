/**
 * How the bot's Discord REST clients send a request: @discordjs/rest's `makeRequest` option
 * (https://discord.js.org/docs/packages/rest/main/RESTOptions:Interface#makeRequest), on the
 * bot's own undici `request`. @discordjs/rest keeps everything else: the routes, the per-route
 * and global rate limits, the retries, the errors (DiscordAPIError, HTTPError). Only interaction
 * callbacks skip its queue (sendCallbacksDirectly, below), with the same handling of failures.
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
import { STATUS_CODES } from 'node:http';
import { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import { DefaultUserAgent, DiscordAPIError, HTTPError, type REST, type RESTOptions, type ResponseLike } from 'discord.js';
import type { MultipartBody } from '../../util/multipart.ts';
import { fetchLikeAnswer } from '../../util/fetch-like.ts';
import { sleep } from '../../util/sleep.ts';

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

/** An interaction's first response (Routes.interactionCallback); the interaction's id is group 1. */
export const CALLBACK_ROUTE = /^\/interactions\/(\d+)\/[^/]+\/callback$/;
/** The bucket @discordjs/rest files callbacks under (what a rate-limit offset function is given). */
const CALLBACK_BUCKET = '/interactions/:id/:token/callback';

/**
 * Interaction callbacks (the acknowledgements: defer, deferred update, reply, modal) sent from
 * `rest.post` straight to Discord, without @discordjs/rest's queue. That queue gives them a burst
 * handler anyway, with no bucket to wait for, and Discord does not count them against the global
 * limit (docs/discord.md "Rate limits and errors"), so what the queue added was CPU (the route's
 * hashing, the request's resolution, the fetch-like answer) before the next interaction of a
 * burst is read: docs/benchmarks.md, "Discord: acknowledgement latency".
 *
 * What goes wrong is handled as @discordjs/rest's burst handler handles it (BurstHandler,
 * makeNetworkRequest, handleErrors), so the bot's Discord calls keep one policy: each attempt
 * ends after the client's `timeout`; a timed-out attempt, a reset connection and a 5xx are tried
 * again up to the client's `retries` times, then throw (the error, or HTTPError); a 429 waits its
 * Retry-After plus the client's rate-limit offset and is tried again; any other 4xx throws
 * DiscordAPIError with Discord's error. Calls with files, extra headers or a bot token (discord.js
 * sends callbacks without one), and a client that rejects rate-limited calls, keep
 * @discordjs/rest's way.
 *
 * Installed on the client's REST before the HTTP interactions endpoint wraps it (HttpAnswers),
 * so a callback for an interaction waiting on its HTTP request is still answered over HTTP.
 */
export function sendCallbacksDirectly(rest: REST): void {
  const { api, version, timeout, offset, retries: maxRetries, userAgentAppendix, rejectOnRateLimit } = rest.options;
  if (rejectOnRateLimit) return;
  const post = rest.post.bind(rest);
  const userAgent = `${DefaultUserAgent} ${userAgentAppendix}`.trim();
  rest.post = async (route, options = {}) => {
    const plain = options.auth === false && options.body !== undefined && !options.files?.length && !options.passThroughBody && !options.headers && !options.reason && options.versioned !== false;
    if (!plain || !CALLBACK_ROUTE.test(route)) return post(route, options);
    const query = options.query?.toString();
    const url = `${api}/v${version}${route}${query ? `?${query}` : ''}`;
    const body = JSON.stringify(options.body);
    const sent = { body: options.body, files: undefined };
    for (let retries = 0; ; ) {
      let res: Dispatcher.ResponseData;
      try {
        res = await callbackAttempt(url, body, userAgent, timeout, options.signal);
      } catch (err) {
        // @discordjs/rest's shouldRetry: an attempt aborted (its timeout) or a reset connection.
        const again = err instanceof Error && (err.name === 'AbortError' || (err as { code?: unknown }).code === 'ECONNRESET' || err.message.includes('ECONNRESET'));
        if (again && retries !== maxRetries && !options.signal?.aborted) {
          retries += 1;
          continue;
        }
        throw err;
      }
      const status = res.statusCode;
      const json = String(res.headers['content-type'] ?? '').startsWith('application/json');
      if (status === 429) {
        await res.body.dump();
        const retryAfter = res.headers['retry-after'];
        const offsetMs = Math.max(0, typeof offset === 'function' ? offset(CALLBACK_BUCKET) : offset);
        await sleep(retryAfter ? Number(retryAfter) * 1000 + offsetMs : 0, options.signal);
        continue;
      }
      if (status >= 500 && status < 600) {
        await res.body.dump();
        if (retries !== maxRetries) {
          retries += 1;
          continue;
        }
        throw new HTTPError(status, STATUS_CODES[status] ?? '', 'POST', url, sent);
      }
      const answer = json ? await res.body.json() : await res.body.arrayBuffer();
      if (status < 400) return answer;
      const data = answer as ConstructorParameters<typeof DiscordAPIError>[0];
      throw new DiscordAPIError(data, 'code' in data ? data.code : data.error, status, 'POST', url, sent);
    }
  };
}

/** One POST of a callback, aborted after `timeoutMs` or when `signal` aborts (as @discordjs/rest's makeNetworkRequest does). */
async function callbackAttempt(url: string, body: string, userAgent: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<Dispatcher.ResponseData> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const abort = () => controller.abort();
  if (signal?.aborted) controller.abort();
  else signal?.addEventListener('abort', abort, { once: true });
  try {
    return await request(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'User-Agent': userAgent },
      body,
      signal: controller.signal,
      dispatcher: discordAgent(),
    });
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', abort);
  }
}
