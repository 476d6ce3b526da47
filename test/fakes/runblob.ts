/**
 * A fake RunBlob (https://platform.runblob.io), written from the provider's documentation (docs/providers.md)
 * only. node:http on 127.0.0.1:0; the base URL is the origin (`fake.url`).
 *
 *   const fake = await startFakeRunblob({ durationMs: 100 });
 *   // client: baseUrl = fake.url, key = fake.apiKey
 *   await fake.close();
 *
 * Endpoints (Authorization: Bearer <key>; missing or wrong → 401 {"error":"Unauthorized","message":"Invalid API key"})
 *   POST /v1/gemini/generate              → 200 {task_uuid, status:"pending", price:"0.0200"}
 *   GET  /v1/gemini/generations/{uuid}    → {task_uuid, status, prompt, result_image_url|null, message|null,
 *                                            model, created_at}  (the last two are extra, undocumented
 *                                            fields — clients must keep/ignore unknown fields; `extraFields: false` drops them)
 *                                          unknown or another key's → 404 {"detail":"Generation not found"}
 *   GET  /v1/gemini/generations?limit=1..100&offset=N   (default 20/0) → array, newest first;
 *                                          bad query → 422 loc ["query","limit"|"offset"]
 *   GET  /v1/data/balance                 → {"balance":"12.3400"}
 *   GET  /nanobanana/outputs/YYYY/MM/{uuid}.png   the output PNG (no auth); generated lazily
 *
 * Create validation (FastAPI/pydantic style: every problem at once, 422
 * {"detail":[{type, loc:["body", field, …], msg, input, ctx?}]}; unknown fields ignored; null = absent):
 *   prompt      required string, 1–4000 characters (code points)
 *   model       standard | pro | v2 (default standard)
 *   quality     standard | 2k | 4k (default standard); 2k/4k with model standard → 422 value_error, loc ["body"]
 *   aspect_ratio auto 21:9 16:9 4:3 3:2 1:1 9:16 3:4 2:3 5:4 4:5 (default auto → 1:1 output)
 *   temperature number 0–1 (default 0.7)
 *   images      ≤ 4 (standard) / ≤ 8 (pro, v2); each an http(s) URL or data:image/(png|jpeg|webp);base64,…
 *               Data URLs are decoded: > 20,000,000 bytes → IMAGE_TOO_LARGE, bytes not PNG/JPEG/WEBP (or
 *               another declared type) → UNSUPPORTED_IMAGE_FORMAT, undecodable → INVALID_IMAGE; by
 *               default a 422 value_error "Value error, CODE: …" at loc ["body","images",i];
 *               with `badImageAnswer: 'failed-task'` the task is created and fails with that code.
 *   callback_url http(s) URL
 * Output size: quality standard → 1K, 2k → 2K, 4k → 4K at the ratio (png.ts `outputSize`).
 *
 * Price (USD, charged at create, refunded when the task fails): priceUsd(model, quality), default
 * standard 0.02; pro 0.04 (4k 0.08); v2 0.03 (4k 0.06). Balance `balanceUsd` (default 100):
 * balance < price → 402, body {"detail":"INSUFFICIENT_CREDITS"} or, with
 * insufficientCreditsShape 'success-false', {"success":false,"message":"INSUFFICIENT_CREDITS"}.
 *
 * Lifecycle: pending (30 % of the duration) → processing (or the unknown status first) →
 * completed | failed (message = the failure code, e.g. MODERATION_FAILED) at `durationMs`
 * (default 50–150 ms per task).
 *
 * Callbacks: when the task ends and callback_url was given, POST {task_uuid, status:
 * "completed"|"failed", result_image_url, message} (not signed). `callbacks.mode`: 'once'
 * (default), 'twice' (a duplicate delivery after `duplicateGapMs`), 'drop' (never sent; the uuid
 * goes to `droppedCallbacks`); `delayMs` before sending; `retries` on a non-2xx/timeout
 * (default 0); `timeoutMs` the receiver's budget (default 5000). Every delivery is logged in
 * `callbacks` with its HTTP status and `ok` (2xx within the budget). `callbacksSettled()` waits
 * for every scheduled delivery.
 *
 * Prompt markers: [fail:CODE], [big] (noisy PNG, 4K > 10 MiB), [slow:MS], [weird:MS],
 * [callback:twice], [callback:drop], [callback:delay=MS].
 *
 * Fault injection / request recording: see fault.ts (kinds 'create' | 'get' | 'list' | 'balance' | 'download').
 */
