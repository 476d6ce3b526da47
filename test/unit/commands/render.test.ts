import { describe, expect, it } from 'vitest';
import {
  failureText,
  formatElapsed,
  progressText,
  quotaText,
  summaryText,
  truncatePrompt,
  type TextFormat,
} from '../../../commands/render.ts';
import type { QuotaView } from '../../../src/engine/api.ts';
import type { JobRecord, ProgressEvent } from '../../../src/engine/job.ts';
import { failedTask, makeJob, okTask } from './job-fixture.ts';

/** A Discord-like formatter, to check that markup comes from the platform and user text is escaped. */
const MARKDOWN: TextFormat = {
  bold: (t) => `**${t}**`,
  mention: (r) => `<@${r.userId}>`,
  time: (ms) => `<t:${Math.floor(ms / 1000)}:t>`,
  escape: (t) => t.replace(/[*_~`|\\]/g, '\\$&'),
};

function event(job: JobRecord, patch: Partial<ProgressEvent>): ProgressEvent {
  return { jobId: job.id, state: 'running', phase: 'generating', elapsedMs: 42_000, done: 0, total: job.request.count, changed: true, ...patch };
}

const REFUSED = 'The image service refused this prompt as unsafe. Rephrase it and try again.';

describe('progressText', () => {
  const job = makeJob();

  it('shows the state, the elapsed time and the settings', () => {
    expect(progressText(job, event(job, { state: 'queued', phase: 'queued', elapsedMs: 3_000 }))).toBe(
      'Queued · 0:03\n"a lighthouse at dusk, oil painting" · Nano Banana Pro (Runbase) · 16:9 · 1K',
    );
    expect(progressText(job, event(job, { elapsedMs: 42_400 })).split('\n')[0]).toBe('Generating 2 images… · 0:42');
    expect(progressText(job, event(job, { done: 1 })).split('\n')[0]).toBe('Generating 2 images… (1 of 2 done) · 0:42');
    expect(progressText(job, event(job, { phase: 'downloading', elapsedMs: 75_000 })).split('\n')[0]).toBe('Downloading… · 1:15');
    const one = makeJob({ request: { count: 1 } });
    expect(progressText(one, event(one, {})).split('\n')[0]).toBe('Generating your image… · 0:42');
  });

  it('names what a button job is doing', () => {
    const upscale = makeJob({ request: { count: 1, resolution: '4K', parent: { jobId: 'p1', action: 'upscale', imageIndex: 1 } } });
    expect(progressText(upscale, event(upscale, {})).split('\n')[0]).toBe('Upscaling image 2 to 4K… · 0:42');
    const ratio = makeJob({ request: { count: 1, ratio: '9:16', parent: { jobId: 'p1', action: 'ratio', imageIndex: 0 } } });
    expect(progressText(ratio, event(ratio, {})).split('\n')[0]).toBe('Remaking image 1 at 9:16… · 0:42');
  });

  it('takes markup from the platform and escapes the prompt', () => {
    const starry = makeJob({ request: { prompt: 'a *starry* night' } });
    expect(progressText(starry, event(starry, {}), MARKDOWN)).toBe(
      '**Generating 2 images…** · 0:42\n"a \\*starry\\* night" · Nano Banana Pro (Runbase) · 16:9 · 1K',
    );
  });
});

describe('summaryText', () => {
  it('gives prompt, model, ratio, size and resolution, time taken and the requester', () => {
    expect(summaryText(makeJob(), MARKDOWN)).toBe(
      '"a lighthouse at dusk, oil painting"\nNano Banana Pro (Runbase) · 16:9 · 1376×768 (1K) · 0:42 · by <@111> · job job_01JDZ8Q3K9V2M4N6P8R0T2W4Y6',
    );
    expect(summaryText(makeJob(), MARKDOWN, 'ada (requester)')).toContain('by ada (requester) · job ');
  });

  it('says what a button job did and shows its note', () => {
    const job = makeJob({
      request: {
        model: 'runblob-pro',
        resolution: '4K',
        count: 1,
        parent: { jobId: 'p1', action: 'upscale', imageIndex: 1 },
        note: "Nano Banana (RunBlob) can't make 4K images, so this upscale uses Nano Banana Pro (RunBlob).",
      },
      tasks: [okTask(0, 5504, 3072)],
      finishedAt: makeJob().createdAt + 125_000,
    });
    expect(summaryText(job)).toBe(
      [
        'Upscaled image 2 to 4K: "a lighthouse at dusk, oil painting"',
        'Nano Banana Pro (RunBlob) · 16:9 · 5504×3072 (4K) · 2:05 · by ada · job job_01JDZ8Q3K9V2M4N6P8R0T2W4Y6',
        "Nano Banana (RunBlob) can't make 4K images, so this upscale uses Nano Banana Pro (RunBlob).",
      ].join('\n'),
    );
  });

  it('explains images that failed and the refund', () => {
    const one = makeJob({ tasks: [okTask(0), failedTask(1)], quota: { ...makeJob().quota, refunded: 1 } });
    expect(summaryText(one).split('\n')[2]).toBe(
      '1 of 2 images failed: The image service refused this prompt as unsafe. Rephrase it and try again; its units were refunded.',
    );
    const two = makeJob({
      request: { count: 3 },
      tasks: [okTask(0), failedTask(1), failedTask(2)],
      quota: { ...makeJob().quota, reserved: 3, refunded: 2 },
    });
    expect(summaryText(two).split('\n')[2]).toMatch(/^2 of 3 images failed: .*; their units were refunded\.$/);
  });

  it('shortens a long prompt at a word boundary', () => {
    const long = 'word '.repeat(200);
    const shown = truncatePrompt(long);
    expect(shown.length).toBeLessThanOrEqual(300);
    expect(shown.endsWith('word…')).toBe(true);
    expect(summaryText(makeJob({ request: { prompt: long } })).split('\n')[0]).toBe(`"${shown}"`);
  });
});

describe('failureText', () => {
  it('says what happened, what to do, and that nothing was charged', () => {
    const job = makeJob({
      state: 'failed',
      tasks: [failedTask(0), failedTask(1)],
      error: { code: 'MODERATION_FAILED', userMessage: REFUSED },
      quota: { ...makeJob().quota, refunded: 2 },
    });
    expect(failureText(job, MARKDOWN)).toBe(
      `**Couldn't make your image**: "a lighthouse at dusk, oil painting"\n${REFUSED}\nYou were not charged (2 units refunded).`,
    );
  });

  it('falls back to a task error, and leaves out the refund for exempt users', () => {
    const job = makeJob({ state: 'failed', tasks: [failedTask(0, 'The image service is out of credits: the bot’s operator must top up.')], quota: { ...makeJob().quota, reserved: 0 } });
    expect(failureText(job)).toBe(
      'Couldn\'t make your image: "a lighthouse at dusk, oil painting"\nThe image service is out of credits: the bot’s operator must top up.',
    );
  });
});

describe('quota', () => {
  const view: QuotaView = { exempt: false, limit: 20, used: 7, left: 13, resetsAt: Date.UTC(2026, 10, 24), costs: { '1K': 1, '2K': 2, '4K': 4 } };

  it('says used, left, when it resets and what images cost', () => {
    expect(quotaText(view)).toBe("You've used 7 of 20 units today; 13 left. Resets 00:00 UTC. 1K = 1 unit, 2K = 2, 4K = 4 per image.");
    expect(quotaText(view, MARKDOWN)).toContain(`Resets <t:${Date.UTC(2026, 10, 24) / 1000}:t>.`);
  });

  it('tells exempt users they have no limit', () => {
    expect(quotaText({ ...view, exempt: true })).toBe('You have no daily image limit (7 units used today).');
  });
});

describe('formatElapsed', () => {
  it('formats m:ss and h:mm:ss', () => {
    expect([0, 5_900, 42_000, 605_000, 3_723_000].map(formatElapsed)).toEqual(['0:00', '0:05', '0:42', '10:05', '1:02:03']);
  });
});
