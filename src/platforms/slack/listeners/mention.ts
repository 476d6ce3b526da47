/**
 * "@Imagine a prompt --flags" with images attached: a job whose references are the attached
 * files (each checked like any reference: a non-image or a too-large file is named in the
 * error), answered in the message's thread. In the thread of a result, the mention edits that
 * thread's latest result instead ("@Imagine make the sky purple", "@Imagine 2: …" for image 2),
 * like its Edit button: the deliverer links each thread to its latest result in the store, so
 * no history scope is needed. Events are acknowledged by Bolt itself (HTTP 200 on arrival, or
 * the Socket Mode envelope's ack).
 */
import type { App } from '@slack/bolt';
import { refineRequest } from '../../../../commands/buttons.ts';
import { locationFor, type Where } from '../context.ts';
import { resultThreadKey } from '../deliverer.ts';
import { appMentionSchema, fileRef, requesterOf, type AppMentionPayload } from '../payloads.ts';
import { UserFacingError } from '../../../errors.ts';
import { afterAck, readPayload } from './after-ack.ts';
import { answerText, isCommandWord, startJob, type ListenerDeps } from './flow.ts';

/** Slack retries an event a few times within minutes (at once, after 1 min, after 5 min); kept longer. */
const MENTION_DEDUPE_MS = 2 * 60 * 60 * 1000;

/** The part of Bolt's event listener arguments the mention handler uses. */
export interface EventArgs {
  event: unknown;
  context: { botUserId?: string; retryNum?: number; teamId?: string };
}

export function appMention(deps: ListenerDeps) {
  return async ({ event, context }: EventArgs): Promise<void> => {
    const m = readPayload(deps, appMentionSchema, event, 'mention');
    if (!m) return;
    const where: Where = { channel: m.channel, user: m.user, threadTs: m.thread_ts ?? m.ts, ...((m.team ?? context.teamId) ? { team: (m.team ?? context.teamId)! } : {}) };
    afterAck(deps, 'mention', where, async () => {
      // Slack redelivers an event it believes was lost (no 200 within 3 s, an error, a dropped
      // connection), for up to an hour, possibly to another process: each message once.
      if (!(await deps.ctx.engine.claimOnce(`slack:mention:${m.channel}:${m.ts}`, MENTION_DEDUPE_MS))) {
        deps.ctx.log.info({ channel: m.channel, ts: m.ts, retryNum: context.retryNum }, 'slack mention already handled; redelivery ignored');
        return;
      }
      await onMention(deps, m, where, context.botUserId);
    });
  };
}

async function onMention(deps: ListenerDeps, m: AppMentionPayload, where: Where, botUserId: string | undefined): Promise<void> {
  // Only the bot's own mention is removed: other mentions may be part of the prompt.
  const text = (botUserId ? m.text.replaceAll(new RegExp(`<@${botUserId}(?:\\|[^>]*)?>`, 'g'), ' ') : m.text).replace(/\s+/g, ' ').trim();
  if (text === '') throw new UserFacingError('MENTION_WITHOUT_PROMPT');
  const resultJob = m.thread_ts && !isCommandWord(text) ? await deps.ctx.engine.linkedJob(resultThreadKey(m.channel, m.thread_ts)) : undefined;
  const parent = resultJob === undefined ? undefined : await deps.ctx.engine.getJob(resultJob);
  if (parent) {
    const request = refineRequest(parent, text, { clicker: requesterOf(m.user, where), location: locationFor(where), models: deps.ctx.engine.models });
    return startJob(deps, request, where);
  }
  await answerText(deps, text, requesterOf(m.user, where), where, (m.files ?? []).map(fileRef));
}

export function register(app: App, deps: ListenerDeps): void {
  app.event('app_mention', appMention(deps));
}