import { randomUUID } from 'node:crypto';
import { Agent, fetch as undiciFetch } from 'undici';
import {
  bearerKey,
  defaultDurationMs,
  fetchReference,
  isHttpUrl,
  safeDecode,
  outcomeFromPrompt,
  parsePromptMarkers,
  startHarness,
  type Answer,
  type Counts,
  type FakeOutcome,
  type FaultSpec,
  type RecordedRequest,
  type ReferenceFetch,
} from './fault.ts';
import { outputPng, sniffImageType, type OutputResolution } from './png.ts';

export type { FakeOutcome, FaultSpec, RecordedRequest, ReferenceFetch } from './fault.ts';
export { outcomeFromPrompt, parsePromptMarkers } from './fault.ts';
export { outputSize } from './png.ts';

export const RUNBLOB_MODELS = ['standard', 'pro', 'v2'] as const;
export type RunblobModel = (typeof RUNBLOB_MODELS)[number];
export const RUNBLOB_QUALITIES = ['standard', '2k', '4k'] as const;
export type RunblobQuality = (typeof RUNBLOB_QUALITIES)[number];
export const RUNBLOB_RATIOS = ['auto', '21:9', '16:9', '4:3', '3:2', '1:1', '9:16', '3:4', '2:3', '5:4', '4:5'] as const;
export const RUNBLOB_MAX_IMAGES: Record<RunblobModel, number> = { standard: 4, pro: 8, v2: 8 };
/** "At most 20 MB": the stricter reading (10^6), so a bot that sends up to 20 MiB inline is caught. */
export const RUNBLOB_MAX_IMAGE_BYTES = 20_000_000;
export const RUNBLOB_MAX_PROMPT_CHARS = 4000;
export const RUNBLOB_DEFAULT_KEY = 'rb-test-runblob';
export const RUNBLOB_UNKNOWN_STATUS = 'weird_new_status';

export type RunblobRequestKind = 'create' | 'get' | 'list' | 'balance' | 'download';
export type RunblobCounts = Counts<RunblobRequestKind>;

export interface ValidationIssue {
  type: string;
  loc: (string | number)[];
  msg: string;
  input?: unknown;
  ctx?: Record<string, unknown>;
}

export interface RunblobCreateInfo {
  taskUuid: string;
  apiKey: string;
  prompt: string;
  model: RunblobModel;
  quality: RunblobQuality;
  aspectRatio: string;
  temperature: number;
  images: string[];
  callbackUrl?: string;
  body: unknown;
}

export interface RunblobCallbackOptions {
  mode?: 'once' | 'twice' | 'drop';
  delayMs?: number;
  /** Gap between the first delivery and its duplicate (mode 'twice'); default 20 ms. */
  duplicateGapMs?: number;
  /** Extra attempts after a non-2xx answer or timeout; default 0. */
  retries?: number;
  retryDelayMs?: number;
  /** The receiver must answer 2xx within this; default 5000 (documented). */
  timeoutMs?: number;
}

export interface FakeRunblobOptions {
  /** Accepted keys; default [RUNBLOB_DEFAULT_KEY]. */
  apiKeys?: string[];
  durationMs?: number | ((info: RunblobCreateInfo) => number);
  pendingMs?: number | ((info: RunblobCreateInfo, durationMs: number) => number);
  /** Default `outcomeFromPrompt` ([fail:CODE]); a failed outcome's code becomes `message`. */
  outcome?: (info: RunblobCreateInfo) => FakeOutcome;
  unknownStatus?: { status?: string; forMs: number };
  /** Default 100 USD. */
  balanceUsd?: number;
  priceUsd?: (model: RunblobModel, quality: RunblobQuality) => number;
  insufficientCreditsShape?: 'detail' | 'success-false';
  /** How a bad data-URL image is reported; default 'validation-error' (422). */
  badImageAnswer?: 'validation-error' | 'failed-task';
  callbacks?: RunblobCallbackOptions;
  /** Add undocumented fields (model, created_at) to task objects; default true. */
  extraFields?: boolean;
  noisyOutputs?: boolean;
  outputVariants?: number;
  /** Fetch URL images like the real service; failure → the task fails with INVALID_IMAGE. */
  fetchReferences?: boolean | { timeoutMs?: number };
}

