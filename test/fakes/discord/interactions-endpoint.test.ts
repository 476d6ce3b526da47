/**
 * The fake Discord's HTTP interactions endpoint mode, against tiny apps written here with
 * node:http and node:crypto (not the bot's code): the portal's URL check, signed delivery, the
 * app's answer applied as the first response (or refused as Discord would), and no gateway
 * delivery while a URL is set.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPublicKey, verify } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { Client, GatewayIntentBits } from 'discord.js';
import { INTERACTIONS_USER_AGENT, startFakeDiscord, type FakeDiscord } from './index.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  // Newest first: apps and clients go before the fake they talk to.
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function start(): Promise<FakeDiscord> {
  const fake = await startFakeDiscord({ ackDeadlineMs: 300 });
  cleanups.push(() => fake.close());
  return fake;
}

interface Reply {
  status?: number;
  /** Sent as JSON unless `text` is given. */
  json?: unknown;
  text?: string;
  delayMs?: number;
}

interface App {
  url: string;
  /** Every request received, with whether its signature was valid. */
  received: { headers: IncomingHttpHeaders; body: string; verified: boolean }[];
  /** What the app answers to the next non-PING interaction. */
  reply: Reply;
  /** Resolves once every request received so far has been answered (even too late). */
  idle(): Promise<unknown>;
  close(): Promise<void>;
}

/**
 * An app that verifies signatures with the public key decoded independently of the fake (JWK),
 * refuses bad ones 401 and answers PINGs `{"type": 1}`, unless told to skip either.
 */
