/**
 * A fake Runbase (https://runbase.net/api/v1), written from the provider's documentation (docs/providers.md)
 * only. node:http on 127.0.0.1:0.
 *
 *   const fake = await startFakeRunbase({ durationMs: 100 });
 *   // client: baseUrl = fake.url (".../api/v1"), key = fake.apiKey
 *   await fake.close();
 *
 * Endpoints
 *   POST {url}/runs        create; body {model, input:{prompt, aspect_ratio?, resolution?, image_urls?}}
 *                          → 200 {id:"run_…", model, status:"pending", costUsd}
 *   GET  {url}/runs/{id}   → run object {id, model, status, costUsd, createdAt, output?, completedAt?, error?}
 *   GET  {origin}/files/generated/{name}.png   the output (no auth, like a CDN link); generated lazily
 *
 * Validation (zod, strict: unknown fields are invalid_input), per model:
 *   google/nano-banana-pro  prompt, aspect_ratio (1:1 2:3 3:2 3:4 4:3 4:5 5:4 9:16 16:9 21:9 auto),
 *                           resolution (1K 2K 4K), image_urls
 *   google/nano-banana-2    the same plus ratios 1:4 1:8 4:1 8:1
 *   google/nano-banana      prompt, aspect_ratio (the eleven), image_urls (≤ 10); no resolution
 *   prompt: non-empty string (no maximum is documented); image_urls: http(s) URLs only (a data:
 *   URL is invalid_input: base64 is not documented). Defaults: aspect_ratio auto (→ 1:1 output),
 *   resolution 1K. Output pixel sizes: see png.ts `outputSize`.
 *
 * Checks, in order → error envelope {"error":{"message","code"}}:
 *   no bearer key → 401 missing_api_key; unknown key (or keyPolicies[key].disabled) → 401 invalid_api_key;
 *   keyPolicies[key].ipNotAllowed → 403 ip_not_allowed; over the rate limit → 429 RATE_LIMITED
 *   (no Retry-After); keyPolicies[key].usageExceeded → 429 USAGE_EXCEEDED; then for creates:
 *   unparsable JSON → 400 invalid_json; model missing → missing_model; unknown model →
 *   model_not_found; input missing → missing_input; schema → invalid_input; lifetime spend of the
 *   key + cost > keyPolicies[key].spendLimitMicros → 403 api_key_spend_limit_exceeded;
 *   balance < cost → 402 insufficient_balance. GET of an unknown or another key's run → 404 run_not_found.
 *
 * Rate limit: `rateLimit.requests` per `rateLimit.windowMs` per key (default 20 / 10 000 ms),
 * sliding window over ACCEPTED requests (creates and polls together; 429s do not consume budget;
 * requests rejected by auth are not counted; requests that fail validation are). Every 429 sent
 * increments counts.rateLimited (USAGE_EXCEEDED ones also counts.usageExceeded).
 *
 * Cost (micro-USD, charged at create, refunded in full when the run fails): priceMicros(model,
 * resolution), default pro 40 000; nano-banana-2 1K 20 000 / 2K 30 000 / 4K 40 000; nano-banana 10 000.
 *
 * Lifecycle: pending for `pendingMs` (default 30 % of the duration) → processing (or, with
 * `unknownStatus`/[weird:MS], "weird_new_status" for that long first) → succeeded | failed at
 * `durationMs` (default 50–150 ms, deterministic per run id). Succeeded: output.urls = [one PNG].
 * Failed: error {message, code} or, with errorAs/failedErrorAs 'string', a plain string.
 *
 * Prompt markers (handy from chat e2e tests): [fail:CODE] fails with CODE, [big] noisy PNG
 * (4K > 10 MiB), [slow:MS] duration, [weird:MS] unknown status for MS ms.
 *
 * Fault injection / request recording: see fault.ts (kinds 'create' | 'get' | 'download').
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import {
  bearerKey,
  defaultDurationMs,
  fetchReference,
  isHttpUrl,
  safeDecode,
  outcomeFromPrompt,
  parsePromptMarkers,
  SlidingWindowLimiter,
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

export const RUNBASE_MODELS = ['google/nano-banana-pro', 'google/nano-banana-2', 'google/nano-banana'] as const;
export type RunbaseModel = (typeof RUNBASE_MODELS)[number];
export const RUNBASE_RATIOS = ['1:1', '2:3', '3:2', '3:4', '4:3', '4:5', '5:4', '9:16', '16:9', '21:9', 'auto'] as const;
export const RUNBASE_NB2_RATIOS = [...RUNBASE_RATIOS, '1:4', '1:8', '4:1', '8:1'] as const;
export const RUNBASE_RESOLUTIONS = ['1K', '2K', '4K'] as const;
export const RUNBASE_DEFAULT_KEY = 'sk-test-runbase';
export const RUNBASE_RATE_LIMIT = { requests: 20, windowMs: 10_000 } as const;
export const RUNBASE_UNKNOWN_STATUS = 'weird_new_status';

export type RunbaseRequestKind = 'create' | 'get' | 'download';
export type RunbaseCounts = Counts<RunbaseRequestKind> & { usageExceeded: number };

const imageUrl = z.string().refine(isHttpUrl, { message: 'must be an http(s) URL the service can fetch (base64/data URLs are not supported)' });
const prompt = z.string().min(1, { message: 'prompt must not be empty' });
const INPUT_SCHEMAS = {
  'google/nano-banana-pro': z.strictObject({
    prompt,
    aspect_ratio: z.enum(RUNBASE_RATIOS).optional(),
    resolution: z.enum(RUNBASE_RESOLUTIONS).optional(),
    image_urls: z.array(imageUrl).optional(),
  }),
  'google/nano-banana-2': z.strictObject({
    prompt,
    aspect_ratio: z.enum(RUNBASE_NB2_RATIOS).optional(),
    resolution: z.enum(RUNBASE_RESOLUTIONS).optional(),
    image_urls: z.array(imageUrl).optional(),
  }),
  'google/nano-banana': z.strictObject({
    prompt,
    aspect_ratio: z.enum(RUNBASE_RATIOS).optional(),
    image_urls: z.array(imageUrl).max(10, { message: 'at most 10 image_urls' }).optional(),
  }),
} as const;

export interface RunbaseCreateInfo {
  runId: string;
  apiKey: string;
  model: RunbaseModel;
  prompt: string;
  /** As sent; 'auto' when omitted. */
  aspectRatio: string;
  /** As sent; '1K' when omitted (always '1K' for google/nano-banana). */
  resolution: OutputResolution;
  imageUrls: string[];
  body: unknown;
}

