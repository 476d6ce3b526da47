import { describe, expect, it } from 'vitest';
import type { JobRecord } from '../../../../src/engine/job.ts';
import { configuredModels } from '../../../../src/engine/models.ts';
import { DISCORD_FORMAT, jobComponentsJson, progressContent, resultBody, resultContent } from '../../../../src/platforms/discord/render.ts';
import { validateBody } from '../../../fakes/discord/validation.ts';

const models = configuredModels(new Set(['runbase', 'runblob']));

function job(overrides: Partial<JobRecord> = {}, count = 4): JobRecord {
  const created = 1_700_000_000_000;
  return {
    id: 'AbCdEfGhIjKl',
    request: {
      prompt: 'a *bold* fox <@123> @everyone',
      model: 'runbase-2',
      ratio: '16:9',
      resolution: '1K',
      count,
      references: [],
      requester: { platform: 'discord', userId: '42', name: 'Alice' },
      location: {},
    },
    state: 'succeeded',
    createdAt: created,
    updatedAt: created + 30_000,
    finishedAt: created + 42_000,
    deadlineAt: created + 600_000,
    tasks: Array.from({ length: count }, (_, index) => ({
      index,
      status: 'succeeded' as const,
      image: { path: `/tmp/${index}.png`, sourceUrl: `https://cdn.example/${index}.png`, mime: 'image/png' as const, bytes: 1000, width: 1376, height: 768 },
    })),
    quota: { userKey: 'discord:42', day: '2026-11-23', reserved: count, refunded: 0, settled: true, spendReservedUsd: 0 },
    ...overrides,
  };
}

describe('Discord rendering', () => {
  it('escapes prompts so they cannot format or mention', () => {
    const text = DISCORD_FORMAT.escape('a *bold* fox <@123>');
    expect(text).toBe('a \\*bold\\* fox <\u200b@123>');
  });

  it('lays out U1–U4, V1–V4, E1–E4, Rerun, Remix, Delete and a ratio select within Discord limits, with valid bodies', () => {
    const rows = jobComponentsJson(job(), models);
    expect(rows.length).toBeLessThanOrEqual(5);
    const buttons = rows.flatMap((r) => r.components).filter((c) => c.type === 2);
    expect(buttons.map((b) => b.label)).toEqual(['U1', 'U2', 'U3', 'U4', 'V1', 'V2', 'V3', 'V4', 'E1', 'E2', 'E3', 'E4', 'Rerun', 'Remix', 'Delete']);
    for (const r of rows) expect(r.components.length).toBeLessThanOrEqual(5);
    const ids = rows.flatMap((r) => r.components).map((c) => c.custom_id as string);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id.length).toBeLessThanOrEqual(100);
    const selects = rows.flatMap((r) => r.components).filter((c) => c.type === 3);
    expect(selects.length).toBeGreaterThan(0);
    const body = resultBody(job(), [], [], models);
    expect(validateBody('webhookMessageEdit', body)).toBeUndefined();
    expect(validateBody('channelMessageCreate', body)).toBeUndefined();
  });

  it('summarises the result and links full-size originals of re-encoded images', () => {
    const text = resultContent(job({}, 1), [{ index: 0, url: 'https://bot.example/discord/originals/AbCdEfGhIjKl/0', bytes: 16 * 1024 * 1024 }]);
    expect(text).toContain('Nano Banana 2 (Runbase)');
    expect(text).toContain('16:9');
    expect(text).toContain('1376×768');
    expect(text).toContain('<@42>');
    expect(text).toContain('0:42');
    expect(text).toContain('(<https://bot.example/discord/originals/AbCdEfGhIjKl/0>)');
    expect(text).toContain('16.0 MB');
  });

  it('shows the failure sentence for a failed job, with Try again and Delete', () => {
    const failed = job({ state: 'failed', tasks: [], error: { code: 'TASK_MODERATION_FAILED', userMessage: 'Refused under the content policy.' } }, 1);
    expect(resultContent(failed, [])).toContain('Refused under the content policy.');
    const labels = jobComponentsJson(failed, models).flatMap((r) => r.components).map((c) => c.label);
    expect(labels).toEqual(['Try again', 'Remix', 'Delete']);
  });

  it('shows state and elapsed time in the placeholder, computed when the edit is sent', () => {
    const running = job({ state: 'running' }, 2);
    const text = progressContent(running, { jobId: running.id, state: 'running', phase: 'generating', elapsedMs: 1_000, done: 1, total: 2, changed: false }, running.createdAt + 65_000);
    expect(text).toContain('Generating 2 images');
    expect(text).toContain('1:05');
  });
});
