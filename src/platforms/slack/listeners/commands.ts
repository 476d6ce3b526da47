/**
 * /imagine and /quota. /imagine with text is help, quota or a job; without text it opens the
 * modal (views.open within the trigger_id's 3 s, hence urgent).
 */
import type { App } from '@slack/bolt';
import type { Requester } from '../../../engine/request.ts';
import { commandSchema, whereOfCommand, type CommandPayload } from '../payloads.ts';
import { afterAck, readPayload, type AckArgs } from './after-ack.ts';
import { answerText, openModal, replyQuota, type ListenerDeps } from './flow.ts';

const requesterOf = (c: CommandPayload): Requester => ({ platform: 'slack', userId: c.user_id, ...(c.user_name ? { name: c.user_name } : {}) });

export function imagineCommand(deps: ListenerDeps) {
  return async ({ ack, body }: AckArgs): Promise<void> => {
    await ack();
    const c = readPayload(deps, commandSchema, body, '/imagine');
    if (!c) return;
    const where = whereOfCommand(c);
    const text = c.text.trim();
    if (text === '') {
      const meta = { channel: c.channel_id, ...(c.thread_ts ? { threadTs: c.thread_ts } : {}), refs: [] };
      afterAck(deps, '/imagine', where, () => openModal(deps, c.trigger_id, meta), { urgent: true });
    } else {
      afterAck(deps, '/imagine', where, () => answerText(deps, text, requesterOf(c), where));
    }
  };
}

export function quotaCommand(deps: ListenerDeps) {
  return async ({ ack, body }: AckArgs): Promise<void> => {
    await ack();
    const c = readPayload(deps, commandSchema, body, '/quota');
    if (c) afterAck(deps, '/quota', whereOfCommand(c), () => replyQuota(deps, whereOfCommand(c), { platform: 'slack', userId: c.user_id }));
  };
}

export function register(app: App, deps: ListenerDeps): void {
  app.command(/^\/imagine/, imagineCommand(deps));
  app.command(/^\/quota/, quotaCommand(deps));
}
