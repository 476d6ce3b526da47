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
import { request } from 'undici';
import type { webApi } from '@slack/bolt';
import { fetchLikeAnswer } from '../../util/fetch-like.ts';

export const webApiFetch: webApi.FetchFunction = async (url, init = {}) => {
  const plain = (init.body === undefined || typeof init.body === 'string') && (init.redirect === undefined || init.redirect === 'error');
  if (!plain) return fetch(url, init as RequestInit);
  const res = await request(url, {
    method: (init.method ?? 'GET') as 'GET',
    ...(init.headers && { headers: init.headers }),
    ...(init.body !== undefined && { body: init.body }),
    ...(init.signal && { signal: init.signal }),
  });
  // Read at once, awaited only when asked for (fetch-like.ts): a body that fails half-way fails
  // there, outside the WebClient's retries, as with `fetch` (a retry would repeat a call Slack
  // has already carried out).
  return { ...fetchLikeAnswer(res), url: String(url) };
};
