import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DiscordAPIError } from 'discord.js';
import { createLogger, redactSecretFields } from '../../src/log.ts';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { lines, destination: { write: (s: string) => destination.write(s) } };
}

describe('createLogger', () => {
  const discordToken = 'MTA5.discord-bot-token.secret-part';
  const runbaseKey = 'sk-live-0123456789abcdef';

  it('writes JSON lines with the message and object fields', () => {
    const { lines, destination } = capture();
    const log = createLogger({ destination, level: 'info' });
    log.info({ jobId: 'j1', provider: 'runbase' }, 'submitted');
    const entry = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
    expect(entry).toMatchObject({ msg: 'submitted', jobId: 'j1', provider: 'runbase', level: 30 });
  });

  it('never writes a configured secret, wherever it appears', () => {
    const { lines, destination } = capture();
    const log = createLogger({ destination, secrets: [discordToken, runbaseKey] });
    log.info({ token: discordToken }, 'login');
    log.info({ headers: { authorization: `Bearer ${runbaseKey}` } }, 'request');
    log.warn({ url: `https://x/webhooks/1/${discordToken}/messages` }, 'webhook failed');
    log.error(new Error(`auth failed for ${runbaseKey}`), 'boom');
    log.info({ location: { interactionToken: 'aW50ZXJhY3Rpb24tdG9rZW4' } }, 'job');
    const all = lines.join('');
    expect(lines).toHaveLength(5);
    expect(all).not.toContain(discordToken);
    expect(all).not.toContain(runbaseKey);
    expect(all).not.toContain('aW50ZXJhY3Rpb24tdG9rZW4');
    expect(all).toContain('[Redacted]');
  });

  it('never writes a Discord webhook or interaction token found in a URL, even one it was not told about', () => {
    const { lines, destination } = capture();
    const log = createLogger({ destination, secrets: [discordToken] });
    const app = '1180000000000000001';
    const token = 'aW50ZXJhY3Rpb246MTE4MDox.Z3Vlc3MtbWUtbm90_-';
    const original = `https://discord.com/api/v10/webhooks/${app}/${token}/messages/@original`;
    const callback = `https://discord.com/api/v10/interactions/1180000000000000002/${token}/callback`;
    const err = new DiscordAPIError({ code: 10015, message: 'Unknown Webhook' }, 10015, 404, 'PATCH', original, { body: { content: `see /webhooks/${app}/${token}` } });
    log.error({ err }, 'discord edit failed');
    log.warn({ err: new Error(`POST ${callback} failed`) }, `callback ${callback} refused`);
    log.info({ followUp: `/webhooks/${app}/${token}`, query: `/webhooks/${app}/${token}?wait=true` }, 'sent');
    const all = lines.join('');
    expect(lines).toHaveLength(3);
    expect(all).not.toContain(token);
    expect(all).not.toContain(token.slice(0, 12));
    // Only the token goes: the rest of the route still says what failed.
    expect(all).toContain(`/webhooks/${app}/[Redacted]/messages/@original`);
    expect(all).toContain('/interactions/1180000000000000002/[Redacted]/callback');
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({ err: { url: `https://discord.com/api/v10/webhooks/${app}/[Redacted]/messages/@original`, code: 10015 } });
  });

  it('redacts URL tokens without any configured secret as well', () => {
    const { lines, destination } = capture();
    const log = createLogger({ destination });
    log.warn({ url: 'https://discord.com/api/v10/webhooks/42/some-interaction-token/messages/@original' }, 'edit failed');
    expect(lines.join('')).not.toContain('some-interaction-token');
  });

  it('redacts secret fields by name at any depth, whatever their value, in child bindings too, and nothing else', () => {
    const { lines, destination } = capture();
    const log = createLogger({ destination }).child({ token: 'child-binding-token' });
    log.error({ err: { config: { headers: { Authorization: 'Bearer deep-header-value' } } } }, 'request failed');
    log.info({ reply: { location: { interactionToken: { nested: 'structured-token-value' } } }, apiKey: 123456789 }, 'structured');
    log.info({ tokens: 3, tokenCount: 2, pageToken: 'next-page', note: 'a "token":"quoted" in text' }, 'look-alikes');
    const [deep, structured, lookAlikes] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.join('')).not.toMatch(/child-binding-token|deep-header-value|structured-token-value|123456789/);
    expect(deep).toMatchObject({ token: '[Redacted]', err: { config: { headers: { Authorization: '[Redacted]' } } }, msg: 'request failed' });
    expect(structured).toMatchObject({ token: '[Redacted]', apiKey: '[Redacted]', reply: { location: { interactionToken: '[Redacted]' } } });
    expect(lookAlikes).toMatchObject({ tokens: 3, tokenCount: 2, pageToken: 'next-page', note: 'a "token":"quoted" in text' });
  });

  it('redacts string and scalar values in place, whatever characters they hold, and leaves valid JSON', () => {
    const { lines, destination } = capture();
    const log = createLogger({ destination });
    log.info({ token: 'a"quoted\\back},slash]tail', next: 1 }, 'string');
    log.info({ apiKey: 1e21, secret: true, authorization: -1.5e-7, kept: 'visible' }, 'scalars');
    expect(lines).toHaveLength(2);
    const [str, scalars] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.join('')).not.toMatch(/quoted|tail|1e\+21|true|1\.5e-7/);
    expect(str).toMatchObject({ token: '[Redacted]', next: 1, msg: 'string' });
    expect(scalars).toMatchObject({ apiKey: '[Redacted]', secret: '[Redacted]', authorization: '[Redacted]', kept: 'visible' });
  });

  it('replaces an object or array value as a whole and leaves the rest of the line byte for byte', () => {
    const rest = '"jobId":"outer","jobId":"dup","big":12345678901234567890,"after":"x"}\n';
    expect(redactSecretFields(`{"secret":[1,[2,{"a":"]}\\"{"}]],${rest}`)).toBe(`{"secret":"[Redacted]",${rest}`);
    expect(redactSecretFields('{"a":1}\n')).toBe('{"a":1}\n');
  });

  it('drops a line whose secret value has no end rather than write any of it', () => {
    const line = redactSecretFields('{"msg":"m","secret":{"a":"leak-1","b":["leak-2"\n');
    expect(line).not.toMatch(/leak/);
    expect(JSON.parse(line)).toMatchObject({ level: 50 });
  });
});
