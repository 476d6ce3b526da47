/**
 * /history and /show on Slack: the requester's last jobs privately (when, prompt, model, job id,
 * link to the message), and a job's images uploaded again with working buttons, after a restart.
 */
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import type { FakeMessage } from '../fakes/slack/fake-slack.ts';
import { startSlackHarness, type SlackHarness } from './slack-harness.ts';

vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });
const alice = { id: 'UALICE', name: 'alice' };
const bob = { id: 'UBOB', name: 'bob' };
let h: SlackHarness;
let result: FakeMessage;
let jobId: string;

type Json = Record<string, unknown>;
const blocksText = (m: FakeMessage) => JSON.stringify(m.blocks ?? []);
const isResult = (m: FakeMessage) => blocksText(m).includes('imagine:delete:');
const actionIds = (m: FakeMessage): string[] =>
  (m.blocks as Json[]).flatMap((b) => (b.type === 'actions' ? (b.elements as Json[]).map((e) => String(e.action_id)) : []));

function results(channel: string, count: number, threadTs?: string): Promise<FakeMessage[]> {
  return h.fake.waitFor(() => {
    const found = h.fake.messagesIn(channel, threadTs).filter(isResult);
    return found.length >= count ? found : undefined;
  }, 15_000, `${count} result(s) in ${channel}`);
}
const ephemeralFor = (user: string, includes: string) =>
  h.fake.waitFor(() => h.fake.ephemerals.find((e) => e.user === user && e.text.includes(includes)), 10_000, `ephemeral "${includes}"`);

beforeAll(async () => {
  h = await startSlackHarness();
  await h.driver.slashCommand({ user: alice, channel: 'CHIST', text: 'a blue heron at dawn' });
  [result] = (await results('CHIST', 1)) as [FakeMessage];
  jobId = actionIds(result).find((a) => a.startsWith('imagine:delete:'))!.split(':')[2]!;
});
afterAll(async () => {
  await h?.close();
});

describe('Slack /history and /show', () => {
  test('the result summary shows the job id; /history lists it privately with a link to the message', async () => {
    expect(blocksText(result)).toContain(`job ${jobId}`);
    const r = await h.driver.slashCommand({ user: alice, channel: 'CHIST', text: '', command: '/history' });
    expect(r.status).toBe(200);
    const e = await ephemeralFor(alice.id, 'newest first');
    expect(e.text).toContain('a blue heron at dawn');
    expect(e.text).toContain(`job *${jobId}*`);
    expect(e.text).toContain(`<https://slack.com/archives/CHIST/p${result.ts.replace('.', '')}|message>`);
    await h.driver.slashCommand({ user: bob, channel: 'CHIST', text: '', command: '/history' });
    await ephemeralFor(bob.id, 'You have no images yet');
  });

  test('/show after a restart uploads the images again with a working Rerun, for anyone (the job was public)', async () => {
    await h.restart();
    const uploadsBefore = h.fake.callsTo('files.completeUploadExternal').length;
    await h.driver.slashCommand({ user: bob, channel: 'CSHOW', text: jobId, command: '/show' });
    const [shown] = (await results('CSHOW', 1)) as [FakeMessage];
    expect(blocksText(shown)).toContain('a blue heron at dawn');
    const uploads = h.fake.callsTo('files.completeUploadExternal').slice(uploadsBefore);
    expect(uploads.map((c) => c.args.channel_id)).toEqual(['CSHOW']);

    const runsBefore = h.runbase.runs.size;
    await h.driver.clickButton({ user: bob, message: shown, actionId: `imagine:rerun:${jobId}` });
    await results('CSHOW', 2);
    expect([...h.runbase.runs.values()].slice(runsBefore).map((r) => r.prompt)).toEqual(['a blue heron at dawn']);
  });

  test('/show of an unknown id is answered privately', async () => {
    await h.driver.slashCommand({ user: bob, channel: 'CSHOW', text: 'NoSuchJob123', command: '/show' });
    await ephemeralFor(bob.id, 'There is no job "NoSuchJob123" of yours');
  });
});
