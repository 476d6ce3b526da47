/**
 * The bot's Discord REST transport (src/platforms/discord/rest-request.ts) under the real
 * @discordjs/rest, against a bare HTTP server: a message with files arrives as a multipart body
 * that a standard parser (the WHATWG `Request.formData()`) reads back field by field; a retried
 * request (429, 5xx, timeout, reset connection) sends the same bytes again; a caller's abort ends
 * the call; the rate-limit headers and errors reach @discordjs/rest as its own transport gives them.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { DiscordAPIError, HTTPError, REST, Routes } from 'discord.js';
import { discordRequest, discordRestOptions, sendCallbacksDirectly } from '../../../../src/platforms/discord/rest-request.ts';
import { DiscordMessages } from '../../../../src/platforms/discord/messages.ts';

interface Arrived {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  at: number;
}
type Answer = (res: ServerResponse) => void;

const arrived: Arrived[] = [];
/** Answers for the next requests, in order; after them, a message. */
const answers: Answer[] = [];
const MESSAGE = { id: '200000000000000001', channel_id: '100000000000000001' };

const reply = (status: number, body: unknown, headers: Record<string, string> = {}): Answer => (res) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    arrived.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks), at: Date.now() });
    (answers.shift() ?? reply(200, MESSAGE))(res);
  });
});
let api = '';
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  api = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const clients: REST[] = [];
afterEach(() => {
  arrived.length = 0;
  answers.length = 0;
  for (const rest of clients.splice(0)) {
    rest.clearHashSweeper();
    rest.clearHandlerSweeper();
  }
});

/** A REST client as the bot builds it (discord/index.ts). */
function botRest(): REST {
  const rest = new REST(discordRestOptions(api)).setToken('bot-token');
  clients.push(rest);
  return rest;
}

/** The fields of a multipart request, read by the platform's own parser. */
async function formOf(req: Arrived): Promise<FormData> {
  return new Request('http://x/', { method: 'POST', headers: { 'content-type': req.headers['content-type']! }, body: req.body }).formData();
}

const png = (n: number, size: number) => Buffer.alloc(size, n);
const CHANNEL = '100000000000000001';

