/**
 * One task (= one image) of a job: unsubmitted → create → watch (poll, nudged by callbacks) →
 * download. Durability rules (docs/architecture.md):
 * - Before a create request goes out, `submittedAt` is persisted while the task is still
 *   'unsubmitted'. A resumed task in that state may or may not exist at the provider: it is
 *   failed with SUBMISSION_UNKNOWN and refunded (the one gap a crash can leave).
 * - A task's provider id is persisted right after the create answer; a task that has one is
 *   never created again (that would charge twice), only polled.
 * - A stop (close(), i.e. a restart) does not cut off a create on the wire: its answer is
 *   awaited and recorded, so only a crash (or a create hung past close()'s wait) leaves the gap.
 */
import { join } from 'node:path';
import { MalformedResponseError, RateLimitedError } from '../../providers/errors.ts';
import { taskFailedError } from '../../providers/error-parsing.ts';
import type { ProviderReference, RequestGate, TaskInput } from '../../providers/types.ts';
import { sleep } from '../../util/sleep.ts';
import { ReferenceError, ResultDownloadError } from '../errors.ts';
import type { JobTask } from '../job.ts';
import { JobCanceledError, ProviderUnavailableError, SubmissionUnknownError, toJobError } from '../job-errors.ts';
import type { Lane } from '../lanes.ts';
import type { ModelSpec } from '../models.ts';
import { toProviderReferences } from '../references.ts';
import type { JobContext, Run } from './context.ts';
import { isImageDone } from './delivery.ts';

/** Whether this lane's creates carry a callback URL: the provider takes one and the bot has a public address. */
const callsBack = (ctx: JobContext, lane: Lane): boolean => lane.client.traits.callbacks && !!ctx.publicUrl;

/** Runs one task as far as it can go; a failure fails the task (persisted), never the run. */
export async function runTask(ctx: JobContext, run: Run, task: JobTask): Promise<void> {
  try {
    if (isImageDone(task)) return;
    if (!run.lane || !run.model) throw new ProviderUnavailableError(`model ${run.job.request.model} is not configured`);
    if (task.status === 'unsubmitted') {
      if (task.submittedAt !== undefined) throw new SubmissionUnknownError();
      await createTask(ctx, run, run.lane, run.model, task);
    }
    if (task.status === 'pending' || task.status === 'running') await watchTask(ctx, run, run.lane, run.model, task);
    if (task.status === 'succeeded' && !task.image) await downloadTask(ctx, run, task);
  } catch (err) {
    if (run.stop.signal.aborted) return; // stopped: the task resumes where it is
    // A create whose outcome is unknown stays SUBMISSION_UNKNOWN even when canceled (settlement counts it as maybe paid).
    const canceled = run.cancel.signal.aborted && !(err instanceof SubmissionUnknownError);
    const reason = canceled ? run.cancel.signal.reason : run.deadline.signal.aborted ? run.deadline.signal.reason : err;
    task.status = 'failed';
    task.error = toJobError(reason);
    task.completedAt = ctx.now();
    run.log.warn({ task: task.index, taskId: task.taskId, code: task.error.code, detail: task.error.detail }, 'task failed');
    await ctx.records.persist(run);
    ctx.deliveries.emit(run, false);
  }
}

