/**
 * The slash commands, one listener per command in the registry (commands/index.ts), so a new
 * command needs nothing here. /imagine has Slack's own extras: with text it is help, quota or a
 * job; without text it opens the modal (views.open within the trigger_id's 3 s, hence urgent).
 */
import type { App } from '@slack/bolt';
import { COMMANDS, imagine, quota, settings, type Command } from '../../../../commands/index.ts';
import type { Requester } from '../../../engine/request.ts';
import { commandSchema, requesterOf, whereOfCommand, type CommandPayload } from '../payloads.ts';
import { afterAck, readPayload, type AckArgs } from './after-ack.ts';
import { answerText, openModal, runCommand, type ListenerDeps } from './flow.ts';
import { settingsCommand } from './settings.ts';

const requesterOfCommand = (c: CommandPayload): Requester => requesterOf({ id: c.user_id, ...(c.user_name ? { name: c.user_name } : {}) }, whereOfCommand(c));

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
      afterAck(deps, '/imagine', where, () => answerText(deps, text, requesterOfCommand(c), where));
    }
  };
}

/**
 * Any other command: its text (if it takes one) is its text option, and the
 * command from the registry answers privately or starts a job.
 */
export function textCommand(deps: ListenerDeps, command: Command) {
  // The text goes to the first required string option, else to the only string option
  // (/imagine-admin's optional `action`: Slack passes its whole text the way Discord does).
  const strings = Object.entries(command.options).filter(([, def]) => def.type === 'string');
  const textOption = (strings.find(([, def]) => def.required) ?? (strings.length === 1 ? strings[0] : undefined))?.[0];
  return async ({ ack, body }: AckArgs): Promise<void> => {
    await ack();
    const c = readPayload(deps, commandSchema, body, `/${command.name}`);
    if (!c) return;
    const where = whereOfCommand(c);
    const options = textOption ? { [textOption]: c.text.trim() } : {};
    afterAck(deps, `/${command.name}`, where, () => runCommand(deps, command, { options, refs: [], requester: requesterOfCommand(c) }, where));
  };
}

export const quotaCommand = (deps: ListenerDeps) => textCommand(deps, quota);

export function register(app: App, deps: ListenerDeps): void {
  for (const command of COMMANDS) {
    const listener = command === imagine ? imagineCommand(deps) : command === settings ? settingsCommand(deps) : textCommand(deps, command);
    app.command(new RegExp(`^/${command.name}$`), listener);
  }
}
