/**
 * The path every Slack listener shares once it knows what the user wants: download the Slack
 * files → the command from the registry (commands/) prepares and runs → the job is submitted →
 * its placeholder posted; plus the modal and help answers. Nothing here catches: a refusal is
 * thrown to the one catch after the ack (after-ack.ts), which tells the user.
 */
import { helpText, imagine, quota, type Command, type CommandSurface, type ImagineInput, type PrepareContext } from '../../../../commands/index.ts';
import type { JobRecord } from '../../../engine/job.ts';
import type { ImagineRequestInput, Requester } from '../../../engine/request.ts';
import { PREFERENCES_READ_BUDGET_MS, UNREAD_PREFERENCES, unreadPreferencesNotice } from '../../../engine/governance/api.ts';
import { locationFor, slackApiUrl, slackErrorCode, tellUser, type SlackContext, type Where } from '../context.ts';
import type { SlackDeliverer } from '../deliverer.ts';
import { downloadSlackFiles, removeDownloads, slackRefsDir, type DownloadOptions, type SlackFileRef } from '../files.ts';
import { SLACK_FORMAT } from '../format.ts';
import { imagineModal, type ModalMetadata } from '../modal.ts';
import { workspaceOf } from '../workspace.ts';
import { UserFacingError } from '../../../errors.ts';

/** What every listener gets (as the bolt-js starter's `register(app)`, plus the adapter's context). */
export interface ListenerDeps {
  ctx: SlackContext;
  /** The deliverer's side of a submission: it must know a placeholder is coming, then post it. */
  jobs: Pick<SlackDeliverer, 'trackSubmission' | 'postPlaceholder'> & Partial<Pick<SlackDeliverer, 'showAt'>>;
}

const HELP_WORDS = new Set(['help', '--help', '-h', '?']);
const QUOTA_WORDS = new Set(['quota', '--quota']);

/** Whether a typed text is `help` or `quota` rather than a prompt or an instruction. */
export const isCommandWord = (text: string) => HELP_WORDS.has(text.toLowerCase()) || QUOTA_WORDS.has(text.toLowerCase());

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

export function replyQuota(deps: ListenerDeps, where: Where, requester: Requester): Promise<void> {
  return runCommand(deps, quota, { options: {}, refs: [], requester }, where);
}

/** What a command sees of Slack: answers are ephemeral messages, jobs are tracked for their placeholder. */
function surfaceFor(deps: ListenerDeps, where: Where): CommandSurface {
  const { ctx, jobs } = deps;
  return {
    engine: ctx.engine,
    submit: (request) => jobs.trackSubmission(ctx.engine.submit(request)),
    format: SLACK_FORMAT,
    // The workspace is the server: its channels and members (no roles on Slack).
    directory: workspaceOf(ctx).directory,
    location: locationFor(where),
    reply: (text) => tellUser(ctx, where, text),
    ...(jobs.showAt && { show: (job: JobRecord) => jobs.showAt!(job, where) }),
  };
}

/** Runs a command from the registry; a job it starts gets its placeholder where the request came from. */
export async function runCommand(deps: ListenerDeps, command: Command, input: Parameters<Command['prepare']>[0], where: Where): Promise<void> {
  const { ctx } = deps;
  // Admin commands: workspace admins and owners, or the operator's SLACK_ADMIN_USERS. A DM is
  // still in the workspace (the scope), so unlike Discord it is allowed.
  if (command.admin) await workspaceOf(ctx).requireAdmin(input.requester.userId);
  // The requester's /settings: one store read, before prepare (which does no I/O). This runs
  // after the ack, so it never delays Slack's 3 s answer.
  const preferences = command.usesPreferences ? await ctx.engine.governance.preferences(input.requester, PREFERENCES_READ_BUDGET_MS) : undefined;
  const context: PrepareContext = { models: ctx.engine.models, defaultModel: ctx.engine.defaultModel, ...(preferences ? { preferences } : {}) };
  const job = await command.prepare(input, context).run(surfaceFor(deps, where));
  if (!job) return;
  await postPlaceholder(deps, job, where);
  // Results on Slack are never private: only the defaults were applied. tellUser never throws
  // (it logs what it could not send), so the job is under way whatever becomes of this notice.
  if (preferences === UNREAD_PREFERENCES) await tellUser(ctx, where, unreadPreferencesNotice({ private: false }));
}

/** Submits a job a button asked for (a new job from a result) and posts its placeholder. */
export async function startJob(deps: ListenerDeps, request: ImagineRequestInput, where: Where): Promise<void> {
  await postPlaceholder(deps, await surfaceFor(deps, where).submit(request), where);
}

async function postPlaceholder(deps: ListenerDeps, job: JobRecord, where: Where): Promise<void> {
  deps.ctx.log.info({ jobId: job.id, user: where.user, channel: where.channel }, 'slack job submitted');
  await deps.jobs.postPlaceholder(job, where);
}

/** Opens the /imagine modal; throws a refusal when Slack gave no trigger or would not open it. */
export async function openModal(deps: ListenerDeps, triggerId: string | undefined, meta: ModalMetadata): Promise<void> {
  const { ctx } = deps;
  await openView(deps, triggerId, imagineModal({ models: ctx.engine.models, defaultModel: ctx.engine.defaultModel, meta }));
}

/** Opens a modal view (the /imagine modal, an Edit or Remix form); throws a refusal when Slack gave no trigger or would not open it. */
export async function openView(deps: ListenerDeps, triggerId: string | undefined, view: Parameters<SlackContext['client']['views']['open']>[0]['view']): Promise<void> {
  const { ctx } = deps;
  if (!triggerId) throw new UserFacingError('FORM_UNAVAILABLE');
  try {
    // No rate-limit wait here: the trigger_id dies 3 s after the click.
    await ctx.client.views.open({ trigger_id: triggerId, view });
  } catch (err) {
    ctx.log.warn({ err: String(err), code: slackErrorCode(err) }, 'views.open failed');
    throw new UserFacingError('FORM_OPEN_FAILED');
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
  try {
    await runCommand(deps, imagine, { options: { ...input.options, prompt: input.prompt }, refs: references, requester: input.requester }, where);
  } catch (err) {
    await removeDownloads(dir);
    throw err;
  }
}
