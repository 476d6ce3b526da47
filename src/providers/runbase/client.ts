/**
 * Runbase (https://runbase.net/api/v1): create a run, get a run. See docs/providers.md.
 * Runbase takes reference images as URLs only, reports cost in micro-dollars, and rate-limits
 * 20 requests / 10 s per key (the engine's gate enforces that; this client awaits it per attempt).
 */
import { InvalidRequestError } from '../errors.ts';
import { failureCodeFromText } from '../error-parsing.ts';
import { ProviderHttp, describeIssues, type ProviderClientOptions } from '../http.ts';
import { createStatusReader } from '../wire.ts';
import type { CreatedTask, ProviderClient, ProviderTraits, RequestOptions, TaskInput, TaskSnapshot, TaskStatus } from '../types.ts';
import {
  RUNBASE_MODELS_WITHOUT_RESOLUTION,
  runbaseCreateRequestSchema,
  runbaseRunSchema,
  type RunbaseCreateRequest,
  type RunbaseRun,
} from './schemas.ts';

export type RunbaseClientOptions = ProviderClientOptions;

const MICRO_USD_PER_USD = 1_000_000;

/** Runbase's documented limit: 20 requests per 10 s per API key, creates and polls together (docs/providers.md). */
export const RUNBASE_REQUESTS_PER_WINDOW = 20;
export const RUNBASE_WINDOW_MS = 10_000;

export const RUNBASE_TRAITS: ProviderTraits = {
  // The limit is per key, whoever sends: every process using the key shares one budget in the store.
  rateLimit: { requests: RUNBASE_REQUESTS_PER_WINDOW, windowMs: RUNBASE_WINDOW_MS, sharedAcrossProcesses: true },
  callbacks: false,
  // URLs only (image_urls).
  inlineReferences: undefined,
};

export class RunbaseClient implements ProviderClient {
  readonly name = 'runbase' as const;
  readonly traits = RUNBASE_TRAITS;
  readonly keyId: string;
  readonly #http: ProviderHttp;
  readonly #status: (status: string, taskId: string) => TaskStatus;

  constructor(opts: RunbaseClientOptions) {
    this.#http = new ProviderHttp('runbase', opts);
    this.keyId = this.#http.keyId;
    const log = this.#http.log;
    this.#status = createStatusReader({ pending: 'pending', processing: 'running', succeeded: 'succeeded', failed: 'failed' }, (status, taskId) =>
      log.warn({ taskId, status }, 'runbase reported an unknown run status; treating it as running'),
    );
  }

  /** The documented request body for `input`; throws InvalidRequestError for what Runbase cannot take. */
  buildCreateRequest(input: TaskInput): RunbaseCreateRequest {
    const dataIndex = input.references.findIndex((r) => r.kind !== 'url');
    if (dataIndex >= 0) {
      throw new InvalidRequestError({
        provider: 'runbase',
        message: `Runbase takes reference images as URLs only: reference ${dataIndex + 1} is a data URL (serve it at a public URL first)`,
        fields: ['image_urls'],
      });
    }
    const withoutResolution = RUNBASE_MODELS_WITHOUT_RESOLUTION.has(input.model);
    if (withoutResolution && input.resolution !== '1K') {
      throw new InvalidRequestError({
        provider: 'runbase',
        message: `Runbase model ${input.model} has no resolution option (asked for ${input.resolution})`,
        fields: ['resolution'],
      });
    }
    const urls = input.references.flatMap((r) => (r.kind === 'url' ? [r.url] : []));
    const body = {
      model: input.model,
      input: {
        prompt: input.prompt,
        aspect_ratio: input.ratio,
        ...(withoutResolution ? {} : { resolution: input.resolution }),
        ...(urls.length ? { image_urls: urls } : {}),
      },
    };
    const checked = runbaseCreateRequestSchema.safeParse(body);
    if (!checked.success) {
      throw new InvalidRequestError({
        provider: 'runbase',
        message: `Runbase request not sent, it does not match the documented schema: ${describeIssues(checked.error)}`,
        fields: checked.error.issues.map((i) => i.path.join('.')),
      });
    }
    return checked.data;
  }

  async createTask(input: TaskInput, opts?: RequestOptions): Promise<CreatedTask> {
    const body = this.buildCreateRequest(input);
    const run = await this.#http.call({
      op: 'createTask',
      method: 'POST',
      path: '/runs',
      body,
      answer: runbaseRunSchema,
      kind: 'billable',
      gateKind: 'create',
      opts,
    });
    const created: CreatedTask = { taskId: run.id, status: run.status ? this.#status(run.status, run.id) : 'pending' };
    if (run.costUsd != null) created.costUsd = run.costUsd / MICRO_USD_PER_USD;
    this.#http.log.info({ taskId: run.id, model: input.model, costUsd: created.costUsd }, 'runbase run created');
    return created;
  }

  async getTask(taskId: string, opts?: RequestOptions): Promise<TaskSnapshot> {
    const run = await this.#http.call({
      op: 'getTask',
      method: 'GET',
      path: `/runs/${encodeURIComponent(taskId)}`,
      answer: runbaseRunSchema,
      kind: 'idempotent',
      gateKind: 'poll',
      opts,
    });
    return this.#snapshot(run);
  }

  async close(): Promise<void> {
    await this.#http.close();
  }

  #snapshot(run: RunbaseRun): TaskSnapshot {
    const status = this.#status(run.status ?? '(none)', run.id);
    const snap: TaskSnapshot = {
      taskId: run.id,
      status,
      outputUrls: status === 'succeeded' ? [...(run.output?.urls ?? [])] : [],
    };
    if (run.costUsd != null) snap.costUsd = run.costUsd / MICRO_USD_PER_USD;
    if (status === 'failed') {
      // Runbase refunds a failed run in full.
      snap.costUsd = 0;
      snap.failure = failureOf(run.error);
    }
    return snap;
  }
}

function failureOf(error: RunbaseRun['error']): { code: string; message: string } {
  if (error == null) return { code: 'GENERATION_FAILED', message: 'the run failed without a reason' };
  if (typeof error === 'string') return { code: failureCodeFromText(error), message: error };
  const message = error.message ?? '';
  const code = error.code != null && String(error.code).trim() !== '' ? String(error.code).trim().toUpperCase() : failureCodeFromText(message);
  return { code, message: message || code };
}
