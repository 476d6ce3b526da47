/**
 * Provider completion callbacks, for providers whose traits say `callbacks` (RunBlob's
 * `callback_url`, docs/providers.md "Callback"). They are not signed, so the only credential is an
 * unguessable token in the callback URL, registered in the store before the create call that
 * carries it (so it survives restarts and works on any process sharing the store). A callback is
 * only a hint: it triggers an immediate status fetch through the poll scheduler and its body is
 * never trusted. Deliveries may be retried: each token triggers at most one fetch.
 *
 * The engine does not serve HTTP: the composition root mounts `CALLBACK_PATH_PREFIX` and hands
 * each request to `receive` (src/platforms/http/server.ts mountCallbacks).
 */
import type { Logger } from '../log.ts';
import { PROVIDERS, type ProviderName } from '../providers/types.ts';
import { isCallbackToken, newCallbackToken } from './ids.ts';
import type { Store } from './store.ts';

/** Callback URLs are `<publicUrl>/callbacks/<provider>/<token>`. */
export const CALLBACK_PATH_PREFIX = '/callbacks/';

export interface CallbackTarget {
  jobId: string;
  /** The task's index in the job. */
  index: number;
}

// Store keys kept as they were when only RunBlob had callbacks (`cb:runblob:<token>`).
const tokenKey = (provider: string, token: string) => `cb:${provider}:${token}`;
const seenKey = (provider: string, token: string) => `cb-seen:${provider}:${token}`;

/** `${publicUrl}/callbacks/<provider>/<token>` (publicUrl may end with a slash or a path). */
export function callbackUrl(publicUrl: string, provider: ProviderName, token: string): string {
  return `${publicUrl.replace(/\/+$/, '')}${CALLBACK_PATH_PREFIX}${provider}/${token}`;
}

export interface ProviderCallbacksOptions {
  store: Store;
  log: Logger;
  /** How long a token stays valid, and de-duplicated (as long as a task can still complete). */
  ttlMs: number;
  /** Called once per token, after the callback was answered. */
  onCallback: (target: CallbackTarget) => void;
}

export class ProviderCallbacks {
  readonly #opts: ProviderCallbacksOptions;

  constructor(opts: ProviderCallbacksOptions) {
    this.#opts = opts;
    this.receive = this.receive.bind(this);
  }

  /** Records which task a new token belongs to (before the create call that carries it); returns the callback URL. */
  async register(publicUrl: string, provider: ProviderName, target: CallbackTarget): Promise<string> {
    const token = newCallbackToken();
    await this.#opts.store.kv.set(tokenKey(provider, token), target, this.#opts.ttlMs);
    return callbackUrl(publicUrl, provider, token);
  }

  /**
   * One callback request: undefined when the token is unknown (answer 404); otherwise the work to
   * run once it has been answered: at most once per token, nudge the task's poll. Bound.
   */
  async receive(provider: string, token: string): Promise<(() => Promise<void>) | undefined> {
    const { store, log } = this.#opts;
    const known = (PROVIDERS as readonly string[]).includes(provider) && isCallbackToken(token);
    const target = known ? await store.kv.get<CallbackTarget>(tokenKey(provider, token)) : undefined;
    if (!target) return undefined;
    return async () => {
      const first = await store.setIfAbsent(seenKey(provider, token), '1', this.#opts.ttlMs);
      if (!first) {
        log.debug({ provider, jobId: target.jobId, task: target.index }, 'duplicate provider callback ignored');
        return;
      }
      log.info({ provider, jobId: target.jobId, task: target.index }, 'provider callback: fetching task status');
      this.#opts.onCallback(target);
    };
  }
}
