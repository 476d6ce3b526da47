/**
 * The Web API calls that post a job's messages and files, made directly with undici's `request`
 * instead of through the WebClient: chat.postMessage, chat.postEphemeral and chat.update (each
 * placeholder, edit, result and notice), files.getUploadURLExternal and
 * files.completeUploadExternal (each result's upload). Every other call (views, conversations,
 * users, files.info, files.delete, chat.delete…) goes through Bolt's WebClient
 * (`SlackContext.client`).
 *
 * Why: these calls are most of a job's Slack traffic, and the WebClient spends on each what this
 * bot never uses. It copies and JSON-encodes the arguments, headers and answer for its debug log
 * even with debug off, URL-encodes the JSON of the blocks, and runs every call through p-queue
 * and p-retry. A heap profile of the jobs bench charged the WebClient about a third of the main
 * thread's allocation per job; `npm run bench -- webapi` compares the CPU of a job's calls
 * (docs/slack.md "Posting").
 *
 * Same behaviour as the WebClient with the bot's options (`webClientOptions` in index.ts), which
 * the rest of the adapter relies on, and the same error classes, so `slackErrorCode`,
 * `retryAfterMs` and every caller's handling see no difference:
 * - an answer with `ok: false` throws WebAPIPlatformError (its `data` is the answer), never
 *   retried;
 * - a 429 throws WebAPIRateLimitedError with its `Retry-After` seconds (read as the WebClient
 *   reads them), never retried (the WebClient's `rejectRateLimitedCalls: true`; context.ts
 *   decides how long to wait);
 * - another status than 200 throws WebAPIHTTPError, and a request that fails (no connection, a
 *   reset, the timeout) WebAPIRequestError, each retried with WEB_API_RETRY's backoff;
 * - a body that fails half-way fails the call, outside the retries (Slack may have done it);
 * - at most WEB_API_CONCURRENCY requests are under way at once, the others wait their turn;
 * - an answer's `response_metadata.warnings` and `messages` (Slack's detail of an error such as
 *   `invalid_blocks`) are logged, and so is each failed attempt before its retry.
 * The chat.* methods send JSON: Slack's write methods accept it, and Slack recommends it for
 * methods with JSON arguments such as chat.postMessage
 * (https://docs.slack.dev/apis/web-api/#posting_json). The files.* methods send the form
 * encoding their reference pages list, as the WebClient does for every method.
 */
import { STATUS_CODES } from 'node:http';
import { stringify } from 'node:querystring';
import { webApi } from '@slack/bolt';
import { request, type Dispatcher } from 'undici';
import { flatHeaders } from '../../util/fetch-like.ts';
import { concurrencyLimit } from '../../util/limit.ts';
import { sleep as realSleep, type Sleep } from '../../util/sleep.ts';
import type { Logger } from '../../log.ts';
import type { WebClient } from './context.ts';

/** Retries of a Web API call that failed before Slack answered, or answered with an HTTP error (never on 429). */
export const WEB_API_RETRY = { retries: 2, factor: 2, minTimeout: 200, maxTimeout: 1000 };
/** How long a Web API call may wait for Slack's headers, then for each part of its body. */
export const WEB_API_TIMEOUT_MS = 60_000;
/** Requests to Slack at once, the others waiting their turn: the WebClient's default (`maxRequestConcurrency`). */
export const WEB_API_CONCURRENCY = 100;

/** The calls this module makes, with the WebClient's own types: a WebClient is one too (tests use either). */
export interface SlackWebCalls {
  chat: Pick<WebClient['chat'], 'postMessage' | 'postEphemeral' | 'update'>;
  files: Pick<WebClient['files'], 'getUploadURLExternal' | 'completeUploadExternal'>;
}

export interface SlackWebCallsOptions {
  /** The Web API base, with its trailing slash (context.ts slackApiUrl). */
  apiUrl: string;
  token: string;
  log: Logger;
  retry?: typeof WEB_API_RETRY;
  timeoutMs?: number;
  concurrency?: number;
  sleep?: Sleep;
}

type Encoding = 'json' | 'form';

