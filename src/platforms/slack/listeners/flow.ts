/**
 * The path every Slack listener shares once it knows what the user wants: download the Slack
 * files → build the request (commands/imagine.ts) → submit it → post its placeholder; plus the
 * modal, help and quota answers. Nothing here catches: a refusal is thrown to the one catch after
 * the ack (after-ack.ts), which tells the user.
 */
import { helpText } from '../../../../commands/flags.ts';
import { buildImagineRequest, type ImagineInput } from '../../../../commands/imagine.ts';
import { quotaReply } from '../../../../commands/quota.ts';
import type { ImagineRequestInput, Requester } from '../../../engine/request.ts';
import { locationFor, slackApiUrl, slackErrorCode, tellUser, type SlackContext, type Where } from '../context.ts';
import type { SlackDeliverer } from '../deliverer.ts';
import { downloadSlackFiles, removeDownloads, slackRefsDir, type DownloadOptions, type SlackFileRef } from '../files.ts';
import { SLACK_FORMAT } from '../format.ts';
import { imagineModal, type ModalMetadata } from '../modal.ts';
import { MODAL_NOT_OPENED, NO_TRIGGER, SlackRefusal } from '../sentences.ts';

/** What every listener gets (as the bolt-js starter's `register(app)`, plus the adapter's context). */
export interface ListenerDeps {
  ctx: SlackContext;
  /** The deliverer's side of a submission: it must know a placeholder is coming, then post it. */
  jobs: Pick<SlackDeliverer, 'trackSubmission' | 'postPlaceholder'>;
}

const HELP_WORDS = new Set(['help', '--help', '-h', '?']);
const QUOTA_WORDS = new Set(['quota', '--quota']);

/**
 * A prompt typed after /imagine or in a mention (never empty): `help`, `quota`, or a job with
 * `refs` (the mention's files) as references. Where a command's text becomes a request.
 */
export async function answerText(deps: ListenerDeps, text: string, requester: Requester, where: Where, refs: readonly SlackFileRef[] = []): Promise<void> {
  const word = text.toLowerCase();
  if (HELP_WORDS.has(word)) return tellUser(deps.ctx, where, helpMessage(deps.ctx));
  if (QUOTA_WORDS.has(word)) return replyQuota(deps, where, requester);
  await startWithFiles(deps, { prompt: text, options: {}, requester }, refs, where);
}

export const helpMessage = (ctx: SlackContext) => `*How to use /imagine*\n\`\`\`${helpText(ctx.engine.models, 'slack')}\`\`\``;

export async function replyQuota(deps: ListenerDeps, where: Where, requester: Requester): Promise<void> {
  await tellUser(deps.ctx, where, await quotaReply(deps.ctx.engine, requester, SLACK_FORMAT));
}

/** Opens the /imagine modal; throws a SlackRefusal when Slack gave no trigger or would not open it. */
export async function openModal(deps: ListenerDeps, triggerId: string | undefined, meta: ModalMetadata): Promise<void> {
  const { ctx } = deps;
  if (!triggerId) throw new SlackRefusal('NO_TRIGGER', NO_TRIGGER);
  try {
    // No rate-limit wait here: the trigger_id dies 3 s after the click.
    await ctx.client.views.open({ trigger_id: triggerId, view: imagineModal({ models: ctx.engine.models, defaultModel: ctx.engine.defaultModel, meta }) });
  } catch (err) {
    ctx.log.warn({ err: String(err), code: slackErrorCode(err) }, 'views.open failed');
    throw new SlackRefusal('MODAL_NOT_OPENED', MODAL_NOT_OPENED);
  }
}

/**
 * Downloads the Slack files (a failure names the image), builds the request with them as
 * references and starts it. On a refusal the downloads are removed before it is rethrown.
 */
export async function startWithFiles(
  deps: ListenerDeps,
  input: Pick<ImagineInput, 'prompt' | 'options' | 'requester'>,
  refs: readonly SlackFileRef[],
  where: Where,
  lookupUrl?: DownloadOptions['lookupUrl'],
): Promise<void> {
  const { ctx } = deps;
  const { references, dir } = await downloadSlackFiles(refs, {
    token: ctx.botToken,
    apiUrl: slackApiUrl(ctx.config),
    dir: slackRefsDir(ctx.config),
    ...(lookupUrl ? { lookupUrl } : {}),
  });
  let request: ImagineRequestInput;
  try {
    request = buildImagineRequest({ ...input, refs: references, location: locationFor(where) }, ctx.engine.models, ctx.engine.defaultModel);
  } catch (err) {
    await removeDownloads(dir);
    throw err;
  }
  await startJob(deps, request, where, dir);
}

/** Submits a request and posts its placeholder. `downloads` (refused requests only) are removed. */
export async function startJob(deps: ListenerDeps, request: ImagineRequestInput, where: Where, downloads?: string): Promise<void> {
  const { ctx, jobs } = deps;
  let job;
  try {
    job = await jobs.trackSubmission(ctx.engine.submit(request));
  } catch (err) {
    await removeDownloads(downloads);
    throw err;
  }
  ctx.log.info({ jobId: job.id, user: where.user, channel: where.channel }, 'slack job submitted');
  await jobs.postPlaceholder(job, where);
}
