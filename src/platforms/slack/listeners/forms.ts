/**
 * The Edit and Remix forms' submissions (opened by their buttons, actions.ts). The view's
 * callback_id is the button's durable id (commands/custom-id.ts) and private_metadata says where
 * the result goes, so a submission needs no server-side state and works after a restart. An
 * empty field is answered inside the form (`response_action: 'errors'`); the job starts after
 * the ack, charged to whoever submitted, in the result's thread.
 */
import type { App } from '@slack/bolt';
import { FORM_TEXT_ID, requestForAction } from '../../../../commands/buttons.ts';
import { decodeAction } from '../../../../commands/custom-id.ts';
import { JobNotFoundError } from '../../../engine/errors.ts';
import { PROMPT_SENTENCES } from '../../../engine/request.ts';
import { sentenceFor } from '../../../errors.ts';
import { locationFor, type Where } from '../context.ts';
import { decodeMetadata, type ViewStateValues } from '../modal.ts';
import { inputStateSchema, requesterOf, viewSubmissionSchema } from '../payloads.ts';
import { afterAck } from './after-ack.ts';
import { startJob, type ListenerDeps } from './flow.ts';
import type { ViewArgs } from './modal.ts';

export const FORM_CALLBACK_IDS = /^imagine:(edit|remix):/;

export function formSubmission(deps: ListenerDeps) {
  return async ({ ack, body }: ViewArgs): Promise<void> => {
    const read = viewSubmissionSchema.safeParse(body);
    const callbackId = (body as { view?: { callback_id?: unknown } } | undefined)?.view?.callback_id;
    const ref = typeof callbackId === 'string' ? decodeAction(callbackId) : undefined;
    const meta = read.success ? decodeMetadata(read.data.view.private_metadata) : undefined;
    if (!read.success || !ref || (ref.action !== 'edit' && ref.action !== 'remix') || !meta) {
      deps.ctx.log.warn({ callbackId }, 'slack form submission the bot cannot read');
      await ack({ response_action: 'errors', errors: { [FORM_TEXT_ID]: sentenceFor(read.success ? 'FORM_EXPIRED' : 'UNREADABLE_REQUEST', {}) } });
      return;
    }
    const s = read.data;
    // A field of the wrong shape (a value that is not a string…) is told under the field, like the /imagine form's.
    const field = inputStateSchema.safeParse((s.view.state.values as ViewStateValues)[FORM_TEXT_ID]?.[FORM_TEXT_ID] ?? {});
    if (!field.success) {
      await ack({ response_action: 'errors', errors: { [FORM_TEXT_ID]: sentenceFor('UNREADABLE_REQUEST', {}) } });
      return;
    }
    const text = field.data.value ?? '';
    if (text.trim() === '') {
      await ack({ response_action: 'errors', errors: { [FORM_TEXT_ID]: PROMPT_SENTENCES.empty } });
      return;
    }
    await ack();
    const where: Where = { channel: meta.channel, user: s.user.id, ...(meta.threadTs ? { threadTs: meta.threadTs } : {}), ...(s.team?.id ? { team: s.team.id } : {}) };
    afterAck(deps, 'form submission', where, async () => {
      const parent = await deps.ctx.engine.getJob(ref.jobId);
      if (!parent) throw new JobNotFoundError(ref.jobId);
      const request = requestForAction(parent, ref.action, {
        ...('index' in ref ? { index: ref.index } : {}),
        text,
        clicker: requesterOf(s.user, where),
        location: locationFor(where),
        models: deps.ctx.engine.models,
      });
      await startJob(deps, request, where);
    });
  };
}

export function register(app: App, deps: ListenerDeps): void {
  app.view(FORM_CALLBACK_IDS, formSubmission(deps));
}