/** A task as the fake keeps it: what the create said (RunblobCreateInfo), then its life. */
export interface FakeRunblobTask extends Omit<RunblobCreateInfo, 'taskUuid' | 'body'> {
  uuid: string;
  /** Charged, USD (as a number; `priceText` is what the answer said). */
  price: number;
  priceText: string;
  createdAt: number;
  processingAt: number;
  unknownUntil: number;
  endsAt: number;
  completedAt?: number;
  terminal?: 'completed' | 'failed';
  /** When a GET first reported the terminal status (detection delay = terminalSeenAt - completedAt). */
  terminalSeenAt?: number;
  outcome: FakeOutcome;
  noisy: boolean;
  resultUrl: string;
  downloads: number;
  references: ReferenceFetch[];
  callback: { mode: 'once' | 'twice' | 'drop'; delayMs: number };
}

export interface CallbackDelivery {
  taskUuid: string;
  url: string;
  body: { task_uuid: string; status: 'completed' | 'failed'; result_image_url: string | null; message: string | null };
  /** 1 = first try, 2+ = retries after a failure. */
  attempt: number;
  /** The deliberate second delivery of mode 'twice'. */
  duplicate: boolean;
  sentAt: number;
  /** Set once the receiver answered or failed. */
  done: boolean;
  status?: number;
  durationMs?: number;
  error?: string;
  /** The receiver answered 2xx within the time budget. */
  ok: boolean;
}

export interface FakeRunblob {
  /** Base URL = origin. */
  url: string;
  origin: string;
  apiKey: string;
  requests: RecordedRequest<RunblobRequestKind>[];
  counts: RunblobCounts;
  tasks: Map<string, FakeRunblobTask>;
  injectFault(spec: FaultSpec<RunblobRequestKind>): void;
  clearFaults(): void;
  pendingFaults(): number;
  setOutcome(outcome: (info: RunblobCreateInfo) => FakeOutcome): void;
  statusOf(taskUuid: string): string | undefined;
  taskJson(taskUuid: string): Record<string, unknown> | undefined;
  finishTask(taskUuid: string, outcome?: FakeOutcome): void;
  /** Delivery log, in send order. */
  callbacks: CallbackDelivery[];
  droppedCallbacks: string[];
  /** Resolves when every scheduled callback delivery has finished. */
  callbacksSettled(): Promise<void>;
  /** Settable. */
  balanceUsd: number;
  close(): Promise<void>;
}

/** Money in 1/10 000 USD so prices and balances stay exact. */
const UNITS_PER_USD = 10_000;
const toUnits = (usd: number): number => Math.round(usd * UNITS_PER_USD);
const formatUnits = (units: number): string => (units / UNITS_PER_USD).toFixed(4);

function defaultPriceUsd(model: RunblobModel, quality: RunblobQuality): number {
  if (model === 'standard') return 0.02;
  if (model === 'pro') return quality === '4k' ? 0.08 : 0.04;
  return quality === '4k' ? 0.06 : 0.03;
}

const DEFAULT_ERRORS: Record<number, unknown> = {
  400: { detail: 'Bad Request' },
  401: { error: 'Unauthorized', message: 'Invalid API key' },
  402: { detail: 'INSUFFICIENT_CREDITS' },
  404: { detail: 'Generation not found' },
  413: { detail: 'Request Entity Too Large' },
  422: { detail: [{ type: 'value_error', loc: ['body'], msg: 'Value error' }] },
  429: { detail: 'Too Many Requests' },
  500: { detail: 'Internal Server Error' },
  503: { detail: 'Service Unavailable' },
};

const quoteList = (values: readonly string[]): string => {
  const quoted = values.map((value) => `'${value}'`);
  return `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}`;
};

type ImageProblem = { code: 'INVALID_IMAGE' | 'IMAGE_TOO_LARGE' | 'UNSUPPORTED_IMAGE_FORMAT'; detail: string };