async function createTask(ctx: JobContext, run: Run, lane: Lane, model: ModelSpec, task: JobTask): Promise<void> {
  const { job } = run;
  const { request } = job;
  const input: TaskInput = {
    prompt: request.prompt,
    model: model.providerModel,
    ratio: request.ratio,
    resolution: request.resolution,
    references: await providerRefs(ctx, run, lane),
  };
  if (model.creativity && request.creativity !== undefined) input.creativity = request.creativity;
  if (callsBack(ctx, lane) && ctx.publicUrl) {
    // A token the store could not keep would only make the callback a 404: the task is polled.
    const url = await ctx.callbacks.register(ctx.publicUrl, lane.client.name, { jobId: job.id, index: task.index }).catch((err: unknown) => {
      run.log.warn({ err, task: task.index }, 'could not store a callback token; the task is polled instead');
      return undefined;
    });
    if (url) input.callbackUrl = url;
    else run.noCallback.add(task.index);
  }
  const gate: RequestGate = async (kind) => {
    // The deadline may stop a create waiting for its turn, but not one on the wire: that one may
    // already have made (and charged) the task, whose id must then be recorded, not dropped.
    await lane.gate(kind, run.signal);
    // A cancel clicked on another process is honoured here, before anything can be charged. A
    // store that does not answer now is no reason to fail the task: the next lease renewal and the
    // delivery read the request again.
    const cancelRequested = (): Promise<unknown> =>
      ctx.records.cancelRequest(job.id).catch((err: unknown) => run.log.warn({ err }, 'could not read the cancel request; creating anyway'));
    if (task.submittedAt === undefined && (await cancelRequested())) {
      run.cancel.abort(new JobCanceledError());
      throw run.cancel.signal.reason;
    }
    // From here the provider may create (and charge) the task: mark it, so a crash is detected.
    // Not before the gate: a create still queued for the budget when the process dies was never
    // sent, and the next start sends it instead of failing it as SUBMISSION_UNKNOWN.
    if (task.submittedAt === undefined) {
      task.submittedAt = ctx.now();
      await ctx.records.persist(run);
      // Abandoned while that write waited (it waited out a store outage, and the heartbeat lapsed):
      // the create will not be sent (its signal is aborted), so the record must not say it may have
      // been, or the next holder fails the task as SUBMISSION_UNKNOWN.
      if (run.abandon.signal.aborted) {
        delete task.submittedAt;
        await ctx.records.persist(run).catch((err: unknown) => run.log.warn({ err }, 'could not record that the create was not sent'));
        throw run.abandon.signal.reason;
      }
    }
  };
  // Not `run.stop`: a restart must not cut off a create on the wire (see Run.abandon).
  const createOpts = { signal: run.abandon.signal, gate };
  const firstBackoffMs = ctx.timing.createRateLimitedBackoffMs;
  let backoffMs = firstBackoffMs;
  for (;;) {
    try {
      const created = await lane.client.createTask(input, createOpts);
      task.taskId = created.taskId;
      task.submittedAt = ctx.now();
      // A create answer is never trusted as terminal: the output URL only comes with a poll.
      task.status = created.status === 'pending' ? 'pending' : 'running';
      if (created.costUsd !== undefined) task.costUsd = created.costUsd;
      break;
    } catch (err) {
      // 429 RATE_LIMITED means the provider turned the create away (nothing charged): the
      // client's own retries ran out, so wait longer, and make every request of this key wait.
      if (!(err instanceof RateLimitedError) || run.signal.aborted) throw err;
      run.log.warn({ task: task.index, waitMs: backoffMs }, 'create rate-limited; backing off');
      lane.budget.pauseFor(backoffMs);
      await sleep(backoffMs, run.signal);
      backoffMs = Math.min(backoffMs * 2, firstBackoffMs * 8);
    }
  }
  // Data URLs can be large: keep them only while a task still has to be sent.
  if (job.tasks.every((t) => t.status !== 'unsubmitted' || t.error)) run.providerRefs = undefined;
  if (job.state === 'queued') {
    job.state = 'submitted';
    job.startedAt = ctx.now();
  }
  if (task.status === 'running' && job.state === 'submitted') job.state = 'running';
  await ctx.records.persist(run);
  run.log.info({ task: task.index, taskId: task.taskId, costUsd: task.costUsd }, 'task submitted');
  ctx.deliveries.emit(run, false);
}

