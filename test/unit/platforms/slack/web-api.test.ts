/**
 * createSlackWebCalls (the job path's Web API calls) behaves as the bot's WebClient does, for
 * every kind of answer Slack's Web API gives (src/platforms/slack/web-api.ts, docs/slack.md
 * "Posting"): each case makes the same call with both against a real HTTP server and compares
 * what the caller sees: the answer, or the error's class, code and the fields callers read.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, test } from 'vitest';
import { webApi } from '@slack/bolt';
import { json, webApiServer } from './web-api-server.ts';
import { createLogger } from '../../../../src/log.ts';
import { webClientOptions } from '../../../../src/platforms/slack/index.ts';
import { retryAfterMs, slackErrorCode } from '../../../../src/platforms/slack/context.ts';
import { createSlackWebCalls, WEB_API_RETRY, type SlackWebCalls } from '../../../../src/platforms/slack/web-api.ts';

const slack = webApiServer();
const { answers, seen } = slack;

const logs: Record<string, unknown>[] = [];
const log = createLogger({ level: 'warn', pretty: false, destination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) } });
/** Fast retries for both, so a test that retries takes milliseconds. */
const fastRetry = { ...WEB_API_RETRY, minTimeout: 1, maxTimeout: 1 };

/** The bot's WebClient (its own options, retries made fast) and createSlackWebCalls with the same. */
function both(): { client: webApi.WebClient; web: SlackWebCalls } {
  return {
    client: new webApi.WebClient('xoxb-test', { ...webClientOptions({ SLACK_API_URL: slack.apiUrl }), retryConfig: fastRetry, logLevel: webApi.LogLevel.ERROR }),
    web: createSlackWebCalls({ apiUrl: slack.apiUrl, token: 'xoxb-test', log, retry: fastRetry }),
  };
}

/**
 * The WebClient adds the answer's OAuth scopes headers to it as `response_metadata`, an empty one
 * without them (as here); nothing in the bot reads them, and createSlackWebCalls adds none.
 */
function withoutAddedMetadata(answer: unknown): unknown {
  const a = answer as { response_metadata?: object } | undefined;
  if (!a?.response_metadata || Object.keys(a.response_metadata).length > 0) return answer;
  const { response_metadata: _empty, ...rest } = a;
  return rest;
}

/** What a call's caller sees: its answer, or its error's class, code and the fields callers read. */
async function outcome(call: () => Promise<unknown>): Promise<unknown> {
  try {
    return { result: withoutAddedMetadata(await call()) };
  } catch (err) {
    const e = err as Error & { code?: string; data?: unknown; retryAfter?: number; statusCode?: number; body?: unknown };
    return { error: e.constructor.name, code: e.code, data: withoutAddedMetadata(e.data), retryAfter: e.retryAfter, statusCode: e.statusCode, body: e.body, slackCode: slackErrorCode(err), retryAfterMs: retryAfterMs(err) };
  }
}

/** Runs `call` with the WebClient, then with createSlackWebCalls; both must see the same, and Slack must be asked as many times. */
async function bothSee(call: (c: SlackWebCalls) => Promise<unknown>): Promise<unknown> {
  const { client, web } = both();
  seen.length = 0;
  const expected = await outcome(() => call(client));
  const asked = seen.length;
  seen.length = 0;
  const got = await outcome(() => call(web));
  expect(got).toEqual(expected);
  expect(seen.length).toBe(asked);
  return got;
}