async function startApp(publicKeyHex: string, opts: { checkSignatures?: boolean; pong?: Reply } = {}): Promise<App> {
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKeyHex, 'hex').toString('base64url') }, format: 'jwk' });
  const answering = new Set<Promise<void>>();
  const app: App = {
    url: '',
    received: [],
    reply: { json: { type: 5 } },
    idle: () => Promise.all(answering),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const answer = async (headers: IncomingHttpHeaders, body: Buffer): Promise<Reply> => {
    const signature = String(headers['x-signature-ed25519'] ?? '');
    const timestamp = String(headers['x-signature-timestamp'] ?? '');
    const verified = /^[0-9a-f]{128}$/.test(signature) && verify(null, Buffer.concat([Buffer.from(timestamp), body]), key, Buffer.from(signature, 'hex'));
    app.received.push({ headers, body: body.toString('utf8'), verified });
    if (!verified && opts.checkSignatures !== false) return { status: 401, json: { error: 'invalid request signature' } };
    if ((JSON.parse(body.toString('utf8')) as { type: number }).type === 1) return opts.pong ?? { json: { type: 1 } };
    const reply = app.reply;
    if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
    return reply;
  };
  const server = createServer((req, res) => {
    const answered = (async () => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const reply = await answer(req.headers, Buffer.concat(chunks));
      res.writeHead(reply.status ?? 200, { 'content-type': 'application/json' }).end(reply.text ?? JSON.stringify(reply.json));
    })();
    answering.add(answered);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  app.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/interactions`;
  cleanups.push(() => app.close());
  return app;
}

const imagine = { name: 'imagine', options: [{ name: 'prompt', type: 3, value: 'a fox' }] };

describe('fake Discord: HTTP interactions endpoint', () => {
  it('saves the URL of an app that answers the signed PING and refuses bad signatures', async () => {
    const discord = await start();
    expect(discord.publicKeyHex).toMatch(/^[0-9a-f]{64}$/);
    const me = await fetch(`${discord.apiUrl}/v10/applications/@me`, { headers: { authorization: `Bot ${discord.token}` } });
    expect(((await me.json()) as { verify_key: string }).verify_key).toBe(discord.publicKeyHex);
    const app = await startApp(discord.publicKeyHex);

    await discord.setInteractionsEndpoint(app.url);
    expect(discord.interactionsEndpointUrl).toBe(app.url);
    expect(app.received.map((r) => r.verified)).toEqual([true, false, false]);
    const ping = app.received[0]!;
    expect(JSON.parse(ping.body)).toMatchObject({ type: 1, application_id: discord.applicationId });
    expect(ping.headers['content-type']).toBe('application/json');
    expect(ping.headers['user-agent']).toBe(INTERACTIONS_USER_AGENT);
    expect(Math.abs(Number(ping.headers['x-signature-timestamp']) - Date.now() / 1000)).toBeLessThan(5);

    // The raw helper, for negative tests of an app.
    const payload = { id: '1', application_id: discord.applicationId, type: 1, token: 't', version: 1 };
    expect(await discord.postToInteractionsEndpoint(payload)).toEqual({ status: 200, body: '{"type":1}' });
    for (const opts of [{ signature: 'invalid' }, { signature: 'missing' }, { tamperBody: true }] as const) {
      expect((await discord.postToInteractionsEndpoint(payload, opts)).status).toBe(401);
    }
    // The signature covers the timestamp sent, whatever its value.
    expect((await discord.postToInteractionsEndpoint(payload, { timestamp: '1' })).status).toBe(200);
    expect(app.received.at(-1)?.headers['x-signature-timestamp']).toBe('1');

    await discord.setInteractionsEndpoint(undefined);
    await expect(discord.postToInteractionsEndpoint(payload)).rejects.toThrow(/no Interactions Endpoint URL/);
    expect((await discord.postToInteractionsEndpoint(payload, { url: app.url })).status).toBe(200);
    expect(discord.interactionsEndpointUrl).toBeUndefined();
  });

  it('does not save the URL of an app that accepts bad signatures or answers the PING wrongly', async () => {
    const discord = await start();
    const lax = await startApp(discord.publicKeyHex, { checkSignatures: false });
    await expect(discord.setInteractionsEndpoint(lax.url)).rejects.toThrow(/a PING with a signature of other bytes must be answered 401; it answered 200: \{"type":1\}/);
    expect(discord.interactionsEndpointUrl).toBeUndefined();

    const noPong = await startApp(discord.publicKeyHex, { pong: { json: { type: 4, data: { content: 'hi' } } } });
    await expect(discord.setInteractionsEndpoint(noPong.url)).rejects.toThrow(/signed PING must be answered 200 \{"type": 1\}; it answered 200: \{"type":4/);
    const failing = await startApp(discord.publicKeyHex, { pong: { status: 500, text: 'oops' } });
    await expect(discord.setInteractionsEndpoint(failing.url)).rejects.toThrow(/signed PING .* it answered 500: oops/);

    // A failed check keeps the URL saved before.
    const good = await startApp(discord.publicKeyHex);
    await discord.setInteractionsEndpoint(good.url);
    await expect(discord.setInteractionsEndpoint(lax.url)).rejects.toThrow(/401/);
    expect(discord.interactionsEndpointUrl).toBe(good.url);
  });

  it('delivers a slash command by HTTP and applies the answer as its first response', async () => {
    const discord = await start();
    const app = await startApp(discord.publicKeyHex);
    await discord.setInteractionsEndpoint(app.url);
    app.reply = { json: { type: 5 }, delayMs: 30 };

    const interaction = await discord.sendCommand(imagine);
    expect(interaction.ackedAt).toBeUndefined();
    await interaction.httpDelivery;
    expect(JSON.parse(app.received.at(-1)!.body)).toEqual(interaction.payload);
    expect(interaction).toMatchObject({ httpStatus: 200, callbackType: 5 });
    expect(interaction.httpFailure).toBeUndefined();
    expect(interaction.ackLatencyMs).toBeGreaterThanOrEqual(30);
    expect(discord.originalMessage(interaction)?.flags).toBe(128);

    // Then the same webhook routes as in gateway mode; a second first response is 40060.
    const api = `${discord.apiUrl}/v10`;
    const edit = await fetch(`${api}/webhooks/${discord.applicationId}/${interaction.token}/messages/@original`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ content: 'done' }),
    });
    expect(edit.status).toBe(200);
    expect(discord.originalMessage(interaction)).toMatchObject({ content: 'done', flags: 0 });
    const again = await fetch(`${api}/interactions/${interaction.id}/${interaction.token}/callback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 4, data: { content: 'again' } }),
    });
    expect(((await again.json()) as { code: number }).code).toBe(40060);
  });

  it('applies an update answer to a component click', async () => {
    const discord = await start();
    const app = await startApp(discord.publicKeyHex);
    await discord.setInteractionsEndpoint(app.url);
    const message = discord.seedBotMessage({ content: 'pick', components: [{ type: 1, components: [{ type: 2, style: 1, label: 'Go', custom_id: 'go' }] }] });
    app.reply = { json: { type: 7, data: { content: 'picked', components: [] } } };

    const click = await discord.clickComponent({ message, customId: 'go' });
    await click.httpDelivery;
    expect(click.callbackType).toBe(7);
    expect(discord.messages.get(message.id)).toMatchObject({ content: 'picked', components: [] });
  });

  it('does not acknowledge an answer after the deadline', async () => {
    const discord = await start();
    const app = await startApp(discord.publicKeyHex);
    await discord.setInteractionsEndpoint(app.url);
    app.reply = { json: { type: 5 }, delayMs: 400 };

    const interaction = await discord.sendCommand(imagine);
    await discord.waitFor(() => interaction.httpFailure, 2000, 'the delivery to fail');
    expect(interaction.httpFailure).toBe('no answer within 300 ms');
    expect(interaction.httpStatus).toBeUndefined();
    await app.idle();
    expect(interaction.ackedAt).toBeUndefined();
    expect(discord.originalMessage(interaction)).toBeUndefined();
  });

  it('does not acknowledge an answer that is not 200, not JSON or not a valid response', async () => {
    const discord = await start();
    const app = await startApp(discord.publicKeyHex);
    await discord.setInteractionsEndpoint(app.url);
    const cases: [Reply, number | undefined, RegExp][] = [
      [{ json: { type: 42 } }, 200, /^answer refused \(400\): \{"code":50035,"message":"Invalid Form Body","errors":\{"type":/],
      [{ json: { type: 6 } }, 200, /^answer refused \(400\): .*only valid for component interactions/],
      [{ status: 500, text: '{"error":"boom"}' }, 500, /^answered 500: \{"error":"boom"\}$/],
      [{ text: 'OK' }, 200, /^answer is not JSON: OK$/],
    ];
    for (const [reply, status, failure] of cases) {
      app.reply = reply;
      const interaction = await discord.sendCommand(imagine);
      await interaction.httpDelivery;
      expect(interaction.httpStatus).toBe(status);
      expect(interaction.httpFailure).toMatch(failure);
      expect(interaction.ackedAt).toBeUndefined();
    }
    await app.close();
    const unreachable = await discord.sendCommand(imagine);
    await unreachable.httpDelivery;
    expect(unreachable.httpFailure).toMatch(/^request failed: /);
    expect(discord.messages.size).toBe(0);
  });

  it('stops sending INTERACTION_CREATE on the gateway while a URL is set', async () => {
    const discord = await start();
    const client = new Client({ intents: [GatewayIntentBits.Guilds], rest: { api: discord.apiUrl } });
    const ready = new Promise<void>((resolve) => client.once('clientReady', () => resolve()));
    await client.login(discord.token);
    await ready;
    cleanups.push(() => client.destroy());
    const onGateway: string[] = [];
    client.on('interactionCreate', (i) => void onGateway.push(i.id));
    const app = await startApp(discord.publicKeyHex);

    await discord.setInteractionsEndpoint(app.url);
    const byHttp = await discord.sendCommand(imagine);
    await byHttp.httpDelivery;
    expect(byHttp.callbackType).toBe(5);

    await discord.setInteractionsEndpoint(undefined);
    const byGateway = await discord.sendCommand(imagine);
    expect(byGateway.httpDelivery).toBeUndefined();
    // The gateway keeps order: had the first one been sent there, it would have arrived first.
    await discord.waitFor(() => onGateway.length > 0, 2000, 'the gateway delivery');
    expect(onGateway).toEqual([byGateway.id]);
  });
});
