/**
 * The `fetch` the WebClient calls Slack's Web API with: undici's `request` instead of the global
 * WHATWG `fetch`. The WebClient documents the option (`WebClientOptions.fetch`,
 * https://docs.slack.dev/tools/node-slack-sdk/reference/web-api/interfaces/WebClientOptions)
 * and reads little of a response: its status, a few headers, the body as text. `fetch` wraps
 * every call in WHATWG streams, Request and Response objects; `request` does not, and on this
 * bot's job path (a placeholder, an edit, an upload URL, the upload's completion) it costs about
 * half the CPU per call (`npm run bench -- webapi`; docs/slack.md "Posting").
 *
 * Same behaviour as `fetch` where the WebClient relies on it: the method, headers, a string body
 * and the abort signal go through; the body is read as soon as the headers are in, and a body
 * that fails half-way fails when it is read, outside the WebClient's retries. Not the same: a
 * redirect is never followed (the WebClient asks for `redirect: 'error'`), but the 3xx comes back
 * as a non-200 status, which the WebClient reports as an HTTP error where `fetch` gives a request
 * error; compressed answers are not asked for (Slack's are small JSON). A multipart body (a
 * FormData, which only the WebClient's own binary uploads build) or a redirect to follow goes to
 * the global `fetch`.
 */
import { STATUS_CODES } from 'node:http';
import { request } from 'undici';
import type { webApi } from '@slack/bolt';

export const webApiFetch: webApi.FetchFunction = async (url, init = {}) => {
  const plain = (init.body === undefined || typeof init.body === 'string') && (init.redirect === undefined || init.redirect === 'error');
  if (!plain) return fetch(url, init as RequestInit);
  const res = await request(url, {
    method: (init.method ?? 'GET') as 'GET',
    ...(init.headers && { headers: init.headers }),
    ...(init.body !== undefined && { body: init.body }),
    ...(init.signal && { signal: init.signal }),
  });
  // Read at once, so an answer the WebClient never reads (a 429's) does not wait on its
  // connection; awaited only when the body is asked for, so a body that fails half-way fails
  // there, outside the WebClient's retries, as with `fetch` (a retry would repeat a call Slack
  // has already carried out).
  const body = res.body.arrayBuffer().then((b) => Buffer.from(b));
  body.catch(() => undefined);
  const headers = new Map(Object.entries(flatHeaders(res.headers)));
  return {
    ok: res.statusCode >= 200 && res.statusCode < 300,
    status: res.statusCode,
    statusText: STATUS_CODES[res.statusCode] ?? '',
    url: String(url),
    headers: { get: (name: string) => headers.get(name.toLowerCase()) ?? null, entries: () => headers.entries() },
    arrayBuffer: async () => {
      const b = await body;
      return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
    },
    json: async () => JSON.parse((await body).toString('utf8')) as unknown,
    text: async () => (await body).toString('utf8'),
  };
};

/** undici's answer headers (lower-case names; a repeated header as an array) as one string per name, repeated values joined as `fetch` joins them. */
export function flatHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  return out;
}
