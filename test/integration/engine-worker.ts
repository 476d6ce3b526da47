/**
 * A child process for the kill -9 test (engine-resume.test.ts): runs one engine on a shared
 * SQLite file against a fake Runbase and reports on stdout, one JSON line per event, so the test
 * can SIGKILL it at a precise point. Configured through the environment:
 *   FAKE_URL, FAKE_KEY   the fake Runbase
 *   WORK_DIR, KEY_PREFIX  the shared store and data directory
 *   COUNT                 images in the job
 */
import { FAST_TIMING, startEngineHarness } from './engine-harness.ts';

const env = process.env;
const say = (event: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(event)}\n`);

const h = await startEngineHarness(
  { RUNBASE_API_KEY: env.FAKE_KEY, RUNBASE_API_URL: env.FAKE_URL },
  {
    dir: env.WORK_DIR!,
    keyPrefix: env.KEY_PREFIX!,
    processId: 'worker',
    timing: { ...FAST_TIMING, leaseTtlMs: 1_000, deadlineMs: 30_000 },
  },
);
let announced = false;
h.engine.setDeliverer('discord', {
  progress(job) {
    if (!announced && job.tasks.every((t) => t.taskId !== undefined)) {
      announced = true;
      say({ event: 'submitted', jobId: job.id, taskIds: job.tasks.map((t) => t.taskId) });
    }
  },
  async deliver(job) {
    say({ event: 'delivered', jobId: job.id });
  },
});
const job = await h.engine.submit({
  prompt: 'a lighthouse at dusk',
  model: 'runbase-pro',
  ratio: '3:2',
  resolution: '2K',
  count: Number(env.COUNT ?? 2),
  requester: { platform: 'discord', userId: 'killed-user' },
  location: { channelId: 'c1' },
});
say({ event: 'queued', jobId: job.id });
