/**
 * What the Slack listeners and the deliverer share: the Web API clients with bounded rate-limit
 * waits, where a job's messages live (persisted in job.request.location so it survives
 * restarts), and one way to tell a user something privately.
 *
 * Rate limits: the WebClient is built with `rejectRateLimitedCalls: true` (its default would
 * sleep and retry for up to ~30 minutes), and the job path's calls (web-api.ts) never retry a
 * 429 either. Interactive paths wait at most a couple of seconds for a Retry-After; background
 * delivery waits longer, then throws so the engine retries the delivery with its own backoff
 * (docs/slack.md "Posting").
 */
import { request } from 'undici';
import { webApi } from '@slack/bolt';
import { z } from 'zod';
import { sleep } from '../../util/sleep.ts';
import type { Config } from '../../config.ts';
import type { EngineApi } from '../../engine/api.ts';
import type { Logger } from '../../log.ts';
import type { Metrics } from '../../metrics.ts';
import type { AckFirst } from '../ack-first.ts';
import type { RecentResults } from '../../engine/recent-results.ts';
import type { FileUploader } from '../../util/file-upload.ts';
import type { SlackWebCalls } from './web-api.ts';

export type WebClient = webApi.WebClient;

export interface SlackTuning {
  /**
   * Placeholder edits per minute for the whole workspace (chat.update is Tier 3, ~50/min): state
   * changes and elapsed-time ticks share it, state changes first; final results are not counted.
   */
  progressEditsPerMinute: number;
  /** Minimum time between two elapsed-time edits of one placeholder (state changes edit at once). */
  editIntervalMs: number;
  /** Longest Retry-After an interactive call (ack follow-ups, modals, ephemerals) waits for. */
  interactiveRateLimitWaitMs: number;
  /** Longest Retry-After a delivery call waits for before handing the retry back to the engine. */
  deliveryRateLimitWaitMs: number;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
}

/** Post-ack tasks running at once (each is mostly waiting on the store, a provider or Slack). */
export const AFTER_ACK_CONCURRENCY = 16;

export const DEFAULT_TUNING: SlackTuning = {
  editIntervalMs: 3000,
  progressEditsPerMinute: 40,
  interactiveRateLimitWaitMs: 2000,
  deliveryRateLimitWaitMs: 30_000,
  now: Date.now,
  sleep,
};

/** Where a Slack job's messages live. Stored in job.request.location (opaque to the engine). */
export const slackLocationSchema = z.looseObject({
  team: z.string().optional(),
  channel: z.string(),
  /** The thread the job's messages go to (a reply to the command's thread or to the parent result). */
  threadTs: z.string().optional(),
  /** Who gets the ephemeral messages. */
  user: z.string(),
  /** The placeholder message, once posted. */
  ts: z.string().optional(),
  /** The slash command's response_url (30 min, 5 uses): fallback for ephemerals. */
  responseUrl: z.string().optional(),
  /** Downloaded reference images to remove once the job is done. */
  refDir: z.string().optional(),
  /** Result files uploaded by a previous delivery attempt (never upload twice). */
  fileIds: z.array(z.string()).optional(),
  /** Set once the requester was told about a failure (never tell twice). */
  failureNotified: z.boolean().optional(),
});
export type SlackLocation = z.infer<typeof slackLocationSchema>;

/** Where to answer a user who just did something. */
export interface Where {
  team?: string;
  channel: string;
  threadTs?: string;
  user: string;
  responseUrl?: string;
}

export function locationFor(where: Where, extra: Partial<SlackLocation> = {}): SlackLocation {
  return {
    channel: where.channel,
    user: where.user,
    ...(where.team ? { team: where.team } : {}),
    ...(where.threadTs ? { threadTs: where.threadTs } : {}),
    ...(where.responseUrl ? { responseUrl: where.responseUrl } : {}),
    ...extra,
  };
}

export const DEFAULT_SLACK_API_URL = 'https://slack.com/api/';

/** The Web API base, with the trailing slash the WebClient expects. */
export function slackApiUrl(config: Pick<Config, 'SLACK_API_URL'>): string {
  const url = config.SLACK_API_URL ?? DEFAULT_SLACK_API_URL;
  return url.endsWith('/') ? url : `${url}/`;
}