/** Checks a base64 data URL the way the service would before using it. */
export function checkDataUrl(text: string): ImageProblem | undefined {
  const match = /^data:([^;,]*)((?:;[^;,]*)*),/s.exec(text);
  if (!match) return { code: 'INVALID_IMAGE', detail: 'malformed data URL' };
  const mime = (match[1] ?? '').toLowerCase();
  if (!(match[2] ?? '').toLowerCase().split(';').includes('base64')) return { code: 'INVALID_IMAGE', detail: 'data URL must be base64' };
  if (!['image/png', 'image/jpeg', 'image/jpg', 'image/webp'].includes(mime)) {
    return { code: 'UNSUPPORTED_IMAGE_FORMAT', detail: `unsupported type ${mime || '(none)'}` };
  }
  const payload = text.slice(match[0].length);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(payload) || payload.length % 4 === 1) return { code: 'INVALID_IMAGE', detail: 'invalid base64' };
  const padding = payload.endsWith('==') ? 2 : payload.endsWith('=') ? 1 : 0;
  const bytes = Math.floor((payload.length * 3) / 4) - padding;
  if (bytes > RUNBLOB_MAX_IMAGE_BYTES) return { code: 'IMAGE_TOO_LARGE', detail: `${bytes} bytes > 20 MB (${RUNBLOB_MAX_IMAGE_BYTES} bytes)` };
  const head = Buffer.from(payload.slice(0, 64), 'base64');
  if (sniffImageType(head) === undefined) {
    return { code: 'UNSUPPORTED_IMAGE_FORMAT', detail: 'the bytes are not a PNG, JPEG or WEBP image' };
  }
  return undefined;
}

interface ParsedCreate {
  prompt: string;
  model: RunblobModel;
  quality: RunblobQuality;
  aspectRatio: string;
  temperature: number;
  images: string[];
  callbackUrl?: string;
  imageProblems: { index: number; problem: ImageProblem }[];
}

function validateCreate(req: RecordedRequest): { issues: ValidationIssue[] } | { data: ParsedCreate } {
  if (req.jsonError) {
    return { issues: [{ type: 'json_invalid', loc: ['body', 0], msg: 'JSON decode error', input: {}, ctx: { error: 'Expecting value' } }] };
  }
  if (req.body === undefined) return { issues: [{ type: 'missing', loc: ['body'], msg: 'Field required', input: null }] };
  const body = req.body;
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return { issues: [{ type: 'model_attributes_type', loc: ['body'], msg: 'Input should be a valid dictionary or object to extract fields from', input: body }] };
  }
  const fields = body as Record<string, unknown>;
  const issues: ValidationIssue[] = [];
  const present = (name: string): boolean => fields[name] !== undefined && fields[name] !== null;
  const choice = <T extends string>(name: string, allowed: readonly T[], fallback: T): T | undefined => {
    if (!present(name)) return fallback;
    const value = fields[name];
    if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
    if (typeof value !== 'string') {
      issues.push({ type: 'string_type', loc: ['body', name], msg: 'Input should be a valid string', input: value });
    } else {
      issues.push({ type: 'enum', loc: ['body', name], msg: `Input should be ${quoteList(allowed)}`, input: value, ctx: { expected: quoteList(allowed) } });
    }
    return undefined;
  };

  let prompt: string | undefined;
  if (fields['prompt'] === undefined) {
    issues.push({ type: 'missing', loc: ['body', 'prompt'], msg: 'Field required', input: body });
  } else if (typeof fields['prompt'] !== 'string') {
    issues.push({ type: 'string_type', loc: ['body', 'prompt'], msg: 'Input should be a valid string', input: fields['prompt'] });
  } else {
    const chars = [...fields['prompt']].length;
    if (chars < 1) {
      issues.push({ type: 'string_too_short', loc: ['body', 'prompt'], msg: 'String should have at least 1 character', input: fields['prompt'], ctx: { min_length: 1 } });
    } else if (chars > RUNBLOB_MAX_PROMPT_CHARS) {
      issues.push({ type: 'string_too_long', loc: ['body', 'prompt'], msg: `String should have at most ${RUNBLOB_MAX_PROMPT_CHARS} characters`, input: fields['prompt'], ctx: { max_length: RUNBLOB_MAX_PROMPT_CHARS } });
    } else {
      prompt = fields['prompt'];
    }
  }
  const model = choice('model', RUNBLOB_MODELS, 'standard');
  const quality = choice('quality', RUNBLOB_QUALITIES, 'standard');
  const aspectRatio = choice('aspect_ratio', RUNBLOB_RATIOS, 'auto');

  let temperature: number | undefined = 0.7;
  if (present('temperature')) {
    const value = fields['temperature'];
    temperature = undefined;
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      issues.push({ type: 'float_type', loc: ['body', 'temperature'], msg: 'Input should be a valid number', input: value });
    } else if (value < 0) {
      issues.push({ type: 'greater_than_equal', loc: ['body', 'temperature'], msg: 'Input should be greater than or equal to 0', input: value, ctx: { ge: 0 } });
    } else if (value > 1) {
      issues.push({ type: 'less_than_equal', loc: ['body', 'temperature'], msg: 'Input should be less than or equal to 1', input: value, ctx: { le: 1 } });
    } else {
      temperature = value;
    }
  }

  const images: string[] = [];
  const imageProblems: { index: number; problem: ImageProblem }[] = [];
  if (present('images')) {
    const value = fields['images'];
    if (!Array.isArray(value)) {
      issues.push({ type: 'list_type', loc: ['body', 'images'], msg: 'Input should be a valid list', input: value });
    } else {
      const max = model ? RUNBLOB_MAX_IMAGES[model] : Number.POSITIVE_INFINITY;
      if (value.length > max) {
        issues.push({
          type: 'too_long',
          loc: ['body', 'images'],
          msg: `List should have at most ${max} items after validation, not ${value.length}`,
          input: value.map((item) => (typeof item === 'string' ? item.slice(0, 64) : item)),
          ctx: { field_type: 'List', max_length: max, actual_length: value.length },
        });
      }
      for (const [index, item] of value.entries()) {
        if (typeof item !== 'string') {
          issues.push({ type: 'string_type', loc: ['body', 'images', index], msg: 'Input should be a valid string', input: item });
        } else if (item.startsWith('data:')) {
          const problem = checkDataUrl(item);
          if (problem) imageProblems.push({ index, problem });
          images.push(item);
        } else if (isHttpUrl(item)) {
          images.push(item);
        } else {
          issues.push({ type: 'value_error', loc: ['body', 'images', index], msg: 'Value error, each image must be an http(s) URL or a base64 data URL', input: item.slice(0, 64) });
        }
      }
    }
  }

  let callbackUrl: string | undefined;
  if (present('callback_url')) {
    const value = fields['callback_url'];
    if (typeof value !== 'string') {
      issues.push({ type: 'string_type', loc: ['body', 'callback_url'], msg: 'Input should be a valid string', input: value });
    } else if (!isHttpUrl(value)) {
      issues.push({ type: 'url_parsing', loc: ['body', 'callback_url'], msg: 'Input should be a valid URL', input: value });
    } else {
      callbackUrl = value;
    }
  }

  if (issues.length === 0 && model === 'standard' && quality !== 'standard') {
    issues.push({ type: 'value_error', loc: ['body'], msg: `Value error, quality '${quality}' requires model 'pro' or 'v2'`, input: body });
  }
  if (issues.length > 0 || prompt === undefined || !model || !quality || !aspectRatio || temperature === undefined) return { issues };
  return {
    data: { prompt, model, quality, aspectRatio, temperature, images, ...(callbackUrl ? { callbackUrl } : {}), imageProblems },
  };
}

