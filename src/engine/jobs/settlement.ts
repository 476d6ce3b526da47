/**
 * Settlement: refunds the units of images not delivered and corrects the spend counter to what
 * the providers reported, exactly once per job, even if the process dies anywhere in here.
 */
import type { Metrics } from '../../metrics.ts';
import { scopeOf } from '../governance/api.ts';
import type { UsageLedger } from '../governance/usage.ts';
import type { JobTask } from '../job.ts';
import type { Quotas } from '../quota.ts';
import type { Run } from './context.ts';
import type { JobRecords } from './records.ts';

/** Names a job's settlement in the store's once-only guards (Quotas.refundOnce / adjustSpendOnce). */
const jobSettlementId = (jobId: string) => `job:${jobId}`;

/** Create failures after which the provider may hold (and have charged) a task we have no id for. */
const CREATE_OUTCOME_UNKNOWN_CODES: ReadonlySet<string> = new Set([
  'SUBMISSION_UNKNOWN',
  'PROVIDER_SERVER_ERROR',
  'PROVIDER_UNREACHABLE',
  'PROVIDER_MALFORMED_RESPONSE',
]);

/** A task canceled after the provider accepted it (it has a task id): the provider charges it. */
export function paidButCanceled(t: JobTask): boolean {
  return t.taskId !== undefined && t.error?.code === 'CANCELED';
}

function mayHaveBeenCreated(t: JobTask): boolean {
  return t.submittedAt !== undefined && CREATE_OUTCOME_UNKNOWN_CODES.has(t.error?.code ?? '');
}

/**
 * Settles a terminal job. The refund and the correction are each one atomic store step with
 * their own guard (Quotas.refundOnce / adjustSpendOnce over Store.addOnce), and a resumed job
 * settles again from the same persisted (terminal) tasks, so a retry computes the same amounts
 * and the guards let through only what did not land. Partial success is covered: the one refund
 * is for every image not made. The `settled` flag only saves the round trips.
 */
export async function settle(run: Run, quotas: Quotas, records: JobRecords, metrics?: Metrics, usage?: UsageLedger): Promise<void> {
  const { job } = run;
  const { quota } = job;
  const count = job.tasks.length;
  // Units come back for every image not made, except those of a canceled job the provider had
  // already accepted: they are paid for at the provider (docs/architecture.md "Cancel").
  const failed = job.tasks.filter((t) => !(t.status === 'succeeded' && t.image) && !paidButCanceled(t)).length;
  const refundUnits = count > 0 ? Math.round((quota.reserved / count) * failed) : 0;
  const estimatePerImage = count > 0 ? quota.spendReservedUsd / count : 0;
  // Money spent: what the provider reported per created task (Runbase reports 0 for failed runs),
  // and the estimate for a create that may have made a task whose id never came back.
  const spentUsd = job.tasks.reduce(
    (sum, t) => (t.taskId !== undefined ? sum + (t.costUsd ?? estimatePerImage) : mayHaveBeenCreated(t) ? sum + estimatePerImage : sum),
    0,
  );
  const settlementId = jobSettlementId(job.id);
  const refunded = refundUnits > 0 && (await quotas.refundOnce(settlementId, quota.userKey, quota.day, refundUnits));
  const adjusted = await quotas.adjustSpendOnce(settlementId, quota.day, spentUsd - quota.spendReservedUsd);
  // The server's own counter took the same reservation (admission): corrected the same way, under its own guard.
  const adjustedServer =
    quota.spendScope !== undefined && (await quotas.adjustServerSpendOnce(settlementId, quota.spendScope, quota.day, spentUsd - quota.spendReservedUsd));
  // `applied: false` on a resumed settlement whose changes had already landed before the crash.
  run.log.info({ refundedUnits: refundUnits, chargedUnits: quota.reserved - refundUnits, spentUsd, applied: refunded || adjusted || adjustedServer }, 'job settled');
  // The metric counts what the providers reported, not the estimates for creates of unknown outcome.
  const reportedUsd = job.tasks.reduce((sum, t) => (t.taskId !== undefined ? sum + (t.costUsd ?? 0) : sum), 0);
  if (reportedUsd > 0 && run.model) metrics?.spendUsd.inc({ provider: run.model.provider, model: run.model.key }, reportedUsd);
  await learnPrices(run, quotas);
  // Usage, once per job under the settlement's id (a resumed settlement records nothing twice).
  // A failure propagates like the refund's: the job stays unsettled and the next start retries.
  if (usage) {
    const delivered = job.tasks.filter((t) => t.status === 'succeeded' && t.image).length;
    const used = { images: delivered, units: quota.reserved - refundUnits, usd: reportedUsd };
    await usage.record(scopeOf(job.request.requester), job.request.requester.userId, run.model?.key ?? job.request.model, used, { onceId: settlementId });
  }
  quota.refunded = refundUnits;
  quota.settled = true;
  await records.persist(run);
}

/**
 * Teaches the price book what the provider charged per image for this model and size (the last
 * non-zero report: Runbase reports 0 for a failed, refunded run), so the next reservation uses it.
 * Best effort: a failure only keeps the previous estimate.
 */
async function learnPrices(run: Run, quotas: Quotas): Promise<void> {
  const { job, model } = run;
  if (!model) return;
  const reported = job.tasks.findLast((t) => t.taskId !== undefined && t.costUsd !== undefined && t.costUsd > 0)?.costUsd;
  if (reported === undefined) return;
  await quotas.prices.learn(model, job.request.resolution, reported).catch((err: unknown) => run.log.warn({ err }, 'could not store a learned price'));
}