export interface RunbaseKeyPolicy {
  /** Disabled key → 401 invalid_api_key. */
  disabled?: boolean;
  /** The caller's IP is not on the key's allow-list → 403 ip_not_allowed. */
  ipNotAllowed?: boolean;
  /** The key's usage quota is spent → 429 USAGE_EXCEEDED (permanent). */
  usageExceeded?: boolean;
  /** Lifetime spend limit of the key, micro-USD → 403 api_key_spend_limit_exceeded. */
  spendLimitMicros?: number;
}

export interface FakeRunbaseOptions {
  /** Accepted keys; each must start with "sk-". Default [RUNBASE_DEFAULT_KEY]. */
  apiKeys?: string[];
  durationMs?: number | ((info: RunbaseCreateInfo) => number);
  /** Time in pending; default 30 % of the duration. */
  pendingMs?: number | ((info: RunbaseCreateInfo, durationMs: number) => number);
  /** Decides each run's end; default `outcomeFromPrompt` ([fail:CODE]). */
  outcome?: (info: RunbaseCreateInfo) => FakeOutcome;
  /** Shape of a failed run's `error` unless the outcome says; default 'object'. */
  failedErrorAs?: 'object' | 'string';
  /** Report an undocumented status for `forMs` after pending (default status "weird_new_status"). */
  unknownStatus?: { status?: string; forMs: number };
  /** Default RUNBASE_RATE_LIMIT; false disables. */
  rateLimit?: { requests: number; windowMs: number } | false;
  /** Account balance in micro-USD; default unlimited. */
  balanceMicros?: number;
  priceMicros?: (model: RunbaseModel, resolution: OutputResolution) => number;
  keyPolicies?: Record<string, RunbaseKeyPolicy>;
  /** Every output noisy (4K > 10 MiB); per run with the [big] prompt marker. */
  noisyOutputs?: boolean;
  /** Distinct pixel contents (png.ts); default 4. */
  outputVariants?: number;
  /** Fetch image_urls like the real service; a fetch failure or non-image fails the run (code image_fetch_failed). */
  fetchReferences?: boolean | { timeoutMs?: number };
}