async function watchTask(ctx: JobContext, run: Run, lane: Lane, model: ModelSpec, task: JobTask): Promise<void> {
  const { job } = run;
  const taskId = task.taskId;
  if (taskId === undefined) throw new SubmissionUnknownError();
  const watching = lane.scheduler.watch(taskId, () => lane.client.getTask(taskId, { signal: run.signal, gate: lane.gate }), {
    expectedMs: ctx.timing.expectedMs(model, job.request.resolution),
    startedAt: task.submittedAt ?? ctx.now(),
    signal: run.signal,
    // Its create carried a callback URL (createTask) that leads here: polls are the safety net.
    // Not for a resumed job (a callback may have come while it was elsewhere) nor with live peers
    // (PUBLIC_URL may reach another process, which drops it): the normal plan then.
    expectCallback: callsBack(ctx, lane) && !run.resumed && !run.noCallback.has(task.index) && ctx.callbacksReachThisProcess(),
    onSnapshot: (s) => {
      if (s.status !== 'running' || task.status !== 'pending') return;
      task.status = 'running';
      if (job.state === 'submitted' || job.state === 'queued') job.state = 'running';
      ctx.records.persist(run).catch((err: unknown) => run.log.warn({ err }, 'could not persist job'));
      ctx.deliveries.emit(run, false);
    },
  });
  // The provider called back before this watch began (even before the create's answer): poll now.
  if (run.calledBack.has(task.index)) lane.scheduler.nudge(taskId);
  const snapshot = await watching;
  if (snapshot.costUsd !== undefined) task.costUsd = snapshot.costUsd;
  if (snapshot.status === 'failed') {
    const failure = taskFailedError(model.provider, snapshot.failure ?? { code: 'GENERATION_FAILED', message: 'the task failed without a reason' });
    // A failure the provider reported in a 2xx answer: the client counted the request, not this.
    ctx.metrics?.providerErrors.inc({ provider: model.provider, code: failure.code });
    throw failure;
  }
  const url = snapshot.outputUrls[0];
  if (!url) throw new MalformedResponseError({ provider: model.provider, message: 'task succeeded without an output URL' });
  task.outputUrl = url;
  task.status = 'succeeded';
  task.completedAt = ctx.now();
  if (task.submittedAt !== undefined) ctx.durations?.record(model.key, job.request.resolution, task.completedAt - task.submittedAt);
  if (job.state === 'submitted' || job.state === 'queued') job.state = 'running';
  // Not written here: the download that follows writes the task (image or failure). A crash in
  // between resumes a task with its provider id, which is polled again for the output URL.
}

async function downloadTask(ctx: JobContext, run: Run, task: JobTask): Promise<void> {
  const url = task.outputUrl;
  if (!url) throw new ResultDownloadError('no output URL recorded');
  const dir = join(ctx.dataDir, 'images', run.job.id);
  run.downloading++;
  ctx.deliveries.emit(run, false);
  try {
    const keep = ctx.deliveries.takesKeptResults(run.job) ? ctx.recentResults : undefined;
    // `<index>.<the content's extension>`: the download names it after what it is, whatever the URL said.
    task.image = await ctx.downloadResult(url, join(dir, String(task.index)), { keep, signal: run.signal });
  } finally {
    run.downloading--;
  }
  await ctx.records.persist(run);
  run.log.info({ task: task.index, bytes: task.image.bytes, width: task.image.width, height: task.image.height }, 'result downloaded');
  ctx.deliveries.emit(run, false);
}

/** References as this lane's provider takes them: computed at submit, or again on resume. */
async function providerRefs(ctx: JobContext, run: Run, lane: Lane): Promise<ProviderReference[]> {
  if (run.providerRefs) return run.providerRefs;
  if (run.job.request.references.length === 0) return (run.providerRefs = []);
  // Resumed: the files prepared at submit are still under DATA_DIR/refs/<jobId>.
  const prepared = await ctx.records.references(run.job.id);
  if (!prepared) throw new ReferenceError(0, 'unreachable', 'the copy prepared at submission is gone');
  run.providerRefs = await toProviderReferences(prepared, lane.client.traits.inlineReferences, ctx.referenceHost, { allowHosts: ctx.fetchAllowHosts });
  return run.providerRefs;
}