describe("the bot's Discord REST transport", () => {
  it('sends a message with files as one multipart body a standard parser reads: payload_json, then files[n]', async () => {
    const messages = new DiscordMessages(botRest());
    clients.push(messages.interactionRest);
    const body = { content: 'two images', attachments: [{ id: '0', filename: 'a.png' }, { id: '1', filename: 'b "2".webp' }] };
    const files = [
      { name: 'a.png', data: png(1, 70_000), contentType: 'image/png' },
      { name: 'b "2".webp', data: png(2, 3), contentType: 'image/webp' },
    ];

    // @discordjs/rest's own transport would join the pieces into one buffer (or, given `files`,
    // copy each into a Blob): the file's bytes must go out as they are.
    const concat = vi.spyOn(Buffer, 'concat');
    const joined: (readonly Uint8Array[])[] = [];
    const sent = await messages.postToChannel(CHANNEL, body, files).finally(() => {
      joined.push(...concat.mock.calls.map(([list]) => list));
      concat.mockRestore();
    });

    expect(joined.some((list) => list.includes(files[0]!.data))).toBe(false);
    // Both of the bot's clients send on the bot's transport (interactionRestFor keeps it).
    expect([messages.rest.options.makeRequest, messages.interactionRest.options.makeRequest]).toEqual([discordRequest, discordRequest]);
    expect(sent).toEqual(MESSAGE);
    const req = arrived[0]!;
    expect(req.method).toBe('POST');
    expect(req.url).toBe(`/api/v10/channels/${CHANNEL}/messages`);
    expect(req.headers.authorization).toBe('Bot bot-token');
    // Its length stated, not chunked.
    expect(req.headers['content-length']).toBe(String(req.body.length));
    expect(req.headers['transfer-encoding']).toBeUndefined();
    const form = await formOf(req);
    expect([...form.keys()]).toEqual(['payload_json', 'files[0]', 'files[1]']);
    expect(JSON.parse(String(form.get('payload_json')))).toEqual(body);
    const [a, b] = [form.get('files[0]') as File, form.get('files[1]') as File];
    expect([a.name, a.type, Buffer.from(await a.arrayBuffer()).equals(files[0]!.data)]).toEqual(['a.png', 'image/png', true]);
    // A quote would end the filename early: it is replaced.
    expect([b.name, b.type, Buffer.from(await b.arrayBuffer()).equals(files[1]!.data)]).toEqual(['b _2_.webp', 'image/webp', true]);
  });

  it('sends the same bytes again when @discordjs/rest retries after a 429 and after a 5xx', async () => {
    const messages = new DiscordMessages(botRest());
    clients.push(messages.interactionRest);
    answers.push(
      reply(429, { message: 'You are being rate limited.', retry_after: 0.05, global: false }, { 'retry-after': '0.1', 'x-ratelimit-scope': 'user' }),
      reply(502, { message: 'bad gateway' }),
    );
    const loc = { applicationId: '300000000000000001', interactionToken: 'tok', tokenExpiresAt: Date.now() + 600_000, channelId: CHANNEL, ephemeral: false, interactionId: '1', attachmentSizeLimit: 10 << 20 };

    await messages.editOriginal(loc, { content: 'done' }, [{ name: 'a.png', data: png(3, 200_000), contentType: 'image/png' }]);

    expect(arrived).toHaveLength(3);
    expect(arrived.every((r) => r.url === `/api/v10${Routes.webhookMessage(loc.applicationId, 'tok', '@original')}` && r.method === 'PATCH')).toBe(true);
    // Sent with the interaction's token, not the bot's.
    expect(arrived[0]!.headers.authorization).toBeUndefined();
    expect(arrived[0]!.body.length).toBeGreaterThan(200_000);
    expect(arrived[1]!.body.equals(arrived[0]!.body) && arrived[2]!.body.equals(arrived[0]!.body)).toBe(true);
  });

  it("lets @discordjs/rest's timeout abort a request and try it again, with the same bytes", async () => {
    const rest = new REST({ ...discordRestOptions(api), timeout: 200 }).setToken('bot-token');
    clients.push(rest);
    // The first answer comes too late: the request is aborted, and sent again.
    answers.push((res) => setTimeout(() => reply(200, MESSAGE)(res), 1_000));
    const messages = new DiscordMessages(rest);
    clients.push(messages.interactionRest);

    await messages.postToChannel(CHANNEL, { content: 'late' }, [{ name: 'a.png', data: png(5, 50_000), contentType: 'image/png' }]);

    expect(arrived).toHaveLength(2);
    expect(arrived[1]!.body.equals(arrived[0]!.body)).toBe(true);
  });

  it('sends the same bytes again after the connection is reset mid-request (ECONNRESET, which @discordjs/rest retries)', async () => {
    const messages = new DiscordMessages(botRest());
    clients.push(messages.interactionRest);
    // The whole body arrives, then the connection is reset (TCP RST) instead of answered.
    answers.push((res) => res.socket!.resetAndDestroy());

    const sent = await messages.postToChannel(CHANNEL, { content: 'reset' }, [{ name: 'a.png', data: png(6, 120_000), contentType: 'image/png' }]);

    expect(sent).toEqual(MESSAGE);
    expect(arrived).toHaveLength(2);
    expect(arrived[0]!.body.length).toBeGreaterThan(120_000);
    expect(arrived[1]!.body.equals(arrived[0]!.body)).toBe(true);
  });

  it("ends a request its caller aborts at once, with @discordjs/rest's AbortError", async () => {
    const rest = botRest();
    // Answered only after the test is over: the abort, not the answer, must end the call.
    answers.push((res) => setTimeout(() => reply(200, MESSAGE)(res), 2_000).unref());
    const caller = new AbortController();
    const started = Date.now();

    const call = rest.post(Routes.channelMessages(CHANNEL), { body: { content: 'never mind' }, signal: caller.signal }).catch((e: unknown) => e);
    setTimeout(() => caller.abort(), 100);
    const err = await call;

    expect((err as Error).name).toBe('AbortError');
    expect(Date.now() - started).toBeLessThan(1_000);
    // Sent once: @discordjs/rest's retries of an aborted request stop before the network.
    expect(arrived.length).toBeLessThanOrEqual(1);
  });

  it("gives @discordjs/rest the answer's rate-limit headers: a bucket spent waits for its reset, a global 429 holds the client", async () => {
    const rest = botRest();
    const limited: { global: boolean }[] = [];
    rest.on('rateLimited', (info) => limited.push({ global: info.global }));
    answers.push(reply(200, MESSAGE, { 'x-ratelimit-limit': '1', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset-after': '0.4' }));

    await rest.patch(Routes.channelMessage(CHANNEL, '1'), { body: { content: 'a' } });
    await rest.patch(Routes.channelMessage(CHANNEL, '1'), { body: { content: 'b' } });
    // The second waited for the bucket's reset (less @discordjs/rest's default offset of 50 ms would still be >= 300).
    expect(arrived[1]!.at - arrived[0]!.at).toBeGreaterThanOrEqual(300);

    answers.push(reply(429, { message: 'You are being rate limited.', retry_after: 0.05, global: true }, { 'retry-after': '0.1', 'x-ratelimit-global': 'true', 'x-ratelimit-scope': 'global' }));
    await rest.get(Routes.user());
    expect(limited).toContainEqual({ global: true });
    expect(arrived).toHaveLength(4);
  });

  it("turns Discord's errors into @discordjs/rest's: a 4xx with its JSON code, a 204 with no body", async () => {
    const rest = botRest();
    answers.push(reply(403, { message: 'Missing Permissions', code: 50013 }));
    const err = await rest.post(Routes.channelMessages(CHANNEL), { body: { content: 'x' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DiscordAPIError);
    expect([(err as DiscordAPIError).status, (err as DiscordAPIError).code, (err as DiscordAPIError).message]).toEqual([403, 50013, 'Missing Permissions']);
    expect(arrived[0]!.headers['content-type']).toBe('application/json');
    expect(JSON.parse(arrived[0]!.body.toString())).toEqual({ content: 'x' });

    answers.push((res) => res.writeHead(204).end());
    // No JSON to parse: @discordjs/rest gives the empty body's bytes.
    const deleted = await rest.delete(Routes.channelMessage(CHANNEL, '1'));
    expect(deleted).toBeInstanceOf(ArrayBuffer);
    expect((deleted as ArrayBuffer).byteLength).toBe(0);
  });

  it("still sends discord.js's own file uploads (a FormData), through the global fetch", async () => {
    const rest = botRest();
    await rest.post(Routes.channelMessages(CHANNEL), { body: { content: 'raw' }, files: [{ name: 'c.png', data: png(4, 1_000), contentType: 'image/png' }] });
    const form = await formOf(arrived[0]!);
    expect(JSON.parse(String(form.get('payload_json')))).toEqual({ content: 'raw' });
    expect((form.get('files[0]') as File).size).toBe(1_000);
  });
});

describe('interaction callbacks, sent straight to Discord (sendCallbacksDirectly)', () => {
  /** The bot's client REST (discord/index.ts): callbacks go around @discordjs/rest's queue. */
  function clientRest(opts: { offset?: number; timeout?: number } = {}): REST {
    const rest = new REST({ ...discordRestOptions(api), ...opts }).setToken('bot-token');
    sendCallbacksDirectly(rest);
    clients.push(rest);
    return rest;
  }
  /** No handler made for any route: every call went around @discordjs/rest's queue. */
  const wentAround = (rest: REST) => expect(rest.handlers.size).toBe(0);
  const ID = '400000000000000001';
  const route = Routes.interactionCallback(ID, 'itok');
  /** What discord.js's deferReply posts (InteractionResponses.js). */
  const defer = { body: { type: 5, data: { flags: 64 } }, auth: false, query: new URLSearchParams({ with_response: 'false' }) } as const;
  const noContent: Answer = (res) => res.writeHead(204).end();
  const sameRequests = () => arrived.every((r) => r.url === `/api/v10${route}?with_response=false` && r.body.equals(arrived[0]!.body));

  it("sends a defer as one request that @discordjs/rest's queue never sees, and answers as @discordjs/rest does", async () => {
    const rest = clientRest();
    answers.push(noContent);

    const answered = await rest.post(route, defer);

    expect(arrived).toHaveLength(1);
    expect([arrived[0]!.method, arrived[0]!.url]).toEqual(['POST', `/api/v10${route}?with_response=false`]);
    expect(JSON.parse(arrived[0]!.body.toString())).toEqual({ type: 5, data: { flags: 64 } });
    expect(arrived[0]!.headers['content-type']).toBe('application/json');
    expect(arrived[0]!.headers['user-agent']).toMatch(/^DiscordBot \(https:\/\/discord\.js\.org, /);
    // The interaction's token in the path is the proof: no bot token.
    expect(arrived[0]!.headers.authorization).toBeUndefined();
    wentAround(rest);
    // A 204 gives the empty body's bytes, as @discordjs/rest's own answer would.
    expect(answered).toBeInstanceOf(ArrayBuffer);
    expect((answered as ArrayBuffer).byteLength).toBe(0);

    // With ?with_response=true Discord answers the callback's resource as JSON.
    answers.push(reply(200, { interaction: { id: ID, type: 2 }, resource: { type: 5 } }));
    const withResponse = await rest.post(route, { ...defer, query: new URLSearchParams({ with_response: 'true' }) });
    expect(withResponse).toEqual({ interaction: { id: ID, type: 2 }, resource: { type: 5 } });
  });

  it("throws a 4xx as @discordjs/rest's DiscordAPIError, sent once: Discord's JSON error, or a proxy's page", async () => {
    const rest = clientRest();
    answers.push(reply(404, { message: 'Unknown interaction', code: 10062 }));
    const err = await rest.post(route, defer).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DiscordAPIError);
    expect([(err as DiscordAPIError).status, (err as DiscordAPIError).code, (err as DiscordAPIError).message, (err as DiscordAPIError).method]).toEqual([404, 10062, 'Unknown interaction', 'POST']);
    expect((err as DiscordAPIError).requestBody.json).toEqual(defer.body);
    expect(arrived).toHaveLength(1);

    answers.push((res) => res.writeHead(413, { 'content-type': 'text/html' }).end('<html>Request Entity Too Large</html>'));
    const page = await rest.post(route, defer).catch((e: unknown) => e);
    expect(page).toBeInstanceOf(DiscordAPIError);
    expect((page as DiscordAPIError).status).toBe(413);
    expect((page as DiscordAPIError).rawError).toBeInstanceOf(ArrayBuffer);
    expect(arrived).toHaveLength(2);
    wentAround(rest);
  });

  it('waits out a 429 (Retry-After, plus the rate-limit offset) before sending it again', async () => {
    const rest = clientRest({ offset: 50 });
    answers.push(reply(429, { message: 'You are being rate limited.', retry_after: 0.3, global: false }, { 'retry-after': '0.3', 'x-ratelimit-scope': 'user' }), noContent);

    await rest.post(route, defer);

    expect(arrived).toHaveLength(2);
    expect(arrived[1]!.at - arrived[0]!.at).toBeGreaterThanOrEqual(340);
    expect(sameRequests()).toBe(true);
    wentAround(rest);
  });

  it("sends it again after a 5xx and a reset connection, and gives up after @discordjs/rest's retries with its HTTPError", async () => {
    const rest = clientRest();
    answers.push(reply(502, { message: 'bad gateway' }), (res) => res.socket!.resetAndDestroy(), noContent);
    await rest.post(route, defer);
    expect(arrived).toHaveLength(3);
    expect(sameRequests()).toBe(true);

    arrived.length = 0;
    answers.push(...Array.from({ length: 4 }, () => reply(503, { message: 'unavailable' })));
    const err = await rest.post(route, defer).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HTTPError);
    expect((err as HTTPError).status).toBe(503);
    // The first attempt and @discordjs/rest's default of 3 retries.
    expect(arrived).toHaveLength(4);
    wentAround(rest);
  });

  it("ends an attempt after the client's timeout and sends it again; a caller's abort ends it at once", async () => {
    const rest = clientRest({ timeout: 200 });
    answers.push((res) => setTimeout(() => noContent(res), 1_000));
    await rest.post(route, defer);
    expect(arrived).toHaveLength(2);
    expect(sameRequests()).toBe(true);

    arrived.length = 0;
    answers.push((res) => setTimeout(() => noContent(res), 2_000).unref());
    const caller = new AbortController();
    const started = Date.now();
    const call = rest.post(route, { ...defer, signal: caller.signal }).catch((e: unknown) => e);
    setTimeout(() => caller.abort(), 100);
    expect(((await call) as Error).name).toBe('AbortError');
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(arrived.length).toBeLessThanOrEqual(1);
    wentAround(rest);
  });

  it('leaves every other call to @discordjs/rest: other routes, and a callback with files or a bot token', async () => {
    const rest = clientRest();
    await rest.post(Routes.channelMessages(CHANNEL), { body: { content: 'x' } });
    answers.push(noContent);
    await rest.post(route, { ...defer, files: [{ name: 'a.png', data: png(1, 100), contentType: 'image/png' }] });
    answers.push(noContent);
    await rest.post(route, { body: defer.body });

    expect(arrived).toHaveLength(3);
    expect(arrived[1]!.headers['content-type']).toMatch(/^multipart\/form-data/);
    expect(arrived[2]!.headers.authorization).toBe('Bot bot-token');
    expect(rest.handlers.size).toBe(2);
  });
});
