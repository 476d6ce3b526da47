/**
 * The WebClient on webApiFetch behaves as it does on the global fetch, for every kind of answer
 * Slack's Web API gives (docs/slack.md "Posting"): each case runs the real WebClient against a
 * real HTTP server once with each fetch and compares what the caller sees.
 */
import { describe, expect, test } from 'vitest';
import { webApi } from '@slack/bolt';
import { json, webApiServer } from './web-api-server.ts';
import { webApiFetch } from '../../../../src/platforms/slack/web-fetch.ts';

const slack = webApiServer();
const { answers, seen } = slack;

const clients = (options: webApi.WebClientOptions = { slackApiUrl: slack.apiUrl, rejectRateLimitedCalls: true, retryConfig: { retries: 0 } }) => ({
  global: new webApi.WebClient('xoxb-test', options),
  lean: new webApi.WebClient('xoxb-test', { ...options, fetch: webApiFetch }),
});

/** What a call's caller sees: its result, or its error's class, code and the fields callers read. */
async function outcome(call: () => Promise<unknown>): Promise<unknown> {
  try {
    return { result: await call() };
  } catch (err) {
    const e = err as Error & { code?: string; data?: unknown; retryAfter?: number; statusCode?: number; body?: unknown };
    return { error: e.constructor.name, code: e.code, data: e.data, retryAfter: e.retryAfter, statusCode: e.statusCode, body: e.body };
  }
}

async function bothSee(call: (c: webApi.WebClient) => Promise<unknown>, options?: webApi.WebClientOptions): Promise<unknown> {
  const { global, lean } = clients(options);
  const expected = await outcome(() => call(global));
  const got = await outcome(() => call(lean));
  expect(got).toEqual(expected);
  return got;
}

describe('the WebClient on webApiFetch', () => {
  test('sends the method, token and url-encoded arguments, and reads the result with its scopes headers', async () => {
    answers.set('chat.postMessage', (_req, body, res) =>
      json(res, 200, { ok: true, ts: '1.2', echoed: new URLSearchParams(body).get('text') }, { 'x-oauth-scopes': 'chat:write,files:write', 'x-accepted-oauth-scopes': 'chat:write' }),
    );
    seen.length = 0;
    const got = (await bothSee((c) => c.chat.postMessage({ channel: 'C1', text: 'héllo & <ünïcode>', blocks: [{ type: 'divider' }] }))) as {
      result: { ts: string; echoed: string; response_metadata: { scopes: string[]; acceptedScopes: string[] } };
    };
    expect(got.result.ts).toBe('1.2');
    expect(got.result.echoed).toBe('héllo & <ünïcode>');
    expect(got.result.response_metadata.scopes).toEqual(['chat:write', 'files:write']);
    expect(got.result.response_metadata.acceptedScopes).toEqual(['chat:write']);
    expect(seen[1]).toEqual(seen[0]);
    expect(seen[1]!.authorization).toBe('Bearer xoxb-test');
  });

  test('a Slack error (ok: false) is the same platform error, with its data', async () => {
    answers.set('chat.update', (_req, _body, res) => json(res, 200, { ok: false, error: 'message_not_found' }));
    const got = (await bothSee((c) => c.chat.update({ channel: 'C1', ts: '1.2', text: 'x' }))) as { error: string; data: { error: string } };
    expect(got.data.error).toBe('message_not_found');
  });

  test('a 429 is a rate-limited error with its Retry-After', async () => {
    answers.set('files.getUploadURLExternal', (_req, _body, res) => json(res, 429, { ok: false, error: 'ratelimited' }, { 'retry-after': '7' }));
    const got = (await bothSee((c) => c.files.getUploadURLExternal({ filename: 'a.png', length: 3 }))) as { retryAfter: number; code: string };
    expect(got.retryAfter).toBe(7);
    expect(got.code).toBe(webApi.ErrorCode.RateLimitedError);
  });

  test('an HTTP error status is an HTTP error with its status and body', async () => {
    answers.set('auth.test', (_req, _body, res) => {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('upstream down');
    });
    const got = (await bothSee((c) => c.auth.test())) as { statusCode: number; body: string };
    expect(got.statusCode).toBe(503);
    expect(got.body).toBe('upstream down');
    answers.delete('auth.test');
  });

  test('a body cut off after the headers fails the call once: not retried, as Slack may have carried it out', async () => {
    answers.set('chat.postMessage', (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"ok":true,');
      setTimeout(() => res.destroy(), 20);
    });
    const retrying = { slackApiUrl: slack.apiUrl, rejectRateLimitedCalls: true, retryConfig: { retries: 2, minTimeout: 1, maxTimeout: 1 }, logLevel: webApi.LogLevel.ERROR };
    for (const client of [new webApi.WebClient('xoxb-test', retrying), new webApi.WebClient('xoxb-test', { ...retrying, fetch: webApiFetch })]) {
      seen.length = 0;
      await expect(client.chat.postMessage({ channel: 'C1', text: 'once' })).rejects.toThrow();
      expect(seen.map((c) => c.method)).toEqual(['chat.postMessage']);
    }
    answers.delete('chat.postMessage');
  });

  test('a redirect is not followed by either (an HTTP error here, a request error on fetch)', async () => {
    answers.set('chat.delete', (_req, _body, res) => {
      res.writeHead(302, { location: `${slack.apiUrl}auth.test` });
      res.end();
    });
    const { global, lean } = clients();
    for (const [client, code] of [
      [global, webApi.ErrorCode.RequestError],
      [lean, webApi.ErrorCode.HTTPError],
    ] as const) {
      seen.length = 0;
      expect(await outcome(() => client.chat.delete({ channel: 'C1', ts: '1.2' }))).toMatchObject({ code });
      expect(seen.map((c) => c.method)).toEqual(['chat.delete']);
    }
  });

  test('a call slower than the client timeout is aborted', async () => {
    answers.set('conversations.info', (_req, _body, res) => setTimeout(() => json(res, 200, { ok: true }), 500));
    const options = { slackApiUrl: slack.apiUrl, retryConfig: { retries: 0 }, timeout: 50, logLevel: webApi.LogLevel.ERROR };
    const got = (await bothSee((c) => c.conversations.info({ channel: 'C1' }), options)) as { code: string };
    expect(got.code).toBe(webApi.ErrorCode.RequestError);
  });

  test('a binary argument (multipart) still reaches Slack, through the global fetch', async () => {
    answers.set('files.upload', (_req, body, res) => json(res, 200, { ok: true, size: body.length }));
    seen.length = 0;
    const { lean } = clients();
    await lean.apiCall('files.upload', { file: Buffer.from('PNGDATA'), filename: 'a.png' });
    expect(seen[0]!.contentType).toMatch(/^multipart\/form-data; boundary=/);
    expect(seen[0]!.body).toContain('PNGDATA');
  });
});
