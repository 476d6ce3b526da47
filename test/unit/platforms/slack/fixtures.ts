/** Job records as the engine stores them, for the Slack adapter's unit tests. */
import type { JobRecord, JobTask } from '../../../../src/engine/job.ts';
import { MODEL_CATALOG } from '../../../../src/engine/models.ts';
import type { ImagineRequest } from '../../../../src/engine/request.ts';

export const ALL_MODELS = MODEL_CATALOG;

export function makeJob(over: { id?: string; state?: JobRecord['state']; request?: Partial<ImagineRequest>; tasks?: JobTask[]; error?: JobRecord['error'] } = {}): JobRecord {
  const request: ImagineRequest = {
    prompt: 'a red fox in the snow',
    model: 'runbase-pro',
    ratio: '16:9',
    resolution: '2K',
    count: 2,
    references: [],
    requester: { platform: 'slack', userId: 'UALICE', name: 'alice' },
    location: { channel: 'C1', user: 'UALICE' },
    ...over.request,
  };
  const image = (i: number) => ({
    path: `/tmp/img-${i}.png`,
    sourceUrl: `https://cdn.example.com/${i}.png`,
    mime: 'image/png' as const,
    bytes: 1000,
    width: 2752,
    height: 1536,
  });
  const tasks =
    over.tasks ??
    Array.from({ length: request.count }, (_, index): JobTask => ({ index, status: 'succeeded', taskId: `t${index}`, image: image(index) }));
  return {
    id: over.id ?? 'job0123456789',
    request,
    state: over.state ?? 'succeeded',
    createdAt: 1_700_000_000_000,
    updatedAt: 1_700_000_042_000,
    deadlineAt: 1_700_000_600_000,
    finishedAt: 1_700_000_042_000,
    tasks,
    quota: { userKey: 'slack:UALICE', day: '2023-11-14', reserved: 4, refunded: 0, settled: true, spendReservedUsd: 0.26 },
    ...(over.error ? { error: over.error } : {}),
  };
}
