import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.ts';

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
});
