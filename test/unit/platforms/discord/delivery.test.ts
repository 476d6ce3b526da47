/**
 * DiscordDelivery's result uploads over the real @discordjs/rest client against the fake Discord:
 * a wave of finished jobs is uploaded a few at a time (RESULT_UPLOADS_AT_ONCE), not all at once;
 * and what it keeps for a job's edits is dropped once the job is delivered or given up.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { REST } from 'discord.js';
import { captureLogger } from '../../../integration/engine-harness.ts';
import { RESULT_UPLOADS_AT_ONCE, DiscordDelivery } from '../../../../src/platforms/discord/delivery.ts';
import { DiscordMessages } from '../../../../src/platforms/discord/messages.ts';
import { discordRestOptions } from '../../../../src/platforms/discord/rest-request.ts';
import type { RecordedRequest } from '../../../fakes/discord/server.ts';
import { deferred, locationOf } from './fixtures.ts';
import { makeJob, okTask } from '../../commands/job-fixture.ts';
import type { ProgressEvent } from '../../../../src/engine/job.ts';

/** Every answer of the fake takes this long: uploads that may overlap do. */
const LATENCY_MS = 150;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'discord-delivery-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The most requests among `requests` that the fake was answering at one moment. */
function mostAtOnce(requests: readonly RecordedRequest[]): number {
  const edges = requests.flatMap((r) => [
    { t: r.at, d: 1 },
    { t: r.answeredAt, d: -1 },
  ]);
  // An answer at the same millisecond as an arrival ends first.
  edges.sort((a, b) => a.t - b.t || a.d - b.d);
  let now = 0;
  let most = 0;
  for (const e of edges) most = Math.max(most, (now += e.d));
  return most;
}

describe('DiscordDelivery result uploads', () => {
  it(`uploads at most ${RESULT_UPLOADS_AT_ONCE} results at once, and delivers every one`, async () => {
    const jobs = RESULT_UPLOADS_AT_ONCE * 2 + 3;
    const { discord, interactions } = await deferred(jobs, { latencyMs: LATENCY_MS });
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#c04020' } }).png().toBuffer();
    const records = await Promise.all(
      interactions.map(async (interaction, n) => {
        const path = join(dir, `${n}.png`);
        await writeFile(path, png);
        const task = okTask(0, 8, 8);
        task.image = { ...task.image!, path, bytes: png.length };
        return { interaction, job: makeJob({ id: `job_${n}`, tasks: [task], request: { count: 1, location: locationOf(discord, interaction) } }) };
      }),
    );

    const { log } = captureLogger();
    // As the bot builds it (index.ts): its requests on the bot's undici (rest-request.ts).
    const rest = new REST(discordRestOptions(discord.apiUrl)).setToken(discord.token);
    const messages = new DiscordMessages(rest);
    const delivery = new DiscordDelivery({ engine: { models: [], updateLocation: async () => {} }, log, messages });
    try {
      await Promise.all(records.map((r) => delivery.deliver(r.job)));
    } finally {
      for (const r of [rest, messages.interactionRest]) {
        r.clearHashSweeper();
        r.clearHandlerSweeper();
      }
    }

    for (const r of records) expect(discord.originalMessage(r.interaction)?.attachments).toHaveLength(1);
    const uploads = discord.requests.filter((r) => r.files.length > 0);
    expect(uploads).toHaveLength(jobs);
    // All were ready at once: the slots filled, and no more than that went out together.
    expect(mostAtOnce(uploads)).toBe(RESULT_UPLOADS_AT_ONCE);
  });
});