const RESOLUTION_OF_QUALITY: Record<RunblobQuality, OutputResolution> = { standard: '1K', '2k': '2K', '4k': '4K' };

export async function startFakeRunblob(opts: FakeRunblobOptions = {}): Promise<FakeRunblob> {
  const apiKeys = opts.apiKeys ?? [RUNBLOB_DEFAULT_KEY];
  if (apiKeys.length === 0) throw new Error('fake RunBlob: apiKeys must not be empty');
  const priceUsd = opts.priceUsd ?? defaultPriceUsd;
  const callbackOptions = opts.callbacks ?? {};
  const callbackTimeoutMs = callbackOptions.timeoutMs ?? 5_000;
  const referenceTimeoutMs = typeof opts.fetchReferences === 'object' ? (opts.fetchReferences.timeoutMs ?? 5_000) : 5_000;
  let decideOutcome = opts.outcome ?? outcomeFromPrompt;
  let balanceUnits = toUnits(opts.balanceUsd ?? 100);
  const tasks = new Map<string, FakeRunblobTask>();
  const tasksByFile = new Map<string, FakeRunblobTask>();
  const referenceFetches = new Map<string, Promise<void>>();
  const callbacks: CallbackDelivery[] = [];
  const droppedCallbacks: string[] = [];
  const pendingCallbacks = new Set<Promise<void>>();
  const callbackAgent = new Agent({ keepAliveTimeout: 1_000 });
  const closing = new AbortController();

  const statusOf = (task: FakeRunblobTask, now = Date.now()): string => {
    if (task.terminal) return task.terminal;
    if (now < task.processingAt) return 'pending';
    if (now < task.unknownUntil) return opts.unknownStatus?.status ?? RUNBLOB_UNKNOWN_STATUS;
    return 'processing';
  };

  const taskJson = (task: FakeRunblobTask): Record<string, unknown> => {
    const json: Record<string, unknown> = {
      task_uuid: task.uuid,
      status: statusOf(task),
      prompt: task.prompt,
      result_image_url: task.terminal === 'completed' ? task.resultUrl : null,
      message: task.terminal === 'failed' && task.outcome.status === 'failed' ? task.outcome.code : null,
    };
    if (opts.extraFields !== false) {
      json['model'] = task.model;
      json['created_at'] = new Date(task.createdAt).toISOString();
    }
    return json;
  };

  const deliverOnce = async (task: FakeRunblobTask, attempt: number, duplicate: boolean): Promise<CallbackDelivery> => {
    const delivery: CallbackDelivery = {
      taskUuid: task.uuid,
      url: task.callbackUrl!,
      body: {
        task_uuid: task.uuid,
        status: task.terminal!,
        result_image_url: task.terminal === 'completed' ? task.resultUrl : null,
        message: task.terminal === 'failed' && task.outcome.status === 'failed' ? task.outcome.code : null,
      },
      attempt,
      duplicate,
      sentAt: Date.now(),
      done: false,
      ok: false,
    };
    callbacks.push(delivery);
    try {
      const response = await undiciFetch(delivery.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'RunBlob-Webhook/1.0' },
        body: JSON.stringify(delivery.body),
        dispatcher: callbackAgent,
        signal: AbortSignal.any([AbortSignal.timeout(callbackTimeoutMs), closing.signal]),
      });
      delivery.status = response.status;
      delivery.durationMs = Date.now() - delivery.sentAt;
      delivery.ok = response.ok && delivery.durationMs <= callbackTimeoutMs;
      await response.arrayBuffer().catch(() => undefined);
    } catch (error) {
      delivery.durationMs = Date.now() - delivery.sentAt;
      delivery.error = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    }
    delivery.done = true;
    return delivery;
  };

  const deliverWithRetries = async (task: FakeRunblobTask, duplicate: boolean): Promise<void> => {
    const retries = callbackOptions.retries ?? 0;
    for (let attempt = 1; attempt <= retries + 1 && !harness.closed; attempt++) {
      const delivery = await deliverOnce(task, attempt, duplicate);
      if (delivery.ok) return;
      if (attempt <= retries) await harness.sleep(callbackOptions.retryDelayMs ?? 200);
    }
  };

  const sendCallbacks = (task: FakeRunblobTask): void => {
    if (!task.callbackUrl) return;
    if (task.callback.mode === 'drop') {
      droppedCallbacks.push(task.uuid);
      return;
    }
    const sending = (async () => {
      if (task.callback.delayMs > 0) await harness.sleep(task.callback.delayMs);
      if (harness.closed) return;
      await deliverWithRetries(task, false);
      if (task.callback.mode === 'twice' && !harness.closed) {
        await harness.sleep(callbackOptions.duplicateGapMs ?? 20);
        if (!harness.closed) await deliverWithRetries(task, true);
      }
    })();
    pendingCallbacks.add(sending);
    void sending.finally(() => pendingCallbacks.delete(sending));
  };

  const finish = (task: FakeRunblobTask, outcome?: FakeOutcome): void => {
    if (task.terminal) return;
    if (outcome) task.outcome = outcome;
    task.terminal = task.outcome.status === 'succeeded' ? 'completed' : 'failed';
    task.completedAt = Date.now();
    if (task.terminal === 'failed') balanceUnits += toUnits(task.price);
    sendCallbacks(task);
  };

  const authorize = (req: RecordedRequest<RunblobRequestKind>): Answer | string => {
    const key = bearerKey(req.headers);
    if (!key || !apiKeys.includes(key)) return { status: 401, json: { error: 'Unauthorized', message: 'Invalid API key' } };
    return key;
  };

  const create = (req: RecordedRequest<RunblobRequestKind>, apiKey: string): Answer => {
    const validated = validateCreate(req);
    if ('issues' in validated) return { status: 422, json: { detail: validated.issues } };
    const data = validated.data;
    if (data.imageProblems.length > 0 && opts.badImageAnswer !== 'failed-task') {
      return {
        status: 422,
        json: {
          detail: data.imageProblems.map(({ index, problem }) => ({
            type: 'value_error',
            loc: ['body', 'images', index],
            msg: `Value error, ${problem.code}: ${problem.detail}`,
            input: (data.images[index] ?? '').slice(0, 64),
          })),
        },
      };
    }
    const price = priceUsd(data.model, data.quality);
    if (balanceUnits < toUnits(price)) {
      return {
        status: 402,
        json: opts.insufficientCreditsShape === 'success-false' ? { success: false, message: 'INSUFFICIENT_CREDITS' } : { detail: 'INSUFFICIENT_CREDITS' },
      };
    }
    const uuid = randomUUID();
    const info: RunblobCreateInfo = {
      taskUuid: uuid,
      apiKey,
      prompt: data.prompt,
      model: data.model,
      quality: data.quality,
      aspectRatio: data.aspectRatio,
      temperature: data.temperature,
      images: data.images,
      ...(data.callbackUrl ? { callbackUrl: data.callbackUrl } : {}),
      body: req.body,
    };
    const markers = parsePromptMarkers(data.prompt);
    const duration = markers.durationMs ?? (typeof opts.durationMs === 'function' ? opts.durationMs(info) : (opts.durationMs ?? defaultDurationMs(uuid)));
    const pending = Math.min(duration, typeof opts.pendingMs === 'function' ? opts.pendingMs(info, duration) : (opts.pendingMs ?? Math.round(duration * 0.3)));
    const unknownMs = markers.unknownStatusMs ?? opts.unknownStatus?.forMs ?? 0;
    const now = Date.now();
    const created = new Date(now);
    const filePath = `/nanobanana/outputs/${created.getUTCFullYear()}/${String(created.getUTCMonth() + 1).padStart(2, '0')}/${uuid}.png`;
    const firstProblem = data.imageProblems[0]?.problem;
    const task: FakeRunblobTask = {
      uuid,
      apiKey,
      prompt: data.prompt,
      model: data.model,
      quality: data.quality,
      aspectRatio: data.aspectRatio,
      temperature: data.temperature,
      images: data.images,
      ...(data.callbackUrl ? { callbackUrl: data.callbackUrl } : {}),
      price,
      priceText: formatUnits(toUnits(price)),
      createdAt: now,
      processingAt: now + pending,
      unknownUntil: now + pending + unknownMs,
      endsAt: now + Math.max(duration, pending + unknownMs),
      outcome: firstProblem ? { status: 'failed', code: firstProblem.code } : decideOutcome(info),
      noisy: opts.noisyOutputs === true || markers.big,
      resultUrl: `${harness.origin}${filePath}`,
      downloads: 0,
      references: [],
      callback: {
        mode: markers.callback?.mode ?? callbackOptions.mode ?? 'once',
        delayMs: markers.callback?.delayMs ?? callbackOptions.delayMs ?? 0,
      },
    };
    tasks.set(uuid, task);
    tasksByFile.set(filePath, task);
    balanceUnits -= toUnits(price);

    const urls = data.images.filter((image) => !image.startsWith('data:'));
    if (opts.fetchReferences && urls.length > 0) {
      referenceFetches.set(
        uuid,
        Promise.all(urls.map((url) => fetchReference(url, referenceTimeoutMs))).then((results) => {
          for (const { data: bytes, ...result } of results) {
            task.references.push(result);
            const usable = result.ok && bytes !== undefined && sniffImageType(bytes) !== undefined;
            if (!usable && task.outcome.status === 'succeeded') task.outcome = { status: 'failed', code: 'INVALID_IMAGE' };
          }
        }),
      );
    }
    harness.schedule(task.endsAt - now, () => {
      const fetching = referenceFetches.get(uuid);
      if (fetching) void fetching.then(() => finish(task));
      else finish(task);
    });
    return { status: 200, json: { task_uuid: uuid, status: 'pending', price: task.priceText } };
  };

  const list = (req: RecordedRequest<RunblobRequestKind>, apiKey: string): Answer => {
    const issues: ValidationIssue[] = [];
    const integer = (name: 'limit' | 'offset', fallback: number, min: number, max: number): number => {
      const text = req.query[name];
      if (text === undefined) return fallback;
      if (!/^-?\d+$/.test(text)) {
        issues.push({ type: 'int_parsing', loc: ['query', name], msg: 'Input should be a valid integer, unable to parse string as an integer', input: text });
        return fallback;
      }
      const value = Number(text);
      if (value < min) issues.push({ type: 'greater_than_equal', loc: ['query', name], msg: `Input should be greater than or equal to ${min}`, input: text, ctx: { ge: min } });
      if (value > max) issues.push({ type: 'less_than_equal', loc: ['query', name], msg: `Input should be less than or equal to ${max}`, input: text, ctx: { le: max } });
      return value;
    };
    const limit = integer('limit', 20, 1, 100);
    const offset = integer('offset', 0, 0, Number.MAX_SAFE_INTEGER);
    if (issues.length > 0) return { status: 422, json: { detail: issues } };
    const mine = [...tasks.values()].filter((task) => task.apiKey === apiKey).reverse();
    return { status: 200, json: mine.slice(offset, offset + limit).map(taskJson) };
  };

  const download = async (pathname: string): Promise<Answer> => {
    const task = tasksByFile.get(pathname);
    if (!task || task.terminal !== 'completed') return { status: 404, raw: 'Not Found' };
    task.downloads += 1;
    const png = await outputPng({
      taskId: task.uuid,
      aspectRatio: task.aspectRatio,
      resolution: RESOLUTION_OF_QUALITY[task.quality],
      noisy: task.noisy,
      ...(opts.outputVariants !== undefined ? { variants: opts.outputVariants } : {}),
    });
    return { status: 200, raw: png, headers: { 'content-type': 'image/png' } };
  };

  const harness = await startHarness<RunblobRequestKind>({
    kinds: ['create', 'get', 'list', 'balance', 'download'],
    idFields: ['task_uuid'],
    classify(method, pathname) {
      if (method === 'POST' && pathname === '/v1/gemini/generate') return 'create';
      if (method === 'GET' && pathname === '/v1/gemini/generations') return 'list';
      if (method === 'GET' && /^\/v1\/gemini\/generations\/[^/]+$/.test(pathname)) return 'get';
      if (method === 'GET' && pathname === '/v1/data/balance') return 'balance';
      if (method === 'GET' && pathname.startsWith('/nanobanana/outputs/')) return 'download';
      return 'other';
    },
    defaultErrorBody(status) {
      if (status === 402 && opts.insufficientCreditsShape === 'success-false') return { success: false, message: 'INSUFFICIENT_CREDITS' };
      return DEFAULT_ERRORS[status] ?? { detail: `HTTP ${status}` };
    },
    async handle(req) {
      if (req.kind === 'download') return download(req.pathname);
      const known = ['/v1/gemini/generate', '/v1/gemini/generations', '/v1/data/balance'];
      if (req.kind === 'other') {
        const exists = known.includes(req.pathname) || /^\/v1\/gemini\/generations\/[^/]+$/.test(req.pathname);
        return exists ? { status: 405, json: { detail: 'Method Not Allowed' } } : { status: 404, json: { detail: 'Not Found' } };
      }
      const auth = authorize(req);
      if (typeof auth !== 'string') return auth;
      switch (req.kind) {
        case 'create':
          return create(req, auth);
        case 'list':
          return list(req, auth);
        case 'balance':
          return { status: 200, json: { balance: formatUnits(balanceUnits) } };
        case 'get': {
          const uuid = safeDecode(req.pathname.slice('/v1/gemini/generations/'.length));
          const task = tasks.get(uuid);
          if (!task || task.apiKey !== auth) return { status: 404, json: { detail: 'Generation not found' } };
          if (task.terminal && task.terminalSeenAt === undefined) task.terminalSeenAt = Date.now();
          return { status: 200, json: taskJson(task) };
        }
      }
    },
  });

  harness.onClose(async () => {
    closing.abort();
    await Promise.allSettled([...pendingCallbacks]);
    await callbackAgent.destroy();
  });

  return {
    url: harness.origin,
    origin: harness.origin,
    apiKey: apiKeys[0]!,
    requests: harness.requests,
    counts: harness.counts,
    tasks,
    injectFault: harness.injectFault,
    clearFaults: harness.clearFaults,
    pendingFaults: harness.pendingFaults,
    setOutcome(outcome) {
      decideOutcome = outcome;
    },
    statusOf(taskUuid) {
      const task = tasks.get(taskUuid);
      return task ? statusOf(task) : undefined;
    },
    taskJson(taskUuid) {
      const task = tasks.get(taskUuid);
      return task ? taskJson(task) : undefined;
    },
    finishTask(taskUuid, outcome) {
      const task = tasks.get(taskUuid);
      if (!task) throw new Error(`fake RunBlob: no task ${taskUuid}`);
      finish(task, outcome);
    },
    callbacks,
    droppedCallbacks,
    async callbacksSettled() {
      while (pendingCallbacks.size > 0) await Promise.allSettled([...pendingCallbacks]);
    },
    get balanceUsd() {
      return balanceUnits / UNITS_PER_USD;
    },
    set balanceUsd(value: number) {
      balanceUnits = toUnits(value);
    },
    close: harness.close,
  };
}
