/**
 * Slack references without a public address: the bot has no PUBLIC_URL (as in Socket Mode), so
 * Runbase (links only) cannot receive files attached in Slack. With no model chosen, the job
 * uses a configured model that takes inline images (RunBlob) and says so; a chosen Runbase model
 * is refused with the fix, uncharged.
 */
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import type { FakeMessage } from '../fakes/slack/fake-slack.ts';
import { startSlackHarness, type SlackHarness } from './slack-harness.ts';

vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });
const kim = { id: 'UKIM', name: 'kim' };
let h: SlackHarness;

beforeAll(async () => {
  h = await startSlackHarness();
});
afterAll(async () => {
  await h?.close();
});

const blocksText = (m: FakeMessage) => JSON.stringify(m.blocks ?? []);

describe('Slack references without PUBLIC_URL', () => {
  test('no model chosen: the default (Runbase) is swapped for a RunBlob model that takes the file inline, and the result says so', async () => {
    expect(h.bot.engine.defaultModel.provider).toBe('runbase');
    const bird = await sharp({ create: { width: 24, height: 24, channels: 3, background: '#22aa44' } }).png().toBuffer();
    const file = h.fake.addUserFile({ name: 'bird.png', mimetype: 'image/png', bytes: bird, user: kim.id });
    const message = h.fake.seedMessage({ channel: 'CREFS', user: kim.id, text: `<@${h.fake.botUserId}> this bird as a paper cutout`, files: [file] });
    await h.driver.mention({ message });
    const result = await h.fake.waitFor(
      () => h.fake.messagesIn('CREFS', message.ts).find((m) => blocksText(m).includes('imagine:delete:')),
      15_000,
      'the result',
    );
    expect(blocksText(result)).toContain('only takes reference images by link and this bot has no public address, so this uses');
    const task = [...h.runblob.tasks.values()].find((t) => t.prompt === 'this bird as a paper cutout')!;
    expect(task.images.map((i) => Buffer.from(i.split(',')[1]!, 'base64'))).toEqual([bird]);
    expect([...h.runbase.runs.values()].filter((r) => r.prompt === 'this bird as a paper cutout')).toHaveLength(0);
  });

  test('a Runbase model chosen with a file: refused privately with the fix, nothing charged', async () => {
    const bird = await sharp({ create: { width: 24, height: 24, channels: 3, background: '#aa2244' } }).png().toBuffer();
    const file = h.fake.addUserFile({ name: 'red.png', mimetype: 'image/png', bytes: bird, user: kim.id });
    const before = (await h.bot.engine.quota({ platform: 'slack', userId: kim.id })).used;
    const message = h.fake.seedMessage({ channel: 'CREFS2', user: kim.id, text: `<@${h.fake.botUserId}> a red bird --model ${h.bot.engine.defaultModel.key}`, files: [file] });
    await h.driver.mention({ message });
    await h.fake.waitFor(() => h.fake.ephemerals.find((e) => e.user === kim.id && e.text.includes('PUBLIC_URL')), 10_000, 'the refusal with the fix');
    expect((await h.bot.engine.quota({ platform: 'slack', userId: kim.id })).used).toBe(before);
  });
});
