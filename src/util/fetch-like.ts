/**
 * An answer of undici's `request` in the shape of a WHATWG `fetch` Response, as far as the
 * clients that take a fetch of the bot's read one: Slack's WebClient (src/platforms/slack/
 * web-fetch.ts) and @discordjs/rest (src/platforms/discord/rest-request.ts). Both read the
 * status, a few headers and the body; neither needs the WHATWG streams, `Headers` and `Response`
 * objects `fetch` builds for every call.
 *
 * The body is read as soon as the headers are in, so an answer the client never reads (a 429's,
 * a 5xx's) frees its connection at once; it is awaited only when asked for, so a body that fails
 * half-way fails there, as with `fetch`.
 */
import { STATUS_CODES, type IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';

/** undici's answer headers (lower-case names, a repeated header as an array) as one string per name, repeated values joined as `fetch` joins them. */
function joinedHeaders(headers: IncomingHttpHeaders): Map<string, string> {
  const byName = new Map<string, string>();
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) byName.set(name, Array.isArray(value) ? value.join(', ') : value);
  return byName;
}

/** joinedHeaders as a plain object (what the WebClient's errors carry). */
export const flatHeaders = (headers: IncomingHttpHeaders): Record<string, string> => Object.fromEntries(joinedHeaders(headers));

/** What the clients read of a WHATWG `Headers`: `get` and `has` (any case), and `entries`. */
export interface AnswerHeaders {
  get(name: string): string | null;
  has(name: string): boolean;
  entries(): IterableIterator<[string, string]>;
}

export interface FetchLikeAnswer {
  ok: boolean;
  status: number;
  statusText: string;
  headers: AnswerHeaders;
  arrayBuffer(): Promise<ArrayBuffer>;
  json(): Promise<unknown>;
  text(): Promise<string>;
}

export function fetchLikeAnswer(res: Dispatcher.ResponseData): FetchLikeAnswer {
  const body = res.body.arrayBuffer();
  body.catch(() => undefined);
  const text = async () => Buffer.from(await body).toString('utf8');
  const byName = joinedHeaders(res.headers);
  return {
    ok: res.statusCode >= 200 && res.statusCode < 300,
    status: res.statusCode,
    statusText: STATUS_CODES[res.statusCode] ?? '',
    headers: {
      get: (name) => byName.get(name.toLowerCase()) ?? null,
      has: (name) => byName.has(name.toLowerCase()),
      entries: () => byName.entries(),
    },
    arrayBuffer: () => body,
    json: async () => JSON.parse(await text()) as unknown,
    text,
  };
}