export interface SlackContext {
  config: Config;
  engine: EngineApi;
  log: Logger;
  /** Bolt's WebClient: every Web API call but those `web` makes. */
  client: WebClient;
  /** A job's messages and files: chat.postMessage, chat.postEphemeral, chat.update and the two files.*External calls (web-api.ts). */
  web: SlackWebCalls;
  botToken: string;
  tuning: SlackTuning;
  /** Keeps a background task alive until stop() and logs its failure. */
  track(task: Promise<unknown>, what: string): void;
  /**
   * Requests to /slack/events in flight (HTTP mode): work after an ack, placeholder edits and
   * deliveries wait for their turn (`ackFirst.turn()`) so they never hold up the next acks.
   */
  ackFirst: AckFirst;
  /**
   * Runs the work that follows an ack() after the ack is on the wire and after requests already
   * waiting have been answered (ackFirst.turn()), with at most a few such tasks at once, so a burst of
   * commands never delays the next acknowledgements. `urgent` work (views.open, whose trigger_id
   * lives 3 s) skips the concurrency limit.
   */
  afterAck(what: string, work: () => Promise<void>, opts?: { urgent?: boolean }): void;
  /** The app's metrics: the one catch (listeners/after-ack.ts) counts refusals. */
  metrics?: Metrics | undefined;
  /**
   * Results' bytes the engine just downloaded (recent-results.ts), for an upload made here; given,
   * the engine keeps them for Slack jobs (SlackDeliverer.takesKeptResults). Undefined: read from disk.
   */
  recentResults?: RecentResults | undefined;
  /**
   * Sends a result file to its upload URL off the event loop (the app's results thread, src/app.ts),
   * which reads the file itself: the bytes never pass through this thread. Undefined: sent here.
   */
  uploadFile?: FileUploader | undefined;
}

/** The Slack error code of a Web API failure (`not_in_channel`, `message_not_found`…), if any. */
export function slackErrorCode(err: unknown): string | undefined {
  const e = err as { code?: string; data?: { error?: string } };
  return e?.code === webApi.ErrorCode.PlatformError ? e.data?.error : undefined;
}

/** The Retry-After of a rate-limited Web API call, in ms (undefined for other errors). */
export function retryAfterMs(err: unknown): number | undefined {
  const e = err as { code?: string; retryAfter?: number };
  return e?.code === webApi.ErrorCode.RateLimitedError && typeof e.retryAfter === 'number' ? e.retryAfter * 1000 : undefined;
}

/**
 * Runs a Web API call; on 429 waits out Retry-After when the total wait stays within
 * `maxWaitMs`, then retries; otherwise rethrows the rate-limit error.
 */
export async function withRateLimit<T>(ctx: Pick<SlackContext, 'tuning' | 'log'>, maxWaitMs: number, call: () => Promise<T>): Promise<T> {
  let waited = 0;
  for (;;) {
    try {
      return await call();
    } catch (err) {
      const wait = retryAfterMs(err);
      if (wait === undefined || waited + wait > maxWaitMs) throw err;
      ctx.log.warn({ waitMs: wait }, 'slack rate limited; waiting');
      waited += wait;
      await ctx.tuning.sleep(wait);
    }
  }
}

export const interactive = <T>(ctx: SlackContext, call: () => Promise<T>) => withRateLimit(ctx, ctx.tuning.interactiveRateLimitWaitMs, call);
export const background = <T>(ctx: SlackContext, call: () => Promise<T>) => withRateLimit(ctx, ctx.tuning.deliveryRateLimitWaitMs, call);

/**
 * Runs a call that posts into a channel; when the bot is not in that public channel, joins it
 * (channels:join) and tries once more. When it cannot join (a private channel, a workspace
 * without the scope), the original `not_in_channel` is what the caller gets, so its fallback
 * (the requester's DM) applies.
 */
export async function inChannel<T>(ctx: SlackContext, channel: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (slackErrorCode(err) !== 'not_in_channel' || !channel.startsWith('C')) throw err;
    try {
      await ctx.client.conversations.join({ channel });
    } catch (joinErr) {
      ctx.log.info({ channel, code: slackErrorCode(joinErr) ?? String(joinErr) }, 'could not join the channel');
      throw err;
    }
    return await call();
  }
}

/**
 * Tells one user something only they see: chat.postEphemeral in the channel (and thread);
 * when that is impossible (the bot is not in a private channel or DM), the interaction's
 * response_url; as a last resort a DM from the bot.
 */
export async function tellUser(ctx: SlackContext, where: Where, text: string): Promise<void> {
  try {
    await interactive(ctx, () =>
      ctx.web.chat.postEphemeral({ channel: where.channel, user: where.user, text, ...(where.threadTs ? { thread_ts: where.threadTs } : {}) }),
    );
    return;
  } catch (err) {
    ctx.log.warn({ err: String(err), channel: where.channel, user: where.user }, 'postEphemeral failed; trying response_url');
  }
  if (where.responseUrl) {
    try {
      const res = await request(where.responseUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ response_type: 'ephemeral', replace_original: false, text }),
        headersTimeout: 10_000,
        bodyTimeout: 10_000,
      });
      await res.body.dump();
      if (res.statusCode === 200) return;
    } catch (err) {
      ctx.log.warn({ err: String(err) }, 'response_url failed; trying a DM');
    }
  }
  try {
    await interactive(ctx, () => ctx.web.chat.postMessage({ channel: where.user, text }));
  } catch (err) {
    ctx.log.error({ err: String(err), user: where.user }, 'could not tell the user anything');
  }
}