export function createSlackWebCalls(opts: SlackWebCallsOptions): SlackWebCalls {
  const retry = opts.retry ?? WEB_API_RETRY;
  const timeoutMs = opts.timeoutMs ?? WEB_API_TIMEOUT_MS;
  const sleep = opts.sleep ?? realSleep;
  // Each attempt takes a slot for its exchange, as each goes through the WebClient's queue; the
  // waits between attempts hold none.
  const slot = concurrencyLimit(opts.concurrency ?? WEB_API_CONCURRENCY);
  const sent = { authorization: `Bearer ${opts.token}`, accept: 'application/json' };
  const headers: Record<Encoding, Record<string, string>> = {
    json: { ...sent, 'content-type': 'application/json; charset=utf-8' },
    form: { ...sent, 'content-type': 'application/x-www-form-urlencoded' },
  };

  async function call<T>(method: string, args: object, encoding: Encoding): Promise<T> {
    const url = `${opts.apiUrl}${method}`;
    const body = encoding === 'json' ? JSON.stringify(args) : formBody(args);
    for (let attempt = 0; ; attempt++) {
      const exchange = await slot(async (): Promise<{ answer: string } | { failure: Error }> => {
        let res: Dispatcher.ResponseData;
        try {
          res = await request(url, { method: 'POST', headers: headers[encoding], body, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
        } catch (err) {
          return { failure: new webApi.WebAPIRequestError(err instanceof Error ? err : new Error(String(err))) };
        }
        if (res.statusCode === 200) return { answer: await res.body.text() };
        if (res.statusCode === 429) {
          // Not read: the answer to a call refused says nothing more, and must not hold the caller.
          res.body.dump().catch(() => undefined);
          const retryAfter = retryAfterSeconds(res.headers['retry-after']);
          throw retryAfter === undefined ? new Error(`Slack answered ${method} with 429 and no readable Retry-After`) : new webApi.WebAPIRateLimitedError(retryAfter);
        }
        const text = await res.body.text().catch(() => '');
        return { failure: new webApi.WebAPIHTTPError(res.statusCode, STATUS_CODES[res.statusCode] ?? '', flatHeaders(res.headers), text) };
      });
      if ('answer' in exchange) return answerOf(exchange.answer, method, opts.log) as T;
      if (attempt >= retry.retries) throw exchange.failure;
      opts.log.warn({ err: exchange.failure, method, attempt: attempt + 1 }, 'slack web api call failed; retrying');
      await sleep(Math.min(retry.maxTimeout, retry.minTimeout * retry.factor ** attempt));
    }
  }

  return {
    chat: {
      postMessage: (args) => call('chat.postMessage', args, 'json'),
      postEphemeral: (args) => call('chat.postEphemeral', args, 'json'),
      update: (args) => call('chat.update', args, 'json'),
    },
    files: {
      getUploadURLExternal: (args) => call('files.getUploadURLExternal', args, 'form'),
      completeUploadExternal: (args) => call('files.completeUploadExternal', args, 'form'),
    },
  };
}

/** A 200's answer (read outside the retries: a body cut off half-way fails the call), thrown as WebAPIPlatformError unless `ok`. */
function answerOf(raw: string, method: string, log: Logger): webApi.WebAPICallResult {
  let answer: webApi.WebAPICallResult;
  try {
    answer = JSON.parse(raw) as webApi.WebAPICallResult;
  } catch {
    answer = { ok: false, error: raw } as webApi.WebAPICallResult;
  }
  const { warnings, messages } = answer.response_metadata ?? {};
  if (warnings?.length || messages?.length) log.warn({ method, warnings, messages }, 'slack answered with warnings or messages');
  if (!answer.ok) throw new webApi.WebAPIPlatformError(answer as webApi.WebAPICallResult & { error: string });
  return answer;
}

/** The form the WebClient sends, byte for byte: strings, numbers and booleans as they are, anything else as JSON; nothing for undefined or null. */
function formBody(args: object): string {
  const form: Record<string, string | number | boolean> = {};
  for (const [key, value] of Object.entries(args)) {
    if (value === undefined || value === null) continue;
    form[key] = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? value : JSON.stringify(value);
  }
  return stringify(form);
}

/** `Retry-After` as the WebClient reads it: whole seconds (Slack sends nothing else); undefined when absent or unreadable. */
function retryAfterSeconds(value: string | string[] | undefined): number | undefined {
  const seconds = Number.parseInt(String(Array.isArray(value) ? value[0] : value), 10);
  return Number.isNaN(seconds) ? undefined : seconds;
}
