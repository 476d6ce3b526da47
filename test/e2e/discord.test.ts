/**
 * /imagine on Discord end to end: the real discord.js client and the real engine against the
 * fake Discord and the fake providers. What is asserted is what a Discord user sees (messages,
 * files, buttons) and what the providers receive.
 */
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi, type MockInstance } from 'vitest';
import { RecentResults } from '../../src/engine/recent-results.ts';
import { MiB } from '../fakes/discord/index.ts';
import { USERS, componentsOf, expectDiscordInvariants, startDiscordHarness, type DiscordHarness } from './discord-harness.ts';

let h: DiscordHarness;
/** Every hand-over of a result's kept bytes, in every RecentResults the bot builds (installed before it starts). */
let kept: MockInstance<RecentResults['take']>;
beforeAll(async () => {
  kept = vi.spyOn(RecentResults.prototype, 'take');
  h = await startDiscordHarness();
});
afterAll(async () => {
  await h?.close();
  kept.mockRestore();
});

const png = (w: number, h: number, color = '#cc3322') => sharp({ create: { width: w, height: h, channels: 3, background: color } }).png().toBuffer();

describe('/imagine on Discord', () => {
  it('attaches the bytes its download kept, not a read of the file', async () => {
    kept.mockClear();
    const m = await h.result(await h.imagine('a kept lantern'));
    expect(m.attachments).toHaveLength(1);
    const handedOver = kept.mock.results.map((r) => r.value as unknown).filter((v): v is Buffer => Buffer.isBuffer(v));
    expect(handedOver).toHaveLength(1);
    expect(handedOver[0]!.subarray(1, 4).toString('latin1')).toBe('PNG');
  });

  it('defers at once, shows progress in the placeholder, then posts the images with their buttons', async () => {
    const i = await h.imagine('a red fox in the snow', { values: { count: 2 } });
    const m = await h.result(i);
    expect(i.callbackType).toBe(5);
    expect(i.ackLatencyMs).toBeLessThan(3_000);
    // The placeholder showed the job's state and elapsed time before the result.
    const progress = m.history.slice(0, -1).map((s) => s.content);
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.some((c) => /Queued|Generating|Downloading|Finishing/.test(c) && /\d+:\d\d/.test(c))).toBe(true);
    // The result: two images, the summary, U, V, E per image, Rerun Remix Delete, and a ratio select per image.
    expect(m.attachments.map((a) => a.content_type)).toEqual(['image/png', 'image/png']);
    expect(m.attachments.every((a) => a.width === 1024 && a.height === 1024)).toBe(true);
    expect(m.content).toContain('"a red fox in the snow"');
    expect(m.content).toContain('Nano Banana Pro (Runbase)');
    expect(m.content).toContain(`<@${USERS.alice.id}>`);
    expect(m.mentions).toEqual([]);
    const labels = componentsOf(m).filter((c) => c.type === 2).map((c) => c.label);
    expect(labels).toEqual(['U1', 'U2', 'V1', 'V2', 'E1', 'E2', 'Rerun', 'Remix', 'Delete']);
    expect(componentsOf(m).filter((c) => c.type === 3)).toHaveLength(2);
    expect(m.flags & 64).toBe(0);
    expectDiscordInvariants(h.discord);
  });

  it('honours every option: model, ratio, resolution, count, creativity and four reference images', async () => {
    const attachments = Object.fromEntries(
      await Promise.all(['image', 'image2', 'image3', 'image4'].map(async (name, n) => [name, { filename: `ref${n + 1}.png`, data: await png(64 + n, 64), contentType: 'image/png' }] as const)),
    );
    const before = h.runblob!.tasks.size;
    const i = await h.imagine('a lighthouse at dusk', {
      user: USERS.bob,
      values: { model: 'runblob-pro', ratio: '16:9', resolution: '2K', count: 2, creativity: 0.3 },
      attachments,
    });
    const m = await h.result(i);
    const tasks = [...h.runblob!.tasks.values()].slice(before);
    expect(tasks).toHaveLength(2);
    for (const t of tasks) {
      expect([t.model, t.quality, t.aspectRatio, t.temperature, t.images.length]).toEqual(['pro', '2k', '16:9', 0.3, 4]);
    }
    expect(m.attachments).toHaveLength(2);
    expect(m.attachments[0]).toMatchObject({ width: 2752, height: 1536 });
    expect(m.content).toContain('Nano Banana Pro (RunBlob)');
    expect(m.content).toContain('16:9');
    expect(m.content).toContain('2K');
    expectDiscordInvariants(h.discord);
  });

  it('reads Midjourney-style flags in the prompt', async () => {
    const before = h.runbase!.runs.size;
    const i = await h.imagine('a cat on a sofa --ar 9:16 --res 2K --n 2 --model nb2');
    const m = await h.result(i);
    const runs = [...h.runbase!.runs.values()].slice(before);
    expect(runs.map((r) => [r.model, r.aspectRatio, r.resolution, r.prompt])).toEqual([
      ['google/nano-banana-2', '9:16', '2K', 'a cat on a sofa'],
      ['google/nano-banana-2', '9:16', '2K', 'a cat on a sofa'],
    ]);
    expect(m.attachments).toHaveLength(2);
    expect(m.content).toContain('Nano Banana 2 (Runbase)');
  });

  it('keeps a private request private from the first response to the result', async () => {
    const i = await h.imagine('a secret garden', { values: { private: true } });
    const m = await h.result(i);
    const callback = h.discord.requests.find((r) => r.path.startsWith(`/interactions/${i.id}/`));
    expect(callback?.body).toMatchObject({ type: 5, data: { flags: 64 } });
    expect(m.flags & 64).toBe(64);
    expect(m.attachments).toHaveLength(1);
    expectDiscordInvariants(h.discord);
  });

  it('works in a DM with the bot', async () => {
    const i = await h.imagine('a paper boat', { where: 'dm', user: USERS.bob });
    const m = await h.result(i);
    expect(m.guildId).toBeUndefined();
    expect(m.channelId).toBe(h.discord.dmChannels.get(USERS.bob.id));
    expect(m.attachments).toHaveLength(1);
    expect(componentsOf(m).map((c) => c.label)).toContain('Delete');
  });

  it('serves two users at once, each with their own result and quota', async () => {
    const [a, b] = await Promise.all([
      h.imagine('two users: a blue whale', { user: USERS.alice }),
      h.imagine('two users: a green frog', { user: USERS.bob, values: { count: 2 } }),
    ]);
    const [ma, mb] = await Promise.all([h.result(a!), h.result(b!)]);
    expect(ma.content).toContain('a blue whale');
    expect(ma.content).toContain(`<@${USERS.alice.id}>`);
    expect(ma.attachments).toHaveLength(1);
    expect(mb.content).toContain('a green frog');
    expect(mb.content).toContain(`<@${USERS.bob.id}>`);
    expect(mb.attachments).toHaveLength(2);
  });

  it('answers /quota privately with used, left and reset time', async () => {
    const i = await h.discord.sendCommand({ name: 'quota', user: USERS.alice });
    const m = await h.discord.waitFor(() => {
      const msg = h.discord.originalMessage(i);
      return msg && msg.history.length > 0 ? msg : undefined;
    }, 5_000, 'quota answer');
    expect(m.flags & 64).toBe(64);
    expect(m.content).toMatch(/You've used \d+ of 40 units today; \d+ left\. Resets <t:\d+:t>\./);
  });

  it('fits a 4K PNG larger than the upload limit and links the full-size original', async () => {
    const i = await h.imagine('a noisy 4K landscape [big]', { values: { resolution: '4K', model: 'runbase-2' }, user: USERS.mod });
    const m = await h.result(i, 30_000);
    const upload = h.discord.requests.filter((r) => r.path.includes(i.token) && r.files.length > 0).at(-1)!;
    const run = [...h.runbase!.runs.values()].find((r) => r.prompt.includes('noisy 4K landscape'))!;
    const original = await fetch(run.outputUrl).then((r) => r.arrayBuffer());
    expect(original.byteLength).toBeGreaterThan(10 * MiB);
    expect(upload.files[0]!.size).toBeLessThanOrEqual(10 * MiB);
    expect(m.attachments[0]).toMatchObject({ content_type: 'image/webp', width: 4096, height: 4096 });
    expect(m.attachments[0]!.size).toBeLessThanOrEqual(10 * MiB);
    expect(m.content).toContain('Full-size original');
    expect(m.content).toContain(run.outputUrl);
    expectDiscordInvariants(h.discord);
  }, 40_000);
});
