/**
 * The /imagine modal's submission. The payload is read and checked BEFORE ack() because the ack
 * carries field errors back into the modal (`response_action: 'errors'`:
 * https://docs.slack.dev/tools/bolt-js/concepts/view-submissions); that is synchronous and takes
 * microseconds. The job starts after the ack.
 */
import type { App, SlackViewMiddlewareArgs } from '@slack/bolt';
import { imagine } from '../../../../commands/index.ts';
import { ValidationError } from '../../../engine/errors.ts';
import type { EngineApi } from '../../../engine/api.ts';
import type { Where } from '../context.ts';
import { IMAGINE_MODAL_CALLBACK_ID, decodeMetadata, modalErrorBlock, readSubmission, type ModalMetadata, type ViewStateValues } from '../modal.ts';
import { requesterOf, viewSubmissionSchema, type ViewSubmissionPayload } from '../payloads.ts';
import { sentenceFor } from '../../../errors.ts';
import { afterAck } from './after-ack.ts';
import { startWithFiles, type ListenerDeps } from './flow.ts';

/** The part of Bolt's view listener arguments the submission handler uses. */
export interface ViewArgs {
  /** Bolt's: with `{ response_action: 'errors', errors }` it puts sentences under the modal's inputs (block_id → sentence). */
  ack: SlackViewMiddlewareArgs['ack'];
  body: unknown;
}

export function modalSubmission(deps: ListenerDeps) {
  return async ({ ack, body }: ViewArgs): Promise<void> => {
    const read = viewSubmissionSchema.safeParse(body);
    if (!read.success) {
      deps.ctx.log.warn({ issues: read.error.issues.slice(0, 5) }, 'slack modal submission the bot cannot read');
      await ack({ response_action: 'errors', errors: { prompt: sentenceFor('UNREADABLE_REQUEST', {}) } });
      return;
    }
    const s = read.data;
    let verdict: ReturnType<typeof checkSubmission>;
    try {
      verdict = checkSubmission(s, deps.ctx.engine);
    } catch (err) {
      // A bug or a payload no schema foresaw: the user still gets an answer in the modal.
      deps.ctx.log.error({ err }, 'slack modal submission could not be checked');
      await ack({ response_action: 'errors', errors: { prompt: sentenceFor('UNREADABLE_REQUEST', {}) } });
      return;
    }
    if (verdict.kind === 'errors') {
      await ack({ response_action: 'errors', errors: verdict.errors });
      return;
    }
    await ack();
    const { meta } = verdict;
    const where: Where = { channel: meta.channel, user: s.user.id, ...(meta.threadTs ? { threadTs: meta.threadTs } : {}), ...(s.team?.id ? { team: s.team.id } : {}) };
    afterAck(deps, 'modal submission', where, () => onSubmitted(deps, s, meta, where));
  };
}

/** Checks a submission before the ack: what the user can fix goes back into the modal, under its field. */
export function checkSubmission(
  s: ViewSubmissionPayload,
  engine: Pick<EngineApi, 'models' | 'defaultModel'>,
): { kind: 'errors'; errors: Record<string, string> } | { kind: 'ok'; meta: ModalMetadata } {
  const blocks = new Set(s.view.blocks.map((b) => b.block_id).filter((b): b is string => !!b));
  const inModal = (block: string) => (blocks.has(block) ? block : 'prompt');
  const meta = decodeMetadata(s.view.private_metadata);
  if (!meta) return { kind: 'errors', errors: { prompt: sentenceFor('FORM_EXPIRED', {}) } };
  try {
    const sub = readSubmission(s.view.state.values as ViewStateValues);
    // Flags typed in the prompt, the model choice and what that model can make are checked now,
    // while the user can fix them (the command's own checks, before anything runs).
    imagine.prepare({ options: { ...sub.options, prompt: sub.prompt }, refs: [], requester: requesterOf(s.user, { channel: meta.channel, ...(s.team?.id ? { team: s.team.id } : {}) }) }, engine);
  } catch (err) {
    if (err instanceof ValidationError) return { kind: 'errors', errors: { [inModal(modalErrorBlock(err.field))]: err.userMessage } };
    throw err;
  }
  return { kind: 'ok', meta };
}

async function onSubmitted(deps: ListenerDeps, s: ViewSubmissionPayload, meta: ModalMetadata, where: Where): Promise<void> {
  const { ctx } = deps;
  const sub = readSubmission(s.view.state.values as ViewStateValues);
  await startWithFiles(deps, { prompt: sub.prompt, options: sub.options, requester: requesterOf(s.user, where) }, [...meta.refs, ...sub.files], where, async (id) => {
    const f = (await ctx.client.files.info({ file: id })).file;
    const url = f?.url_private ?? f?.url_private_download;
    return url ? { url, ...(f?.name ? { name: f.name } : {}) } : undefined;
  });
}

export function register(app: App, deps: ListenerDeps): void {
  app.view(IMAGINE_MODAL_CALLBACK_ID, modalSubmission(deps));
}
