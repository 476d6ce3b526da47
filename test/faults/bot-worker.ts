/**
 * One bot process for the fault suite (takeover.test.ts, redis-outage.fault.ts): an engine on a
 * shared Redis store against a fake Runbase, with the production heartbeat, job lease and
 * takeover timing (docs/architecture.md "Scaling out"); only the fakes' clock is scaled.
 * Reports on stdout, one JSON line per event, with Date.now() as `at`:
 *   ready                              the engine runs (resume done)
 *   submitted {jobId}                  a job this process accepted
 *   refused {code}                     a submit answered with a user-facing error
 *   running {jobId}                    the first progress of a job in this process (submitted or taken over)
 *   created {jobId}                    the first progress showing every task's provider id: the engine
 *                                      emits it after the record holding the ids is written
 *   delivered {jobId, state, error?}   the platform delivery (a recording deliverer); error: the job's or its task's code and detail
 *   closed                             SIGTERM: the engine closed (jobs handed over), exiting
 * Reads commands on stdin, one per line: `submit <n> <user prefix>`.
 * Argv: fakeUrl fakeKey storeUrl keyPrefix processId workDir
 */
import { createInterface } from 'node:readline';
import { UserFacingError } from '../../src/errors.ts';
import { FAST_TIMING, startEngineHarness } from '../integration/engine-harness.ts';

const [fakeUrl, fakeKey, storeUrl, keyPrefix, processId, workDir] = process.argv.slice(2);
const say = (event: string, fields: Record<string, unknown> = {}) => process.stdout.write(`${JSON.stringify({ event, at: Date.now(), processId, ...fields })}\n`);

const h = await startEngineHarness(
  { RUNBASE_API_KEY: fakeKey, RUNBASE_API_URL: fakeUrl, QUOTA_DAILY_UNITS: '5' },
  {
    dir: workDir!,
    storeUrl: storeUrl!,
    keyPrefix: keyPrefix!,
    processId: processId!,
    // Production lease, heartbeat and takeover sweep; the fake's tasks take seconds, polled often.
    timing: {
      rateLimits: { runbase: { requests: 200, windowMs: 1_000 } },
      deadlineMs: 60_000,
      progressTickMs: 500,
      deliveryRetryDelaysMs: [100, 200],
      createRateLimitedBackoffMs: 100,
      expectedMs: () => 1_000,
      scheduler: FAST_TIMING.scheduler!,
    },
  },
);
const seen = new Set<string>();
const created = new Set<string>();
h.engine.setDeliverer('discord', {
  progress(job) {
    if (!seen.has(job.id)) {
      seen.add(job.id);
      say('running', { jobId: job.id });
    }
    if (!created.has(job.id) && job.tasks.every((t) => t.taskId !== undefined)) {
      created.add(job.id);
      say('created', { jobId: job.id });
    }
  },
  async deliver(job) {
    const error = job.error ?? job.tasks.find((t) => t.error)?.error;
    say('delivered', { jobId: job.id, state: job.state, ...(error ? { error: `${error.code}: ${error.detail ?? error.userMessage}` } : {}) });
  },
});
await h.engine.resume();

process.once('SIGTERM', () => {
  h.close().then(
    () => {
      say('closed');
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`close failed: ${String(err)}\n`);
      process.exit(1);
    },
  );
});

async function submit(user: string): Promise<void> {
  try {
    const job = await h.engine.submit({
      prompt: 'a lighthouse at dusk',
      model: 'runbase-pro',
      ratio: '1:1',
      resolution: '1K',
      count: 1,
      requester: { platform: 'discord', userId: user },
      location: { channelId: 'c1' },
    });
    say('submitted', { jobId: job.id, user });
  } catch (err) {
    say('refused', { user, code: err instanceof UserFacingError ? err.code : 'UNEXPECTED', message: String(err) });
  }
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const [command, n, prefix] = line.trim().split(/\s+/);
  if (command === 'submit') {
    for (let i = 0; i < Number(n); i++) void submit(`${prefix}-${i}`);
  }
});
say('ready');
