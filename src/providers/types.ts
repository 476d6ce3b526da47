/**
 * The common face of both providers. Each client maps the shared task input to its own API and
 * reports a common status. One task produces one image (RunBlob: one task per image; Runbase:
 * one run per image, its output.urls[0]).
 */

export const PROVIDERS = ['runbase', 'runblob'] as const;
export type ProviderName = (typeof PROVIDERS)[number];

/** Output resolutions in the common task input (RunBlob maps them to its `quality`). */
export const RESOLUTIONS = ['1K', '2K', '4K'] as const;
export type Resolution = (typeof RESOLUTIONS)[number];

export const TASK_STATUSES = ['pending', 'running', 'succeeded', 'failed'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const TERMINAL_TASK_STATUSES: ReadonlySet<TaskStatus> = new Set(['succeeded', 'failed']);

/** A reference as the provider receives it: a URL it can fetch, or a data URL (traits.inlineReferences). */
export type ProviderReference = { kind: 'url'; url: string } | { kind: 'data'; dataUrl: string };

export interface TaskInput {
  prompt: string;
  /** The provider's model id (ModelSpec.providerModel). */
  model: string;
  /** An aspect ratio such as '16:9' or 'auto'; each client checks it against its API's documented list. */
  ratio: string;
  resolution: Resolution;
  references: ProviderReference[];
  /** 0–1; RunBlob's temperature. Ignored by Runbase. */
  creativity?: number;
  /** Only for a client whose traits say `callbacks`: the webhook to call on completion. */
  callbackUrl?: string;
}

export interface CreatedTask {
  taskId: string;
  status: TaskStatus;
  /** Cost in USD as reported at creation (Runbase costUsd / 1e6, RunBlob price). */
  costUsd?: number;
}

export interface TaskSnapshot {
  taskId: string;
  status: TaskStatus;
  /** Output image URLs (succeeded only). */
  outputUrls: string[];
  costUsd?: number;
  /** For failed tasks: the provider's code (e.g. MODERATION_FAILED) and message. */
  failure?: { code: string; message: string };
}

/**
 * Called before every HTTP attempt (retries included) so a per-key rate budget sees every request
 * (Runbase: 20 requests / 10 s per key, creates and polls together). Resolves when the request may go.
 */
export type RequestGate = (kind: 'create' | 'poll', signal?: AbortSignal) => Promise<void>;

export interface RequestOptions {
  signal?: AbortSignal;
  gate?: RequestGate;
}

/**
 * What the engine needs to know about a provider, set by each client, so that the engine never
 * branches on a provider's name (docs/providers.md).
 */
export interface ProviderTraits {
  /**
   * The request budget of one API key, creates and polls together. `sharedAcrossProcesses`: the
   * limit is the provider's own, whoever sends, so every process using the key must count its
   * requests in the shared store (docs/rate-budget.md).
   */
  readonly rateLimit: { readonly requests: number; readonly windowMs: number; readonly sharedAcrossProcesses: boolean };
  /** Whether createTask takes a `callbackUrl` the provider calls when the task ends. */
  readonly callbacks: boolean;
  /**
   * Reference images sent inline (base64 data URLs), and the largest image so sent; undefined
   * when the provider only takes URLs it fetches itself.
   */
  readonly inlineReferences: { readonly maxBytes: number } | undefined;
}

export interface ProviderClient {
  readonly name: ProviderName;
  readonly traits: ProviderTraits;
  /** Groups rate-limit budgets: one poll scheduler per key id (a hash, never the key itself). */
  readonly keyId: string;
  /** Billable: retried only when the request surely did not land (429 RATE_LIMITED, refused connection). */
  createTask(input: TaskInput, opts?: RequestOptions): Promise<CreatedTask>;
  /** Idempotent: retried on network errors, 408, 429, 5xx. */
  getTask(taskId: string, opts?: RequestOptions): Promise<TaskSnapshot>;
}

/** What a provider client reports after each HTTP attempt (src/metrics.ts counts it). */
export interface ProviderAttempt {
  provider: ProviderName;
  /** The client's keyId: a short hash of the API key, never the key. */
  keyId: string;
  kind: 'create' | 'poll';
  seconds: number;
  /** The HTTP status of a failed attempt's answer; undefined on success or a transport failure. */
  status: number | undefined;
  /** The catalogue code of the ProviderError the attempt ended with, if any. */
  errorCode: string | undefined;
}

/** Where a client reports its attempts (the app's Metrics); optional for the clients. */
export interface ProviderMetrics {
  providerAttempt(a: ProviderAttempt): void;
}
