/**
 * The result buttons (imagine:upscale/ratio/rerun/vary/delete:…, commands/custom-id.ts): each makes a
 * new job from the clicked one with the same meaning as on Discord (commands/buttons.ts), except
 * Delete, which only the requester may use. Edit and Remix open their form (views.open with the
 * click's trigger_id); its submission is forms.ts.
 */
import type { App } from '@slack/bolt';
import { cancelJob, editForm, remixForm, requestForAction } from '../../../../commands/buttons.ts';
import { decodeAction } from '../../../../commands/custom-id.ts';
import { JobNotFoundError } from '../../../engine/errors.ts';
import type { PlatformLocation, Requester } from '../../../engine/request.ts';
import { interactive, locationFor, slackErrorCode, slackLocationSchema, type Where } from '../context.ts';
import { blockActionsSchema, requesterOf, type BlockActionsPayload } from '../payloads.ts';
import { UserFacingError } from '../../../errors.ts';
import { formView } from '../modal.ts';
import { afterAck, readPayload, type AckArgs } from './after-ack.ts';
import { openView, startJob, type ListenerDeps } from './flow.ts';

export function resultAction(deps: ListenerDeps) {
  return async ({ ack, body }: AckArgs): Promise<void> => {
    await ack();
    const b = readPayload(deps, blockActionsSchema, body, 'button');
    if (!b) return;
    const action = b.actions[0]!;
    const channel = b.channel?.id ?? b.container?.channel_id;
    const messageTs = b.message?.ts ?? b.container?.message_ts;
    if (!channel || !messageTs) {
      deps.ctx.log.warn({ actionId: action.action_id }, 'button click without a channel or message');
      return;
    }
    const threadTs = b.message?.thread_ts ?? b.container?.thread_ts ?? messageTs;
    const where: Where = { channel, user: b.user.id, threadTs, ...(b.response_url ? { responseUrl: b.response_url } : {}), ...(b.team?.id ? { team: b.team.id } : {}) };
    // A form must open within the trigger_id's 3 s: that work jumps the queue.
    const opensForm = /^imagine:(edit|remix):/.test(action.action_id);
    afterAck(deps, 'button', where, () => onAction(deps, b, where, messageTs), { urgent: opensForm });
  };
}

async function onAction(deps: ListenerDeps, b: BlockActionsPayload, where: Where, messageTs: string): Promise<void> {
  const { ctx } = deps;
  const action = b.actions[0]!;
  const ref = decodeAction(action.action_id, action.selected_option?.value ?? undefined);
  if (!ref) throw new UserFacingError('UNKNOWN_CONTROL');
  const meta = { channel: where.channel, ...(where.threadTs ? { threadTs: where.threadTs } : {}) };
  if (ref.action === 'edit') return openView(deps, b.trigger_id, formView(editForm(ref.jobId, ref.index), meta));
  const parent = await ctx.engine.getJob(ref.jobId);
  if (!parent) throw new JobNotFoundError(ref.jobId);
  if (ref.action === 'delete') return deleteResult(deps, parent.request.requester, parent.request.location, where, messageTs);
  // Cancel on a placeholder: only the requester (Slack gives the bot no moderator permission to
  // read). The job's delivery then turns the placeholder into what happened.
  if (ref.action === 'cancel') return void (await cancelJob(ctx.engine, ref.jobId, requesterOf(b.user, where), { moderator: false, moderatorsExist: false }));
  if (ref.action === 'remix') return openView(deps, b.trigger_id, formView(remixForm(parent), meta));
  const request = requestForAction(parent, ref.action, {
    ...('index' in ref ? { index: ref.index } : {}),
    ...('ratio' in ref && ref.ratio ? { ratio: ref.ratio } : {}),
    clicker: requesterOf(b.user, where),
    location: locationFor(where),
    models: ctx.engine.models,
  });
  await startJob(deps, request, where);
}

/** Deletes a result message and the files uploaded for it; only the requester may. */
async function deleteResult(deps: ListenerDeps, owner: Requester, location: PlatformLocation, where: Where, messageTs: string): Promise<void> {
  const { ctx } = deps;
  if (owner.platform !== 'slack' || owner.userId !== where.user) throw new UserFacingError('NOT_OWNER', { owner: `<@${owner.userId}>`, moderatorsToo: false });
  const loc = slackLocationSchema.safeParse(location);
  for (const file of loc.success ? (loc.data.fileIds ?? []) : []) {
    await interactive(ctx, () => ctx.client.files.delete({ file })).catch((err: unknown) => ctx.log.warn({ err: String(err), file }, 'files.delete failed'));
  }
  try {
    await interactive(ctx, () => ctx.client.chat.delete({ channel: where.channel, ts: messageTs }));
  } catch (err) {
    if (slackErrorCode(err) !== 'message_not_found') throw err;
  }
}

export function register(app: App, deps: ListenerDeps): void {
  app.action(/^imagine:/, resultAction(deps));
}
