/**
 * The provider clients the bot runs with: one per configured API key. Everything a client needs
 * comes from the validated config and the injected dependencies.
 */
import type { Dispatcher } from 'undici';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import type { ProviderClient, ProviderMetrics } from './types.ts';
import type { ProviderClientOptions } from './http.ts';
import type { Sleep } from './retry.ts';
import { RunbaseClient } from './runbase/client.ts';
import { RunblobClient } from './runblob/client.ts';

export * from './types.ts';
export * from './errors.ts';
export { withRetry, isRetryable, retryDelayMs, DEFAULT_RETRY_POLICY } from './retry.ts';
export type { CallKind, RetryOptions, RetryPolicy, RetryInfo, Sleep } from './retry.ts';
export { keyIdOf, DEFAULT_TIMEOUT_MS, type ProviderClientOptions } from './http.ts';
export { RunbaseClient } from './runbase/client.ts';
export { RunblobClient } from './runblob/client.ts';

export interface ProviderDeps {
  log: Logger;
  /** Shared by every client when given (tests: a MockAgent); otherwise each client owns a keep-alive Agent. */
  dispatcher?: Dispatcher;
  timeoutMs?: number;
  sleep?: Sleep;
  random?: () => number;
  maxAttempts?: number;
  /** Counts every provider request (the app's Metrics, src/metrics.ts). */
  metrics?: ProviderMetrics;
}

export type ConfiguredProviderClient = (RunbaseClient | RunblobClient) & ProviderClient;

/** One client per configured key, Runbase first. Empty when no provider key is set. */
export function createProviderClients(
  config: Pick<Config, 'RUNBASE_API_KEY' | 'RUNBASE_API_URL' | 'RUNBLOB_API_KEY' | 'RUNBLOB_API_URL'>,
  deps: ProviderDeps,
): ConfiguredProviderClient[] {
  const common = (apiKey: string, baseUrl: string): ProviderClientOptions => {
    const opts: ProviderClientOptions = { apiKey, baseUrl, log: deps.log };
    if (deps.dispatcher) opts.dispatcher = deps.dispatcher;
    if (deps.timeoutMs !== undefined) opts.timeoutMs = deps.timeoutMs;
    if (deps.sleep) opts.sleep = deps.sleep;
    if (deps.random) opts.random = deps.random;
    if (deps.maxAttempts !== undefined) opts.maxAttempts = deps.maxAttempts;
    if (deps.metrics) opts.metrics = deps.metrics;
    return opts;
  };
  const clients: ConfiguredProviderClient[] = [];
  if (config.RUNBASE_API_KEY) {
    clients.push(new RunbaseClient(common(config.RUNBASE_API_KEY, config.RUNBASE_API_URL)));
  }
  if (config.RUNBLOB_API_KEY) {
    clients.push(new RunblobClient(common(config.RUNBLOB_API_KEY, config.RUNBLOB_API_URL)));
  }
  return clients;
}
