/**
 * Admission: turns a validated request into a durable, paid-for job. References first (a bad
 * reference costs the user nothing), then the user's quota, then the spend cap, then the job
 * record, its lease and its place in the unfinished set. Whatever fails gives back what was
 * taken before it (units, spend reservation, downloaded references), so a refused request is
 * never charged.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProviderReference } from '../../providers/types.ts';
import { newJobId } from '../ids.ts';
import type { JobRecord, JobTask } from '../job.ts';
import type { ImagineRequest } from '../request.ts';
import type { ModelSpec } from '../models.ts';
import { fetchReferences, toProviderReferences, type PreparedReference } from '../references.ts';
import { jobLogger, type JobContext } from './context.ts';
import { scopeOf } from '../governance/api.ts';
import type { Logger } from '../../log.ts';
import type { Allowance } from '../governance/api.ts';

export interface Admitted {
  job: JobRecord;
  /** References as the model's provider takes them. */
  providerRefs: ProviderReference[];
  log: Logger;
}

/** What the requester's server adds to admission (the engine reads its settings before admitting). */
export interface AdmitOptions {
  /** The requester's effective allowance (governance/policy.ts decide(); default the operator's QUOTA_DAILY_UNITS). */
  limit?: Allowance | undefined;
  /** ServerSettings.spendCapUsd of the requester's server: reserved against too (Quotas.reserveSpend). */
  serverSpendCapUsd?: number | undefined;
}

/** Prepares, charges and persists a job (state queued) for `request`, validated against `model`. */
export async function admit(ctx: JobContext, request: ImagineRequest, model: ModelSpec, opts: AdmitOptions = {}): Promise<Admitted> {
  const { quotas, records } = ctx;
  const id = newJobId();
  const log = jobLogger(ctx.log, id, model);
  const refsDir = join(ctx.dataDir, 'refs', id);
  const cleanRefs = () => rm(refsDir, { recursive: true, force: true }).catch(() => undefined);

  // References first: a bad reference costs the user nothing.
  let prepared: PreparedReference[] = [];
  let providerRefs: ProviderReference[] = [];
  if (request.references.length > 0) {
    try {
      prepared = await fetchReferences(request.references, {
        dir: refsDir,
        maxCount: model.maxReferences,
        dispatcher: ctx.referenceDispatcher,
        allowHosts: ctx.fetchAllowHosts,
      });
      const inline = ctx.lanes.get(model.provider)?.client.traits.inlineReferences;
      providerRefs = await toProviderReferences(prepared, inline, ctx.referenceHost, { allowHosts: ctx.fetchAllowHosts });
    } catch (err) {
      await cleanRefs();
      throw err;
    }
  }

  const units = quotas.unitsFor(request.resolution, request.count);
  const userKey = quotas.userKey(request.requester);
  let reservation;
  try {
    reservation = await quotas.reserve(request.requester, units, opts.limit);
  } catch (err) {
    await cleanRefs();
    throw err;
  }
  const refundUnits = () => quotas.refund(userKey, reservation.day, reservation.reserved).catch((e: unknown) => log.error({ err: e }, 'refund failed'));
  let spendReservedUsd: number;
  // Every job in a server is counted on the server's own spend counter too (usage, a cap set later).
  const spendScope = scopeOf(request.requester);
  try {
    await quotas.prices.fresh().catch((e: unknown) => log.warn({ err: e }, 'could not refresh learned prices'));
    const usd = quotas.estimateSpendUsd(model, request.resolution, request.count);
    spendReservedUsd = (await quotas.reserveSpend(usd, spendScope && { scope: spendScope, capUsd: opts.serverSpendCapUsd })).reservedUsd;
  } catch (err) {
    await refundUnits();
    await cleanRefs();
    throw err;
  }

  const now = ctx.now();
  const job: JobRecord = {
    id,
    request,
    state: 'queued',
    createdAt: now,
    updatedAt: now,
    deadlineAt: now + ctx.timing.deadlineMs,
    tasks: Array.from({ length: request.count }, (_, index): JobTask => ({ index, status: 'unsubmitted' })),
    quota: {
      userKey,
      day: reservation.day,
      reserved: reservation.reserved,
      refunded: 0,
      settled: false,
      spendReservedUsd,
      ...(spendScope && spendReservedUsd > 0 ? { spendScope } : {}),
    },
  };
  try {
    if (prepared.length > 0) await records.saveReferences(id, prepared);
    await records.put(job);
    // Lease before joining the unfinished set, so another process's resume cannot grab it.
    await records.lease(id);
    await records.markUnfinished(id);
  } catch (err) {
    // A write that failed may still have landed (a connection dropped after Redis applied it):
    // the job is taken back out of the store, its first write queued before the refund's, so no
    // sweep runs a job its user was refunded for and told to try again. Not awaited: while the
    // store is away, the user's answer does not wait for it to come back.
    void records.discard(id).catch((e: unknown) => log.error({ err: e, jobId: id }, 'could not take a refused job back out of the store'));
    await refundUnits();
    await quotas.adjustSpend(reservation.day, -spendReservedUsd).catch(() => undefined);
    if (spendScope) await quotas.adjustServerSpend(spendScope, reservation.day, -spendReservedUsd).catch(() => undefined);
    await cleanRefs();
    throw err;
  }
  log.info(
    { userKey, count: request.count, resolution: request.resolution, ratio: request.ratio, references: prepared.length, units },
    'job queued',
  );
  return { job, providerRefs, log };
}
