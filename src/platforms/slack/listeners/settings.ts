/**
 * /settings on Slack. With text (`/settings --model pro --ar 16:9 --private on`, `/settings
 * reset`) it sets the defaults directly through the shared command; with none it opens the
 * settings modal (settings-modal.ts), prefilled from the store: the trigger_id lives 3 s, so
 * that work is urgent. The modal's submission is checked before the ack (field errors go back
 * into the modal with `response_action: 'errors'`, as the /imagine modal's do), then saved and
 * confirmed privately through the same command.
 */
import type { App } from '@slack/bolt';
import { settings } from '../../../../commands/settings.ts';
import { ValidationError } from '../../../engine/errors.ts';
import { sentenceFor } from '../../../errors.ts';
import type { Where } from '../context.ts';
import { commandSchema, requesterOf, viewSubmissionSchema, whereOfCommand } from '../payloads.ts';
import {
  SETTINGS_MODAL_CALLBACK_ID,
  decodeSettingsMetadata,
  parseSettingsText,
  readSettingsSubmission,
  settingsErrorBlock,
  settingsModal,
} from '../settings-modal.ts';
import type { ViewStateValues } from '../modal.ts';
import { afterAck, readPayload, type AckArgs } from './after-ack.ts';
import { openView, runCommand, type ListenerDeps } from './flow.ts';
import type { ViewArgs } from './modal.ts';

export function settingsCommand(deps: ListenerDeps) {
  return async ({ ack, body }: AckArgs): Promise<void> => {
    await ack();
    const c = readPayload(deps, commandSchema, body, `/${settings.name}`);
    if (!c) return;
    const where = whereOfCommand(c);
    const requester = requesterOf({ id: c.user_id, ...(c.user_name ? { name: c.user_name } : {}) }, where);
    const text = c.text.trim();
    if (text === '') {
      afterAck(
        deps,
        `/${settings.name}`,
        where,
        async () => {
          const preferences = await deps.ctx.engine.governance.preferences(requester);
          const meta = { channel: c.channel_id, ...(c.thread_ts ? { threadTs: c.thread_ts } : {}) };
          await openView(deps, c.trigger_id, settingsModal({ models: deps.ctx.engine.models, preferences, meta }));
        },
        { urgent: true },
      );
    } else {
      afterAck(deps, `/${settings.name}`, where, () => runCommand(deps, settings, { options: parseSettingsText(text), refs: [], requester }, where));
    }
  };
}

export function settingsSubmission(deps: ListenerDeps) {
  return async ({ ack, body }: ViewArgs): Promise<void> => {
    const read = viewSubmissionSchema.safeParse(body);
    const meta = read.success ? decodeSettingsMetadata(read.data.view.private_metadata) : undefined;
    if (!read.success || !meta) {
      deps.ctx.log.warn({ issues: read.success ? 'metadata' : read.error.issues.slice(0, 5) }, 'slack settings submission the bot cannot read');
      await ack({ response_action: 'errors', errors: { [settingsErrorBlock('')]: sentenceFor(read.success ? 'FORM_EXPIRED' : 'UNREADABLE_REQUEST', {}) } });
      return;
    }
    const s = read.data;
    const where: Where = { channel: meta.channel, user: s.user.id, ...(meta.threadTs ? { threadTs: meta.threadTs } : {}), ...(s.team?.id ? { team: s.team.id } : {}) };
    const input = { options: {}, refs: [], requester: requesterOf(s.user, where) };
    try {
      // The command's own checks, before anything is saved, while the user can still fix them.
      const options = readSettingsSubmission(s.view.state.values as ViewStateValues);
      settings.prepare({ ...input, options }, deps.ctx.engine);
      input.options = options;
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      await ack({ response_action: 'errors', errors: { [settingsErrorBlock(err.field)]: err.userMessage } });
      return;
    }
    await ack();
    afterAck(deps, 'settings submission', where, () => runCommand(deps, settings, input, where));
  };
}

export function register(app: App, deps: ListenerDeps): void {
  app.view(SETTINGS_MODAL_CALLBACK_ID, settingsSubmission(deps));
}