describe('createSlackWebCalls, against the WebClient', () => {
  test('chat.* send JSON with the bearer token, files.* the form encoding; the answer comes back as it is', async () => {
    answers.set('chat.postMessage', (_req, body, res) => {
      const text = body.startsWith('{') ? (JSON.parse(body) as { text: string }).text : new URLSearchParams(body).get('text');
      json(res, 200, { ok: true, ts: '1.2', channel: 'C1', echoed: text });
    });
    const { web } = both();
    seen.length = 0;
    const posted = await web.chat.postMessage({ channel: 'C1', text: 'héllo & <ünïcode> %20', blocks: [{ type: 'divider' }] });
    expect(posted).toEqual({ ok: true, ts: '1.2', channel: 'C1', echoed: 'héllo & <ünïcode> %20' });
    expect(seen[0]).toMatchObject({ method: 'chat.postMessage', authorization: 'Bearer xoxb-test', contentType: 'application/json; charset=utf-8' });
    expect(JSON.parse(seen[0]!.body)).toEqual({ channel: 'C1', text: 'héllo & <ünïcode> %20', blocks: [{ type: 'divider' }] });

    // The form a WebClient sends for the same arguments, byte for byte (arrays as JSON, no undefined).
    const args = { files: [{ id: 'F1', title: 'a & b' }], channel_id: 'C1', thread_ts: undefined } as unknown as Parameters<SlackWebCalls['files']['completeUploadExternal']>[0];
    const { client } = both();
    seen.length = 0;
    await client.files.completeUploadExternal(args);
    await web.files.completeUploadExternal(args);
    expect(seen[1]).toEqual(seen[0]);
    expect(seen[1]!.contentType).toBe('application/x-www-form-urlencoded');
    answers.delete('chat.postMessage');
  });

  test('a Slack error (ok: false) is the same platform error, with its data, asked once', async () => {
    answers.set('chat.update', (_req, _body, res) => json(res, 200, { ok: false, error: 'message_not_found', response_metadata: { messages: ['[ERROR] no'] } }));
    const got = (await bothSee((c) => c.chat.update({ channel: 'C1', ts: '1.2', text: 'x' }))) as { slackCode: string };
    expect(got.slackCode).toBe('message_not_found');
    answers.delete('chat.update');
  });

  test('a 429 is a rate-limited error with its Retry-After, never retried', async () => {
    answers.set('files.getUploadURLExternal', (_req, _body, res) => json(res, 429, { ok: false, error: 'ratelimited' }, { 'retry-after': '7' }));
    const got = (await bothSee((c) => c.files.getUploadURLExternal({ filename: 'a.png', length: 3 }))) as { retryAfterMs: number };
    expect(got.retryAfterMs).toBe(7000);
    expect(seen.length).toBe(1);
    answers.delete('files.getUploadURLExternal');
  });

  test('an HTTP error status is retried, then an HTTP error with its status and body', async () => {
    answers.set('chat.postEphemeral', (_req, _body, res) => {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('upstream down');
    });
    const got = (await bothSee((c) => c.chat.postEphemeral({ channel: 'C1', user: 'U1', text: 'x' }))) as { statusCode: number; body: string };
    expect(got).toMatchObject({ statusCode: 503, body: 'upstream down' });
    expect(seen.length).toBe(1 + WEB_API_RETRY.retries);
    answers.delete('chat.postEphemeral');
  });

  test('an HTTP error that passes is retried into the answer', async () => {
    let failures = 0;
    answers.set('chat.update', (_req, _body, res) => {
      if (failures++ % 2 === 0) return json(res, 502, { ok: false });
      json(res, 200, { ok: true, ts: '1.2' });
    });
    const got = (await bothSee((c) => c.chat.update({ channel: 'C1', ts: '1.2', text: 'x' }))) as { result: { ts: string } };
    expect(got.result.ts).toBe('1.2');
    expect(seen.length).toBe(2);
    answers.delete('chat.update');
  });

  test('no answer at all (connection refused) is a request error, after the retries', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const url = `http://127.0.0.1:${port}/api/`;
    const client = new webApi.WebClient('xoxb-test', { ...webClientOptions({ SLACK_API_URL: url }), retryConfig: fastRetry, logLevel: webApi.LogLevel.ERROR });
    // The bot's own backoff, its waits recorded instead of waited: 200 ms, then 400 ms (p-retry's, as the WebClient waits).
    const waits: number[] = [];
    const web = createSlackWebCalls({ apiUrl: url, token: 'xoxb-test', log, sleep: async (ms) => void waits.push(ms) });
    const expected = (await outcome(() => client.chat.postMessage({ channel: 'C1', text: 'x' }))) as { code: string };
    const got = (await outcome(() => web.chat.postMessage({ channel: 'C1', text: 'x' }))) as { code: string; error: string };
    expect(got.code).toBe(expected.code);
    expect(got.code).toBe(webApi.ErrorCode.RequestError);
    expect(got.error).toBe('WebAPIRequestError');
    expect(waits).toEqual([200, 400]);
  });

  test('a body cut off after the headers fails the call once: not retried, as Slack may have carried it out', async () => {
    answers.set('chat.postMessage', (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"ok":true,');
      setTimeout(() => res.destroy(), 20);
    });
    const { web } = both();
    seen.length = 0;
    await expect(web.chat.postMessage({ channel: 'C1', text: 'once' })).rejects.toThrow();
    expect(seen.map((c) => c.method)).toEqual(['chat.postMessage']);
    answers.delete('chat.postMessage');
  });

  test('a call slower than the timeout is a request error', async () => {
    // undici checks its timeouts about once a second: the answer comes well after that.
    answers.set('chat.update', (_req, _body, res) => setTimeout(() => json(res, 200, { ok: true }), 2500));
    const web = createSlackWebCalls({ apiUrl: slack.apiUrl, token: 'xoxb-test', log, retry: { ...fastRetry, retries: 0 }, timeoutMs: 50 });
    expect(await outcome(() => web.chat.update({ channel: 'C1', ts: '1.2', text: 'x' }))).toMatchObject({ code: webApi.ErrorCode.RequestError });
    answers.delete('chat.update');
  });

  test('a 200 that is not JSON is a platform error carrying the text, as with the WebClient', async () => {
    answers.set('chat.update', (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>maintenance</html>');
    });
    const got = (await bothSee((c) => c.chat.update({ channel: 'C1', ts: '1.2', text: 'x' }))) as { slackCode: string };
    expect(got.slackCode).toBe('<html>maintenance</html>');
    answers.delete('chat.update');
  });

  test('a 429 without a readable Retry-After fails at once, not as a rate limit', async () => {
    answers.set('chat.postMessage', (_req, _body, res) => json(res, 429, { ok: false, error: 'ratelimited' }));
    const got = (await bothSee((c) => c.chat.postMessage({ channel: 'C1', text: 'x' }))) as { error: string; retryAfterMs: unknown };
    expect(got).toMatchObject({ error: 'Error', retryAfterMs: undefined });
    answers.delete('chat.postMessage');
  });

  test('at most `concurrency` requests are under way at once; the others wait their turn and all are answered', async () => {
    let open = 0;
    let most = 0;
    answers.set('chat.update', (_req, _body, res) => {
      open += 1;
      most = Math.max(most, open);
      setTimeout(() => {
        open -= 1;
        json(res, 200, { ok: true, ts: '1.2' });
      }, 20);
    });
    const web = createSlackWebCalls({ apiUrl: slack.apiUrl, token: 'xoxb-test', log, retry: fastRetry, concurrency: 2 });
    const answered = await Promise.all(Array.from({ length: 6 }, () => web.chat.update({ channel: 'C1', ts: '1.2', text: 'x' })));
    expect(answered.map((a) => a.ts)).toEqual(Array(6).fill('1.2'));
    expect(most).toBe(2);
    answers.delete('chat.update');
  });

  test("Slack's detail of an error (response_metadata.messages) is logged", async () => {
    answers.set('chat.update', (_req, _body, res) => json(res, 200, { ok: false, error: 'invalid_blocks', response_metadata: { messages: ['[ERROR] must be more than 0 characters [json-pointer:/blocks/0/text/text]'] } }));
    const { web } = both();
    logs.length = 0;
    await expect(web.chat.update({ channel: 'C1', ts: '1.2', text: 'x' })).rejects.toThrow(/invalid_blocks/);
    expect(logs).toEqual([expect.objectContaining({ method: 'chat.update', messages: ['[ERROR] must be more than 0 characters [json-pointer:/blocks/0/text/text]'] })]);
    answers.delete('chat.update');
  });

  test("a successful answer's warnings are logged", async () => {
    answers.set('chat.postMessage', (_req, _body, res) => json(res, 200, { ok: true, ts: '1.2', response_metadata: { warnings: ['missing_charset'] } }));
    const { web } = both();
    logs.length = 0;
    await web.chat.postMessage({ channel: 'C1', text: 'x' });
    expect(logs).toEqual([expect.objectContaining({ method: 'chat.postMessage', warnings: ['missing_charset'], msg: 'slack answered with warnings or messages' })]);
    answers.delete('chat.postMessage');
  });
});