describe('DiscordDelivery per-job state', () => {
  it('keeps nothing for a job once it is delivered, or once its delivery is given up', async () => {
    const { discord, interactions } = await deferred(3);
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#2040c0' } }).png().toBuffer();
    const path = join(dir, 'kept.png');
    await writeFile(path, png);
    const task = okTask(0, 8, 8);
    task.image = { ...task.image!, path, bytes: png.length };
    const [delivered, givenUp, elsewhere] = interactions.map((interaction, n) =>
      makeJob({ id: `kept_${n}`, state: 'running', tasks: [task], request: { count: 1, location: locationOf(discord, interaction) } }),
    );
    const { log } = captureLogger();
    const rest = new REST(discordRestOptions(discord.apiUrl)).setToken(discord.token);
    const messages = new DiscordMessages(rest);
    const delivery = new DiscordDelivery({ engine: { models: [], updateLocation: async () => {} }, log, messages });
    const generating = (jobId: string): ProgressEvent => ({ jobId, state: 'running', phase: 'generating', elapsedMs: 1_000, done: 0, total: 1, changed: true });
    try {
      // A progress edit stores the placeholder's id: the deliverer keeps that job until it is done with it.
      for (const job of [delivered!, givenUp!, elsewhere!]) delivery.progress(job, generating(job.id));
      await vi.waitFor(() => expect(delivery.jobsKept).toBe(3), { timeout: 5_000 });
      await delivery.deliver({ ...delivered!, state: 'succeeded' });
      expect(delivery.jobsKept).toBe(2);
      await delivery.undeliverable({ ...givenUp!, state: 'succeeded' }, new Error('refused'));
      expect(delivery.jobsKept).toBe(1);
      // Its run here ended without delivering it (another process took it).
      delivery.forget(elsewhere!.id);
      expect(delivery.jobsKept).toBe(0);
    } finally {
      for (const r of [rest, messages.interactionRest]) {
        r.clearHashSweeper();
        r.clearHandlerSweeper();
      }
    }
    expect(discord.originalMessage(interactions[0]!)?.attachments).toHaveLength(1);
  });

  it('keeps nothing from a progress edit that ends after the job was forgotten', async () => {
    const { discord, interactions } = await deferred(1, { latencyMs: 100 });
    const job = makeJob({ id: 'late_edit', state: 'running', request: { count: 1, location: locationOf(discord, interactions[0]!) } });
    const { log } = captureLogger();
    const rest = new REST({ api: discord.apiUrl }).setToken(discord.token);
    const messages = new DiscordMessages(rest);
    const delivery = new DiscordDelivery({ engine: { models: [], updateLocation: async () => {} }, log, messages });
    try {
      delivery.progress(job, { jobId: job.id, state: 'running', phase: 'generating', elapsedMs: 1_000, done: 0, total: 1, changed: true });
      expect(delivery.throttle.busy(job.id)).toBe(true);
      // Another process took the job while the edit was on its way.
      delivery.forget(job.id);
      await vi.waitFor(() => expect(delivery.throttle.busy(job.id)).toBe(false), { timeout: 5_000 });
      // The edit went out and learned the placeholder's id, for a run that had ended.
      expect(discord.requests.filter((r) => r.method === 'PATCH')).toHaveLength(1);
      expect(delivery.jobsKept).toBe(0);
    } finally {
      for (const r of [rest, messages.interactionRest]) {
        r.clearHashSweeper();
        r.clearHandlerSweeper();
      }
    }
  });

  it('keeps a private notice no longer than its token lives, also for a job that ended first', async () => {
    const { discord, interactions } = await deferred(1);
    const { log } = captureLogger();
    const rest = new REST({ api: discord.apiUrl }).setToken(discord.token);
    const messages = new DiscordMessages(rest);
    const delivery = new DiscordDelivery({ engine: { models: [], updateLocation: async () => {} }, log, messages });
    try {
      const loc = { ...locationOf(discord, interactions[0]!), tokenExpiresAt: Date.now() + 200 };
      delivery.forget('ended_first');
      delivery.tellAfterPlaceholder('ended_first', loc, 'Your settings could not be read.');
      // While the token works, the placeholder may still be shown (by another run of the job here).
      expect(delivery.jobsKept).toBe(1);
      await vi.waitFor(() => expect(delivery.jobsKept).toBe(0), { timeout: 5_000 });
      expect(discord.requests.filter((r) => r.method === 'POST' && r.path.startsWith('/webhooks/'))).toEqual([]);
    } finally {
      for (const r of [rest, messages.interactionRest]) {
        r.clearHashSweeper();
        r.clearHandlerSweeper();
      }
    }
  });
});
