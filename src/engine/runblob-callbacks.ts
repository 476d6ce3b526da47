/**
 * RunBlob completion callbacks (reference/providers.md "Callback"). They are not signed, so the
 * only credential is an unguessable token in the callback URL, registered in the store when the
 * task is created (so it survives restarts and works on any process sharing the store). A
 * callback is only a hint: it triggers an immediate status fetch through the poll scheduler and
 * its body is never trusted. Deliveries may be retried: each token triggers at most one fetch.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log.ts';
import { readBody, type HttpServer } from '../platforms/http/server.ts';
import { isCallbackToken } from './ids.ts';
import type { Store } from './store.ts';

export const RUNBLOB_CALLBACK_PATH = '/callbacks/runblob/';
/** Callback bodies are a few hundred bytes; anything bigger is not RunBlob. */
const MAX_CALLBACK_BODY_BYTES = 64 * 1024;

export interface CallbackTarget {
  jobId: string;
  /** The task's index in the job. */
  index: number;
}

const tokenKey = (token: string) => `cb:runblob:${token}`;
const seenKey = (token: string) => `cb-seen:runblob:${token}`;

/** `${publicUrl}/callbacks/runblob/<token>` (publicUrl may end with a slash or a path). */
export function runblobCallbackUrl(publicUrl: string, token: string): string {
  return `${publicUrl.replace(/\/+$/, '')}${RUNBLOB_CALLBACK_PATH}${token}`;
}

/** Records which task a token belongs to, before the create call that carries it. */
export async function registerCallbackToken(store: Store, token: string, target: CallbackTarget, ttlMs: number): Promise<void> {
  await store.kv.set(tokenKey(token), target, ttlMs);
}

export interface RunblobCallbackOptions {
  store: Store;
  log: Logger;
  /** How long a token stays de-duplicated (as long as it can be valid). */
  dedupTtlMs: number;
  /** Called once per token, after the 200 is sent. */
  onCallback: (target: CallbackTarget) => void;
}

/** Mounts POST /callbacks/runblob/<token>: unknown token → 404; known → 200 at once, then one nudge. */
export function mountRunblobCallbacks(http: HttpServer, opts: RunblobCallbackOptions): void {
  http.mount('POST', RUNBLOB_CALLBACK_PATH, async (req: IncomingMessage, res: ServerResponse, { rest }) => {
    const token = rest.replace(/\/+$/, '');
    // Drain the body (capped) so the connection stays reusable; its content is not trusted.
    const body = await readBody(req, MAX_CALLBACK_BODY_BYTES).catch(() => undefined);
    const target = isCallbackToken(token) ? await opts.store.kv.get<CallbackTarget>(tokenKey(token)) : undefined;
    if (!target) {
      // Never log the token: a valid one is a credential, and a forged one is noise.
      opts.log.warn({ bytes: body?.length }, 'runblob callback with an unknown token');
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    // RunBlob wants 2xx within 5 s: answer before doing anything else.
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    const first = await opts.store.setIfAbsent(seenKey(token), '1', opts.dedupTtlMs);
    if (!first) {
      opts.log.debug({ jobId: target.jobId, task: target.index }, 'duplicate runblob callback ignored');
      return;
    }
    opts.log.info({ jobId: target.jobId, task: target.index }, 'runblob callback: fetching task status');
    opts.onCallback(target);
  });
}
