import { describe, expect, test } from 'vitest';
import { decodeAction } from '../../../../commands/custom-id.ts';
import { failedMessage, placeholderMessage, queuedEvent, resultMessage } from '../../../../src/platforms/slack/blocks.ts';
import { validateBlocks } from '../../../fakes/slack/block-kit.ts';
import { ALL_MODELS, makeJob } from './fixtures.ts';

type Json = Record<string, unknown>;
const elements = (blocks: unknown[]) => (blocks as Json[]).flatMap((b) => (b.type === 'actions' ? (b.elements as Json[]) : []));

describe('result message', () => {
  test('two images: summary, Upscale 4K per image, Rerun, Delete, Change ratio per image, all within Block Kit limits', () => {
    const job = makeJob();
    const msg = resultMessage(job, ALL_MODELS);
    expect(validateBlocks(msg.blocks, 'message')).toEqual([]);
    const section = (msg.blocks[0] as { text: { text: string } }).text.text;
    expect(section).toContain('a red fox in the snow');
    expect(section).toContain('Nano Banana Pro (Runbase)');
    expect(section).toContain('16:9');
    expect(section).toContain('2752×1536 (2K)');
    expect(section).toContain('0:42');
    expect(section).toContain('<@UALICE>');
    const els = elements(msg.blocks);
    const decoded = els.map((e) => decodeAction(String(e.action_id)));
    expect(decoded).toEqual([
      { action: 'upscale', jobId: job.id, index: 0 },
      { action: 'upscale', jobId: job.id, index: 1 },
      { action: 'vary', jobId: job.id, index: 0 },
      { action: 'vary', jobId: job.id, index: 1 },
      { action: 'edit', jobId: job.id, index: 0 },
      { action: 'edit', jobId: job.id, index: 1 },
      { action: 'rerun', jobId: job.id },
      { action: 'remix', jobId: job.id },
      { action: 'delete', jobId: job.id },
      { action: 'ratio', jobId: job.id, index: 0 },
      { action: 'ratio', jobId: job.id, index: 1 },
    ]);
    expect(els.slice(0, 6).map((e) => (e.text as Json).text)).toEqual([
      '⬆️ Upscale 4K · image 1',
      '⬆️ Upscale 4K · image 2',
      '🔀 Vary · image 1',
      '🔀 Vary · image 2',
      '✏️ Edit · image 1',
      '✏️ Edit · image 2',
    ]);
    // Buttons carry the durable id as their value too.
    expect(els[6]!.value).toBe(els[6]!.action_id);
    expect((els[8] as Json).style).toBe('danger');
    expect(msg.text).toContain('a red fox in the snow');
  });

  test('one image is labelled plainly; a 4K job offers no upscale', () => {
    const one = resultMessage(makeJob({ request: { count: 1 } }), ALL_MODELS);
    expect(elements(one.blocks).map((e) => (e.type === 'button' ? (e.text as Json).text : e.type))).toEqual([
      '⬆️ Upscale 4K',
      '🔀 Vary',
      '✏️ Edit',
      '🔄 Rerun',
      '📝 Remix',
      '🗑️ Delete',
      'static_select',
    ]);
    const fourK = resultMessage(makeJob({ request: { count: 1, resolution: '4K' } }), ALL_MODELS);
    expect(elements(fourK.blocks).some((e) => String(e.action_id).startsWith('imagine:upscale'))).toBe(false);
  });

  test('user text cannot inject mentions or links, and a huge prompt stays within the section limit', () => {
    const msg = resultMessage(makeJob({ request: { prompt: `<!channel> <@U999> & ${'x'.repeat(5000)}` } }), ALL_MODELS);
    expect(validateBlocks(msg.blocks, 'message')).toEqual([]);
    const section = (msg.blocks[0] as { text: { text: string } }).text.text;
    expect(section).toContain('&lt;!channel&gt; &lt;@U999&gt; &amp;');
    expect(section).not.toContain('<!channel>');
    expect(section.length).toBeLessThanOrEqual(3000);
  });
});

describe('placeholder and failure', () => {
  test('the placeholder shows the state, elapsed time and settings', () => {
    const job = makeJob({ state: 'running' });
    const msg = placeholderMessage(job, { jobId: job.id, state: 'running', phase: 'generating', elapsedMs: 65_000, done: 1, total: 2, changed: false });
    expect(validateBlocks(msg.blocks, 'message')).toEqual([]);
    expect(msg.text).toContain('Generating 2 images… (1 of 2 done) · 1:05');
    expect(JSON.stringify(msg.blocks)).toContain('Requested by <@UALICE>');
    expect(queuedEvent(job, job.createdAt + 1500)).toMatchObject({ phase: 'queued', elapsedMs: 1500, total: 2, changed: true });
  });

  test('a failed job says what happened and offers Try again and Delete', () => {
    const sentence = 'The image service refused this prompt or image under its content policy. Rephrase the prompt or use other reference images; your quota was refunded.';
    const job = makeJob({
      state: 'failed',
      tasks: [{ index: 0, status: 'failed', error: { code: 'MODERATION_FAILED', userMessage: sentence } }],
      request: { count: 1 },
      error: { code: 'MODERATION_FAILED', userMessage: sentence },
    });
    const msg = failedMessage(job, ALL_MODELS);
    expect(validateBlocks(msg.blocks, 'message')).toEqual([]);
    expect(msg.text).toContain(sentence);
    expect(elements(msg.blocks).map((e) => (e.text as Json).text)).toEqual(['🔄 Try again', '📝 Remix', '🗑️ Delete']);
  });
});