export interface FakeRunbaseRun {
  id: string;
  apiKey: string;
  model: RunbaseModel;
  /** The validated input as sent. */
  input: Record<string, unknown>;
  prompt: string;
  aspectRatio: string;
  resolution: OutputResolution;
  costUsd: number;
  createdAt: number;
  /** When it leaves pending / ends (ms since epoch, planned). */
  processingAt: number;
  unknownUntil: number;
  endsAt: number;
  completedAt?: number;
  /** Terminal status once reached. */
  terminal?: 'succeeded' | 'failed';
  /** When a GET first reported the terminal status (detection delay = terminalSeenAt - completedAt). */
  terminalSeenAt?: number;
  outcome: FakeOutcome;
  noisy: boolean;
  outputUrl: string;
  downloads: number;
  references: ReferenceFetch[];
}

export interface FakeRunbase {
  /** Base URL including /api/v1 (what the client's baseUrl is set to). */
  url: string;
  origin: string;
  /** The first accepted key. */
  apiKey: string;
  requests: RecordedRequest<RunbaseRequestKind>[];
  counts: RunbaseCounts;
  runs: Map<string, FakeRunbaseRun>;
  injectFault(spec: FaultSpec<RunbaseRequestKind>): void;
  clearFaults(): void;
  pendingFaults(): number;
  setOutcome(outcome: (info: RunbaseCreateInfo) => FakeOutcome): void;
  /** The status GET would report now (including an unknown one). */
  statusOf(runId: string): string | undefined;
  /** The run object GET would answer now. */
  runJson(runId: string): Record<string, unknown> | undefined;
  /** Ends a run now (default: its planned outcome). */
  finishRun(runId: string, outcome?: FakeOutcome): void;
  /** Account balance in micro-USD (settable). */
  balanceMicros: number;
  /** Lifetime spend of a key, micro-USD (refunds deducted). */
  spentMicros(apiKey: string): number;
  close(): Promise<void>;
}

function defaultPriceMicros(model: RunbaseModel, resolution: OutputResolution): number {
  if (model === 'google/nano-banana-pro') return 40_000;
  if (model === 'google/nano-banana-2') return { '1K': 20_000, '2K': 30_000, '4K': 40_000 }[resolution];
  return 10_000;
}

function envelope(status: number, code: string, message: string): Answer {
  return { status, json: { error: { message, code } } };
}

const DEFAULT_ERRORS: Record<number, [string, string]> = {
  400: ['invalid_input', 'Invalid input'],
  401: ['invalid_api_key', 'Invalid API key'],
  402: ['insufficient_balance', 'Insufficient balance'],
  403: ['ip_not_allowed', 'IP address not allowed for this API key'],
  404: ['run_not_found', 'Run not found'],
  413: ['payload_too_large', 'Request body too large'],
  429: ['RATE_LIMITED', 'Rate limit exceeded: 20 requests per 10 seconds'],
  500: ['internal_error', 'Internal server error'],
};

