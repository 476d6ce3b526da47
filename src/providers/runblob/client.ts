/**
 * RunBlob (https://platform.runblob.io): one Gemini image task per image, polled or announced by an
 * unsigned callback. See docs/providers.md "RunBlob". References go as given (URL or base64
 * data URL); the price is a USD decimal string taken at creation.
 */
import { InvalidRequestError } from '../errors.ts';
import { failureCodeFromText } from '../error-parsing.ts';
import { ProviderHttp, describeIssues, type ProviderClientOptions } from '../http.ts';
import { createStatusReader } from '../wire.ts';
import type { CreatedTask, ProviderClient, ProviderTraits, RequestOptions, Resolution, TaskInput, TaskSnapshot, TaskStatus } from '../types.ts';
import {
  RUNBLOB_MAX_IMAGE_BYTES,
  runblobBalanceSchema,
  runblobCreateRequestSchema,
  runblobCreatedSchema,
  runblobGenerationListSchema,
  runblobGenerationSchema,
  type RunblobCreateRequest,
  type RunblobGeneration,
} from './schemas.ts';

export type RunblobClientOptions = ProviderClientOptions;

/** RunBlob documents no rate limit: a generous budget that still stops a runaway loop. */
export const RUNBLOB_REQUESTS_PER_WINDOW = 50;
export const RUNBLOB_WINDOW_MS = 1_000;

export const RUNBLOB_TRAITS: ProviderTraits = {
  rateLimit: { requests: RUNBLOB_REQUESTS_PER_WINDOW, windowMs: RUNBLOB_WINDOW_MS, sharedAcrossProcesses: false },
  // `callback_url`, called once the task ends (unsigned: only a hint).
  callbacks: true,
  // Base64 data URLs in `images`, at most 20 MB each.
  inlineReferences: { maxBytes: RUNBLOB_MAX_IMAGE_BYTES },
};

const QUALITY_BY_RESOLUTION: Record<Resolution, RunblobCreateRequest['quality']> = { '1K': 'standard', '2K': '2k', '4K': '4k' };

export class RunblobClient implements ProviderClient {
  readonly name = 'runblob' as const;
  readonly traits = RUNBLOB_TRAITS;
  readonly keyId: string;
  readonly #http: ProviderHttp;
  readonly #status: (status: string, taskId: string) => TaskStatus;

  constructor(opts: RunblobClientOptions) {
    this.#http = new ProviderHttp('runblob', opts);
    this.keyId = this.#http.keyId;
    const log = this.#http.log;
    this.#status = createStatusReader({ pending: 'pending', processing: 'running', completed: 'succeeded', failed: 'failed' }, (status, taskId) =>
      log.warn({ taskId, status }, 'runblob reported an unknown task status; treating it as running'),
    );
  }

  /** The documented request body for `input`; throws InvalidRequestError for what RunBlob would refuse. */
  buildCreateRequest(input: TaskInput): RunblobCreateRequest {
    const body = {
      prompt: input.prompt,
      model: input.model,
      quality: QUALITY_BY_RESOLUTION[input.resolution],
      aspect_ratio: input.ratio,
      ...(input.creativity !== undefined ? { temperature: input.creativity } : {}),
      ...(input.references.length ? { images: input.references.map((r) => (r.kind === 'url' ? r.url : r.dataUrl)) } : {}),
      ...(input.callbackUrl !== undefined ? { callback_url: input.callbackUrl } : {}),
    };
    const checked = runblobCreateRequestSchema.safeParse(body);
    if (!checked.success) {
      throw new InvalidRequestError({
        provider: 'runblob',
        // Issues name the field and the rule, never the values (prompts and data URLs stay out of logs).
        message: `RunBlob request not sent, it does not match the documented schema: ${describeIssues(checked.error)}`,
        fields: checked.error.issues.map((i) => i.path.join('.')),
      });
    }
    return checked.data;
  }

  async createTask(input: TaskInput, opts?: RequestOptions): Promise<CreatedTask> {
    const body = this.buildCreateRequest(input);
    const created = await this.#http.call({
      op: 'createTask',
      method: 'POST',
      path: '/v1/gemini/generate',
      body,
      answer: runblobCreatedSchema,
      kind: 'billable',
      gateKind: 'create',
      opts,
    });
    const result: CreatedTask = {
      taskId: created.task_uuid,
      // A create answer without a status is a queued task.
      status: created.status ? this.#status(created.status, created.task_uuid) : 'pending',
    };
    if (created.price != null) result.costUsd = created.price;
    this.#http.log.info({ taskId: result.taskId, model: input.model, costUsd: result.costUsd }, 'runblob task created');
    return result;
  }

  async getTask(taskId: string, opts?: RequestOptions): Promise<TaskSnapshot> {
    const generation = await this.#http.call({
      op: 'getTask',
      method: 'GET',
      path: `/v1/gemini/generations/${encodeURIComponent(taskId)}`,
      answer: runblobGenerationSchema,
      kind: 'idempotent',
      gateKind: 'poll',
      opts,
    });
    return this.#snapshot(generation);
  }

  /**
   * Recent tasks, newest first (GET /v1/gemini/generations?limit=&offset=). Lets an operator or a
   * resume pass find tasks whose id was not recorded. `limit` is clamped to the documented 1–100.
   */
  async listTasks(page: { limit?: number; offset?: number } = {}, opts?: RequestOptions): Promise<TaskSnapshot[]> {
    const limit = Math.min(100, Math.max(1, Math.floor(page.limit ?? 20)));
    const offset = Math.max(0, Math.floor(page.offset ?? 0));
    const items = await this.#http.call({
      op: 'listTasks',
      method: 'GET',
      path: `/v1/gemini/generations?limit=${limit}&offset=${offset}`,
      answer: runblobGenerationListSchema,
      kind: 'idempotent',
      gateKind: 'poll',
      opts,
    });
    return items.map((g) => this.#snapshot(g));
  }

  /** The account balance in USD (GET /v1/data/balance). */
  async getBalance(opts?: RequestOptions): Promise<number> {
    const answer = await this.#http.call({
      op: 'getBalance',
      method: 'GET',
      path: '/v1/data/balance',
      answer: runblobBalanceSchema,
      kind: 'idempotent',
      gateKind: 'poll',
      opts,
    });
    return answer.balance;
  }

  async close(): Promise<void> {
    await this.#http.close();
  }

  #snapshot(g: RunblobGeneration): TaskSnapshot {
    const status = this.#status(g.status ?? '(none)', g.task_uuid);
    const snap: TaskSnapshot = {
      taskId: g.task_uuid,
      status,
      outputUrls: status === 'succeeded' && g.result_image_url ? [g.result_image_url] : [],
    };
    if (status === 'failed') {
      const message = g.message?.trim() ?? '';
      const code = failureCodeFromText(message);
      snap.failure = { code, message: message || 'the task failed without a reason' };
    }
    return snap;
  }
}
