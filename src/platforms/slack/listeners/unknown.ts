/**
 * What no listener acknowledged is acknowledged at once. Slack waits 3 s for every slash command
 * and interaction (docs/slack.md "Deadlines"), and Bolt answers an unacknowledged one only when
 * that time is up, with a 404 that the user sees as an error. That happens to a command the app
 * has but this bot does not (an older manifest), a button, form or shortcut of another version,
 * a `view_closed`, a body Bolt cannot type, or a listener that threw before its ack().
 *
 * Bolt runs every listener whose constraints match an event (App#processEvent awaits them all),
 * so a catch-all listener would also run beside the real ones; instead, processEvent is wrapped:
 * once it has settled, an event still unacknowledged gets the answer here. Nothing a real
 * listener takes is touched, and the list of known commands, callback ids and action ids stays
 * where those listeners declare them.
 * - A slash command: the ack carries UNKNOWN_COMMAND's sentence, which Slack shows only to the
 *   user ("ephemeral" is the default response_type of a command's immediate response:
 *   https://docs.slack.dev/interactivity/implementing-slash-commands#responding_immediate_response).
 * - Anything else: a plain ack (for a view_submission it closes the form).
 * Events API requests never get here unacknowledged: Bolt acknowledges them before any listener.
 */
import type { App } from '@slack/bolt';
import { COMMAND_NAMES } from '../../../../commands/index.ts';
import { sentenceFor } from '../../../errors.ts';
import type { Logger } from '../../../log.ts';

/** The immediate answer to an event nobody acknowledged (its body as Slack sent it). */
export function fallbackAck(body: unknown): { response_type: 'ephemeral'; text: string } | undefined {
  const command = (body as { command?: unknown } | null)?.command;
  if (typeof command !== 'string') return undefined;
  return { response_type: 'ephemeral', text: sentenceFor('UNKNOWN_COMMAND', { command: command.replace(/^\//, ''), known: COMMAND_NAMES }) };
}

export function answerUnacknowledged(app: App, log: Logger): void {
  const processEvent = app.processEvent.bind(app);
  app.processEvent = async (event) => {
    let acked = false;
    const ack: typeof event.ack = async (response) => {
      acked = true;
      await event.ack(response);
    };
    try {
      await processEvent({ ...event, ack });
    } catch (err) {
      // Bolt itself failed on the body (e.g. `actions: null`); its receiver would answer 500.
      log.warn({ err: err instanceof Error ? err.message : String(err) }, 'slack event Bolt could not process');
    } finally {
      if (!acked) {
        const body = event.body as { type?: unknown; command?: unknown; callback_id?: unknown; view?: { callback_id?: unknown } | null } | null;
        log.info(
          { type: body?.type, command: body?.command, callbackId: body?.callback_id ?? body?.view?.callback_id },
          'slack request no listener acknowledged; answered at once',
        );
        await ack(fallbackAck(event.body)).catch((err: unknown) => log.warn({ err: String(err) }, 'slack fallback ack failed'));
      }
    }
  };
}