export async function startFakeRunbase(opts: FakeRunbaseOptions = {}): Promise<FakeRunbase> {
  const apiKeys = opts.apiKeys ?? [RUNBASE_DEFAULT_KEY];
  if (apiKeys.length === 0 || apiKeys.some((key) => !key.startsWith('sk-'))) {
    throw new Error('fake Runbase: apiKeys must be non-empty and start with "sk-"');
  }
  const limits = opts.rateLimit === false ? undefined : (opts.rateLimit ?? RUNBASE_RATE_LIMIT);
  const limiter = limits ? new SlidingWindowLimiter(limits.requests, limits.windowMs) : undefined;
  const priceMicros = opts.priceMicros ?? defaultPriceMicros;
  const referenceTimeoutMs = typeof opts.fetchReferences === 'object' ? (opts.fetchReferences.timeoutMs ?? 5_000) : 5_000;
  let decideOutcome = opts.outcome ?? outcomeFromPrompt;
  let balanceMicros = opts.balanceMicros ?? Number.POSITIVE_INFINITY;
  const spent = new Map<string, number>();
  const runs = new Map<string, FakeRunbaseRun>();
  const runsByFile = new Map<string, FakeRunbaseRun>();
  const referenceFetches = new Map<string, Promise<void>>();
  let usageExceeded = 0;

  const statusOf = (run: FakeRunbaseRun, now = Date.now()): string => {
    if (run.terminal) return run.terminal;
    if (now < run.processingAt) return 'pending';
    if (now < run.unknownUntil) return opts.unknownStatus?.status ?? RUNBASE_UNKNOWN_STATUS;
    return 'processing';
  };

  const runJson = (run: FakeRunbaseRun): Record<string, unknown> => {
    const json: Record<string, unknown> = {
      id: run.id,
      model: run.model,
      status: statusOf(run),
      costUsd: run.costUsd,
      createdAt: new Date(run.createdAt).toISOString(),
    };
    if (run.terminal === 'succeeded') json['output'] = { urls: [run.outputUrl] };
    if (run.completedAt !== undefined) json['completedAt'] = new Date(run.completedAt).toISOString();
    if (run.terminal === 'failed' && run.outcome.status === 'failed') {
      const message = run.outcome.message ?? `Generation failed: ${run.outcome.code}`;
      const as = run.outcome.errorAs ?? opts.failedErrorAs ?? 'object';
      json['error'] = as === 'string' ? message : { message, code: run.outcome.code };
    }
    return json;
  };

  const finish = (run: FakeRunbaseRun, outcome?: FakeOutcome): void => {
    if (run.terminal) return;
    if (outcome) run.outcome = outcome;
    run.terminal = run.outcome.status;
    run.completedAt = Date.now();
    if (run.terminal === 'failed') {
      balanceMicros += run.costUsd;
      spent.set(run.apiKey, (spent.get(run.apiKey) ?? 0) - run.costUsd);
    }
  };

  const authorize = (req: RecordedRequest<RunbaseRequestKind>, ip: string): Answer | string => {
    const key = bearerKey(req.headers);
    if (!key) return envelope(401, 'missing_api_key', 'Missing API key: send Authorization: Bearer sk-…');
    const policy = opts.keyPolicies?.[key];
    if (!apiKeys.includes(key) || policy?.disabled) return envelope(401, 'invalid_api_key', 'Invalid API key');
    if (policy?.ipNotAllowed) return envelope(403, 'ip_not_allowed', `IP address ${ip} is not allowed for this API key`);
    if (limiter && !limiter.tryAcquire(key, Date.now())) {
      return envelope(429, 'RATE_LIMITED', `Rate limit exceeded: ${limiter.requests} requests per ${limiter.windowMs / 1000} seconds`);
    }
    if (policy?.usageExceeded) {
      usageExceeded += 1;
      return envelope(429, 'USAGE_EXCEEDED', 'API key usage quota exceeded');
    }
    return key;
  };

  const create = (req: RecordedRequest<RunbaseRequestKind>, apiKey: string): Answer => {
    if (req.jsonError) return envelope(400, 'invalid_json', 'Request body is not valid JSON');
    if (req.body === undefined) return envelope(400, 'invalid_json', 'Request body is empty');
    const body = req.body;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      return envelope(400, 'invalid_input', 'Request body must be a JSON object');
    }
    const { model, input, ...extra } = body as Record<string, unknown>;
    if (model === undefined || model === null || model === '') return envelope(400, 'missing_model', 'model is required');
    if (typeof model !== 'string') return envelope(400, 'invalid_input', 'model must be a string');
    if (!(RUNBASE_MODELS as readonly string[]).includes(model)) return envelope(400, 'model_not_found', `Model not found: ${model}`);
    if (input === undefined || input === null) return envelope(400, 'missing_input', 'input is required');
    const extraKeys = Object.keys(extra);
    if (extraKeys.length > 0) return envelope(400, 'invalid_input', `Unrecognized field(s): ${extraKeys.join(', ')}`);
    const runModel = model as RunbaseModel;
    const parsed = INPUT_SCHEMAS[runModel].safeParse(input);
    if (!parsed.success) {
      const details = parsed.error.issues.map((issue) => `${['input', ...issue.path.map(String)].join('.')}: ${issue.message}`);
      return envelope(400, 'invalid_input', details.join('; '));
    }
    const data = parsed.data as { prompt: string; aspect_ratio?: string; resolution?: OutputResolution; image_urls?: string[] };
    const resolution = data.resolution ?? '1K';
    const cost = priceMicros(runModel, resolution);
    const limit = opts.keyPolicies?.[apiKey]?.spendLimitMicros;
    if (limit !== undefined && (spent.get(apiKey) ?? 0) + cost > limit) {
      return envelope(403, 'api_key_spend_limit_exceeded', 'API key spend limit exceeded');
    }
    if (balanceMicros < cost) return envelope(402, 'insufficient_balance', 'Insufficient balance');

    const id = `run_${randomBytes(12).toString('hex')}`;
    const info: RunbaseCreateInfo = {
      runId: id,
      apiKey,
      model: runModel,
      prompt: data.prompt,
      aspectRatio: data.aspect_ratio ?? 'auto',
      resolution,
      imageUrls: data.image_urls ?? [],
      body,
    };
    const markers = parsePromptMarkers(data.prompt);
    const duration = markers.durationMs ?? (typeof opts.durationMs === 'function' ? opts.durationMs(info) : (opts.durationMs ?? defaultDurationMs(id)));
    const pending = Math.min(duration, typeof opts.pendingMs === 'function' ? opts.pendingMs(info, duration) : (opts.pendingMs ?? Math.round(duration * 0.3)));
    const unknownMs = markers.unknownStatusMs ?? opts.unknownStatus?.forMs ?? 0;
    const now = Date.now();
    const fileName = `${randomBytes(16).toString('hex')}.png`;
    const run: FakeRunbaseRun = {
      id,
      apiKey,
      model: runModel,
      input: input as Record<string, unknown>,
      prompt: data.prompt,
      aspectRatio: info.aspectRatio,
      resolution,
      costUsd: cost,
      createdAt: now,
      processingAt: now + pending,
      unknownUntil: now + pending + unknownMs,
      endsAt: now + Math.max(duration, pending + unknownMs),
      outcome: decideOutcome(info),
      noisy: opts.noisyOutputs === true || markers.big,
      outputUrl: `${harness.origin}/files/generated/${fileName}`,
      downloads: 0,
      references: [],
    };
    runs.set(id, run);
    runsByFile.set(fileName, run);
    balanceMicros -= cost;
    spent.set(apiKey, (spent.get(apiKey) ?? 0) + cost);

    if (opts.fetchReferences && info.imageUrls.length > 0) {
      referenceFetches.set(
        id,
        Promise.all(info.imageUrls.map((url) => fetchReference(url, referenceTimeoutMs))).then((results) => {
          for (const [index, { data: bytes, ...result }] of results.entries()) {
            run.references.push(result);
            const usable = result.ok && bytes !== undefined && sniffImageType(bytes) !== undefined;
            if (!usable && run.outcome.status === 'succeeded') {
              run.outcome = { status: 'failed', code: 'image_fetch_failed', message: `Could not fetch a usable image from image_urls[${index}]` };
            }
          }
        }),
      );
    }
    harness.schedule(run.endsAt - now, () => {
      const fetching = referenceFetches.get(id);
      if (fetching) void fetching.then(() => finish(run));
      else finish(run);
    });
    return { status: 200, json: { id, model: runModel, status: 'pending', costUsd: cost } };
  };

  const download = async (pathname: string): Promise<Answer> => {
    const name = pathname.slice('/files/generated/'.length);
    const run = runsByFile.get(name);
    if (!run || run.terminal !== 'succeeded') return { status: 404, raw: 'Not Found' };
    run.downloads += 1;
    const png = await outputPng({
      taskId: run.id,
      aspectRatio: run.aspectRatio,
      resolution: run.resolution,
      noisy: run.noisy,
      ...(opts.outputVariants !== undefined ? { variants: opts.outputVariants } : {}),
    });
    return { status: 200, raw: png, headers: { 'content-type': 'image/png' } };
  };

  const harness = await startHarness<RunbaseRequestKind>({
    kinds: ['create', 'get', 'download'],
    idFields: ['id'],
    classify(method, pathname) {
      if (method === 'POST' && pathname === '/api/v1/runs') return 'create';
      if (method === 'GET' && /^\/api\/v1\/runs\/[^/]+$/.test(pathname)) return 'get';
      if (method === 'GET' && pathname.startsWith('/files/generated/')) return 'download';
      return 'other';
    },
    defaultErrorBody(status) {
      const [code, message] = DEFAULT_ERRORS[status] ?? ['error', `HTTP ${status}`];
      return { error: { message, code } };
    },
    async handle(req, client) {
      if (req.kind === 'download') return download(req.pathname);
      if (!req.pathname.startsWith('/api/v1/')) return { status: 404, raw: 'Not Found' };
      const auth = authorize(req, client.ip);
      if (typeof auth !== 'string') return auth;
      if (req.kind === 'create') return create(req, auth);
      if (req.kind === 'get') {
        const id = safeDecode(req.pathname.slice('/api/v1/runs/'.length));
        const run = runs.get(id);
        if (!run || run.apiKey !== auth) return envelope(404, 'run_not_found', 'Run not found');
        if (run.terminal && run.terminalSeenAt === undefined) run.terminalSeenAt = Date.now();
        return { status: 200, json: runJson(run) };
      }
      // There is no cancel, list or webhook endpoint.
      if (/^\/api\/v1\/runs(\/[^/]+)?$/.test(req.pathname)) return envelope(405, 'method_not_allowed', `${req.method} is not allowed here`);
      return envelope(404, 'not_found', 'Not found');
    },
  });

  const counts = harness.counts as RunbaseCounts;
  Object.defineProperty(counts, 'usageExceeded', { enumerable: true, get: () => usageExceeded });

  return {
    url: `${harness.origin}/api/v1`,
    origin: harness.origin,
    apiKey: apiKeys[0]!,
    requests: harness.requests,
    counts,
    runs,
    injectFault: harness.injectFault,
    clearFaults: harness.clearFaults,
    pendingFaults: harness.pendingFaults,
    setOutcome(outcome) {
      decideOutcome = outcome;
    },
    statusOf(runId) {
      const run = runs.get(runId);
      return run ? statusOf(run) : undefined;
    },
    runJson(runId) {
      const run = runs.get(runId);
      return run ? runJson(run) : undefined;
    },
    finishRun(runId, outcome) {
      const run = runs.get(runId);
      if (!run) throw new Error(`fake Runbase: no run ${runId}`);
      finish(run, outcome);
    },
    get balanceMicros() {
      return balanceMicros;
    },
    set balanceMicros(value: number) {
      balanceMicros = value;
    },
    spentMicros: (apiKey) => spent.get(apiKey) ?? 0,
    close: harness.close,
  };
}
