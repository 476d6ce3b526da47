import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Client, type Interaction, type REST } from 'discord.js';
import { createLogger } from '../../../../src/log.ts';
import { AckFirst } from '../../../../src/platforms/ack-first.ts';
import { startHttpServer } from '../../../../src/platforms/http/server.ts';
import { DISCORD_INTERACTIONS_PATH, HttpAnswers, discordPublicKey, mountInteractionsEndpoint, verifyDiscordSignature } from '../../../../src/platforms/discord/http-interactions.ts';

const pair = generateKeyPairSync('ed25519');
/** The portal shows the raw 32-byte key in hex: the SPKI DER's last 32 bytes. */
const publicHex = pair.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('hex');
const signed = (timestamp: string, body: string) => sign(null, Buffer.from(timestamp + body), pair.privateKey).toString('hex');

describe('Discord request signatures', () => {
  const key = discordPublicKey(publicHex);
  const body = '{"type":1,"id":"1"}';
  const ts = '1764000000';

  it('accepts the application key’s signature of timestamp + body', () => {
    expect(verifyDiscordSignature(key, signed(ts, body), ts, Buffer.from(body))).toBe(true);
    expect(verifyDiscordSignature(discordPublicKey(publicHex.toUpperCase()), signed(ts, body), ts, Buffer.from(body))).toBe(true);
  });

  it('refuses a changed body, a changed timestamp, another key, missing or malformed headers', () => {
    const sig = signed(ts, body);
    expect(verifyDiscordSignature(key, sig, ts, Buffer.from(body.replace('1', '2')))).toBe(false);
    expect(verifyDiscordSignature(key, sig, '1764000001', Buffer.from(body))).toBe(false);
    const other = generateKeyPairSync('ed25519');
    expect(verifyDiscordSignature(key, sign(null, Buffer.from(ts + body), other.privateKey).toString('hex'), ts, Buffer.from(body))).toBe(false);
    expect(verifyDiscordSignature(key, undefined, ts, Buffer.from(body))).toBe(false);
    expect(verifyDiscordSignature(key, sig, undefined, Buffer.from(body))).toBe(false);
    expect(verifyDiscordSignature(key, 'zz' + sig.slice(2), ts, Buffer.from(body))).toBe(false);
    expect(verifyDiscordSignature(key, sig.slice(2), ts, Buffer.from(body))).toBe(false);
  });

  it('explains a public key that is not 64 hex characters', () => {
    expect(() => discordPublicKey(publicHex.slice(1))).toThrow(/64 hexadecimal characters/);
    expect(() => discordPublicKey('g'.repeat(64))).toThrow(/Public Key/);
  });
});

describe('HttpAnswers', () => {
  function restStub() {
    const sent: { route: string; options: unknown }[] = [];
    const rest = { post: async (route: string, options: unknown) => (sent.push({ route, options }), { sent: true }) };
    return { rest: rest as unknown as REST, sent };
  }

  it('answers a waiting interaction’s callback over HTTP, once; everything else goes to Discord', async () => {
    const { rest, sent } = restStub();
    const answers = new HttpAnswers(rest);
    const bodies: unknown[] = [];
    answers.wait('42', async (body) => void bodies.push(body));

    await expect(rest.post('/interactions/42/tok/callback', { body: { type: 5 }, auth: false })).resolves.toBeUndefined();
    expect(bodies).toEqual([{ type: 5 }]);
    expect(sent).toEqual([]);

    // A second first response is Discord's to refuse (40060), as in gateway mode.
    await rest.post('/interactions/42/tok/callback', { body: { type: 4 } });
    await rest.post('/webhooks/1/tok', { body: { content: 'x' } });
    await rest.post('/interactions/43/tok/callback', { body: { type: 5 } });
    expect(sent.map((s) => s.route)).toEqual(['/interactions/42/tok/callback', '/webhooks/1/tok', '/interactions/43/tok/callback']);
    expect(bodies).toHaveLength(1);
  });

  it('stops waiting when told to, and a failed answer fails the callback like an unknown interaction', async () => {
    const { rest, sent } = restStub();
    const answers = new HttpAnswers(rest);
    const stop = answers.wait('7', async () => undefined);
    stop();
    await rest.post('/interactions/7/tok/callback', { body: { type: 5 } });
    expect(sent).toHaveLength(1);

    answers.wait('8', async () => {
      throw new Error('Unknown interaction: its HTTP request is already closed');
    });
    await expect(rest.post('/interactions/8/tok/callback', { body: { type: 5 } })).rejects.toThrow(/Unknown interaction/);
  });

  it('sends a first response with files to Discord, never over HTTP: discord.js\'s files and a multipart body of the bot\'s', async () => {
    const { rest, sent } = restStub();
    const answers = new HttpAnswers(rest);
    const bodies: unknown[] = [];
    answers.wait('9', async (body) => void bodies.push(body));
    answers.wait('10', async (body) => void bodies.push(body));

    await rest.post('/interactions/9/tok/callback', { body: { type: 4 }, files: [{ name: 'a.png', data: Buffer.alloc(1) }] });
    await rest.post('/interactions/10/tok/callback', { body: [Buffer.from('--b\r\n')], passThroughBody: true });

    expect(sent.map((s) => s.route)).toEqual(['/interactions/9/tok/callback', '/interactions/10/tok/callback']);
    expect(bodies).toEqual([]);
  });
});

describe('the interactions endpoint', () => {
  it('answers 400 to a signed body that is JSON but not an object (null, a number, a string, an array)', async () => {
    const log = createLogger({ level: 'silent', pretty: false, destination: { write: () => undefined } });
    const http = await startHttpServer(0, log, '127.0.0.1');
    const client = new Client({ intents: [] });
    const handled: Interaction[] = [];
    mountInteractionsEndpoint({
      http,
      client,
      publicKey: discordPublicKey(publicHex),
      answers: new HttpAnswers(client.rest),
      ackFirst: new AckFirst(),
      log,
      handle: async (i) => void handled.push(i),
    });
    const post = async (body: string) => {
      const ts = String(Math.floor(Date.now() / 1000));
      const res = await fetch(`${http.localUrl}${DISCORD_INTERACTIONS_PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-signature-ed25519': signed(ts, body), 'x-signature-timestamp': ts },
        body,
      });
      return res.status;
    };
    try {
      expect(await post('{"type":1}')).toBe(200);
      for (const body of ['null', '3', '"interaction"', '[]', '[{"type":2,"id":"1"}]']) expect(await post(body), body).toBe(400);
      expect(handled).toEqual([]);
    } finally {
      await http.close();
      await client.destroy();
    }
  });
});
