/** A finished JobRecord as the engine stores it, for the commands tests. */
import type { JobRecord, JobTask } from '../../../src/engine/job.ts';
import type { ImagineRequest } from '../../../src/engine/request.ts';

export const JOB_ID = 'job_01JDZ8Q3K9V2M4N6P8R0T2W4Y6';
export const T0 = Date.UTC(2026, 10, 23, 9, 0, 0);

export function okTask(index: number, width = 1024, height = 1024): JobTask {
  return {
    index,
    status: 'succeeded',
    taskId: `task-${index}`,
    submittedAt: T0 + 1_000,
    completedAt: T0 + 40_000,
    outputUrl: `https://cdn.provider.example/out/${index}.png`,
    image: {
      path: `/data/images/${JOB_ID}/${index}.png`,
      sourceUrl: `https://cdn.provider.example/out/${index}.png`,
      mime: 'image/png',
      bytes: 1_500_000,
      width,
      height,
    },
  };
}

export function failedTask(index: number, userMessage = 'The image service refused this prompt as unsafe. Rephrase it and try again.'): JobTask {
  return { index, status: 'failed', taskId: `task-${index}`, error: { code: 'MODERATION_FAILED', userMessage } };
}

export function makeJob(overrides: { request?: Partial<ImagineRequest> } & Partial<Omit<JobRecord, 'request'>> = {}): JobRecord {
  const { request, ...rest } = overrides;
  return {
    id: JOB_ID,
    request: {
      prompt: 'a lighthouse at dusk, oil painting',
      model: 'runbase-pro',
      ratio: '16:9',
      resolution: '1K',
      count: 2,
      references: [],
      requester: { platform: 'discord', userId: '111', name: 'ada' },
      location: { channelId: 'c1', messageId: 'm1' },
      ...request,
    },
    state: 'succeeded',
    createdAt: T0,
    updatedAt: T0 + 42_000,
    deadlineAt: T0 + 600_000,
    startedAt: T0 + 500,
    finishedAt: T0 + 42_000,
    tasks: [okTask(0, 1376, 768), okTask(1, 1376, 768)],
    quota: { userKey: 'discord:111', day: '2026-11-23', reserved: 2, refunded: 0, settled: true, spendReservedUsd: 0.26 },
    ...rest,
  };
}
