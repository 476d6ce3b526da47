/**
 * The Slack listeners: /imagine (flags, help, quota, or a modal when empty), /quota, the modal
 * submission, the "Imagine with these images" message shortcut and the result buttons. Each
 * one calls ack() before any I/O (Slack's 3 s deadline; reference/slack.md "Deadlines") and
 * then works in the background. Validation, quota and capabilities live in the shared commands
 * layer and the engine; this file only translates payloads and answers.
 */
import type { App } from '@slack/bolt';
import { z } from 'zod';
import { requestForAction } from '../../../commands/buttons.ts';
import { decodeAction } from '../../../commands/custom-id.ts';
import { helpText } from '../../../commands/imagine/help.ts';
import { buildImagineRequest, type ImagineInput } from '../../../commands/imagine/request.ts';
import { quotaText } from '../../../commands/render.ts';
import { JobNotFoundError, ValidationError } from '../../engine/errors.ts';
import type { ImagineRequestInput, ReferenceInput, Requester } from '../../engine/request.ts';
import { errorCode, toUserMessage } from '../../errors.ts';
import { interactive, locationFor, slackApiUrl, slackErrorCode, slackLocationSchema, tellUser, type SlackContext, type Where } from './context.ts';
import type { SlackDeliverer } from './deliverer.ts';
import { downloadSlackFiles, removeDownloads, type DownloadOptions } from './files.ts';
import { SLACK_FORMAT } from './format.ts';
import { IMAGINE_SHORTCUT_CALLBACK_ID } from './manifest.ts';
import {
  IMAGINE_MODAL_CALLBACK_ID,
  decodeMetadata,
  imagineModal,
  modalErrorBlock,
  readSubmission,
  type ModalMetadata,
  type SlackFileRef,
  type ViewStateValues,
} from './modal.ts';

/** Reference image types the bot takes (the engine checks the bytes too). */
const IMAGE_MIME = /^image\/(jpeg|png|webp)$/;
/** Slack retries an event a few times within minutes (at once, after 1 min, after 5 min); kept longer. */
const MENTION_DEDUPE_MS = 2 * 60 * 60 * 1000;
const HELP_WORDS = new Set(['help', '--help', '-h', '?']);
const QUOTA_WORDS = new Set(['quota', '--quota']);

export const NOT_OWNER_DELETE = (ownerId: string) => `Only <@${ownerId}>, who asked for these images, can delete them.`;
export const NO_IMAGES_IN_MESSAGE =
  'That message has no JPEG, PNG or WEBP image to use. Run "Imagine with these images" on a message with images, or use /imagine and attach them in the form.';
export const MODAL_EXPIRED = 'This form has expired. Run /imagine again.';
export const UNKNOWN_BUTTON = 'This button is not one I know (it may come from an older version of the bot). Run /imagine again.';
export const UNREADABLE_REQUEST = "I couldn't read that request from Slack, so nothing was started and nothing was charged. Please try again.";
export const NO_TRIGGER = 'Slack did not give me a way to open the form. Type your prompt after /imagine instead (see /imagine help).';
export const MENTION_USAGE =
  'Mention me with a prompt, e.g. `@Imagine a red fox in the snow --ar 16:9`, and attach JPEG, PNG or WEBP images to use them as references. `/imagine help` lists the flags.';

// ---- payload shapes (only the fields used, and only those the docs promise are required) ------

const commandSchema = z.object({
  command: z.string(),
  text: z.string().default(''),
  user_id: z.string(),
  user_name: z.string().optional(),
  channel_id: z.string(),
  team_id: z.string().optional(),
  response_url: z.string().optional(),
  /** Only needed to open the modal (empty /imagine). */
  trigger_id: z.string().optional(),
  thread_ts: z.string().optional(),
});

const userSchema = z.object({ id: z.string(), username: z.string().optional(), name: z.string().optional() });

const blockActionsSchema = z.object({
  user: userSchema,
  team: z.object({ id: z.string() }).nullish(),
  channel: z.object({ id: z.string() }).nullish(),
  container: z
    .object({ channel_id: z.string().optional(), message_ts: z.string().optional(), thread_ts: z.string().optional(), is_ephemeral: z.boolean().optional() })
    .nullish(),
  message: z.object({ ts: z.string(), thread_ts: z.string().optional() }).nullish(),
  response_url: z.string().optional(),
  actions: z
    .array(
      z.object({
        action_id: z.string(),
        value: z.string().nullish(),
        selected_option: z.object({ value: z.string() }).nullish(),
      }),
    )
    .min(1),
});

const slackFileSchema = z.object({
  id: z.string(),
  name: z.string().optional(),
  mimetype: z.string().optional(),
  filetype: z.string().optional(),
  url_private: z.string().optional(),
  url_private_download: z.string().optional(),
});

const messageShortcutSchema = z.object({
  trigger_id: z.string().optional(),
  user: userSchema,
  team: z.object({ id: z.string() }).nullish(),
  channel: z.object({ id: z.string() }),
  response_url: z.string().optional(),
  message: z.object({ ts: z.string(), thread_ts: z.string().optional(), files: z.array(slackFileSchema).optional() }),
});

/** The Events API's app_mention (a message that mentions the bot). */
const appMentionSchema = z.object({
  user: z.string(),
  text: z.string().default(''),
  channel: z.string(),
  ts: z.string(),
  thread_ts: z.string().optional(),
  team: z.string().optional(),
  files: z.array(slackFileSchema).optional(),
});

const viewSubmissionSchema = z.object({
  user: userSchema,
  team: z.object({ id: z.string() }).nullish(),
  view: z.object({
    private_metadata: z.string().default(''),
    state: z.object({ values: z.record(z.string(), z.record(z.string(), z.any())) }),
    blocks: z.array(z.object({ block_id: z.string().optional() }).loose()).default([]),
  }),
});

const requesterOf = (user: z.infer<typeof userSchema>): Requester => ({
  platform: 'slack',
  userId: user.id,
  ...(user.username || user.name ? { name: (user.username ?? user.name)! } : {}),
});

// ---- the shared flow of one /imagine request ------------------------------------------------

export class SlackHandlers {
  readonly #ctx: SlackContext;
  readonly #deliverer: SlackDeliverer;

  constructor(ctx: SlackContext, deliverer: SlackDeliverer) {
    this.#ctx = ctx;
    this.#deliverer = deliverer;
  }

  register(app: App): void {
    const ctx = this.#ctx;
    // Everything after ack() is deferred (ctx.afterAck): the acknowledgement goes out first.
    app.command(/^\/imagine/, async ({ ack, body }) => {
      await ack();
      const c = this.#read(commandSchema, body, '/imagine');
      if (c) ctx.afterAck('/imagine', () => this.onImagineCommand(c), { urgent: c.text.trim() === '' });
    });
    app.command(/^\/quota/, async ({ ack, body }) => {
      await ack();
      const c = this.#read(commandSchema, body, '/quota');
      if (c) ctx.afterAck('/quota', () => this.#quota(whereOfCommand(c), { platform: 'slack', userId: c.user_id }));
    });
    app.view(IMAGINE_MODAL_CALLBACK_ID, async ({ ack, body }) => {
      // The submission is parsed before ack() because the ack carries field errors back into
      // the modal; parsing is synchronous and takes microseconds.
      const read = viewSubmissionSchema.safeParse(body);
      if (!read.success) {
        ctx.log.warn({ issues: read.error.issues.slice(0, 5) }, 'slack modal submission the bot cannot read');
        await ack({ response_action: 'errors', errors: { prompt: UNREADABLE_REQUEST } });
        return;
      }
      const parsed = read.data;
      const verdict = this.checkSubmission(parsed);
      if (verdict.kind === 'errors') {
        await ack({ response_action: 'errors', errors: verdict.errors });
        return;
      }
      await ack();
      ctx.afterAck('modal submission', () => this.onModalSubmitted(parsed, verdict.meta));
    });
    app.shortcut(IMAGINE_SHORTCUT_CALLBACK_ID, async ({ ack, body }) => {
      await ack();
      const s = this.#read(messageShortcutSchema, body, 'message shortcut');
      if (s) ctx.afterAck('message shortcut', () => this.onMessageShortcut(s), { urgent: true });
    });
    app.action(/^imagine:/, async ({ ack, body }) => {
      await ack();
      const b = this.#read(blockActionsSchema, body, 'button');
      if (b) ctx.afterAck('button', () => this.onAction(b));
    });
    // Events are acknowledged by Bolt itself (HTTP 200 on arrival).
    app.event('app_mention', async ({ event, context }) => {
      const m = this.#read(appMentionSchema, event, 'mention');
      if (!m) return;
      ctx.afterAck('mention', async () => {
        // Slack redelivers an event it believes was lost (no 200 within 3 s, an error, a dropped
        // connection), for up to an hour, possibly to another process: each message once.
        if (!(await ctx.engine.claimOnce(`slack:mention:${m.channel}:${m.ts}`, MENTION_DEDUPE_MS))) {
          ctx.log.info({ channel: m.channel, ts: m.ts, retryNum: context.retryNum }, 'slack mention already handled; redelivery ignored');
          return;
        }
        await this.onMention(m, context.botUserId);
      });
    });
  }

  /**
   * Reads an acknowledged payload. One the bot cannot read is logged and, when it says who and
   * where, explained to the user: never a silent no-op.
   */
  #read<T>(schema: z.ZodType<T>, body: unknown, what: string): T | undefined {
    const read = schema.safeParse(body);
    if (read.success) return read.data;
    this.#ctx.log.warn({ what, issues: read.error.issues.slice(0, 5) }, 'slack payload the bot cannot read');
    const where = roughWhere(body);
    if (where) this.#ctx.afterAck(what, () => tellUser(this.#ctx, where, UNREADABLE_REQUEST));
    return undefined;
  }

  async onImagineCommand(c: z.infer<typeof commandSchema>): Promise<void> {
    const where = whereOfCommand(c);
    const requester: Requester = { platform: 'slack', userId: c.user_id, ...(c.user_name ? { name: c.user_name } : {}) };
    const text = c.text.trim();
    const word = text.toLowerCase();
    if (text === '') return this.#openModal(c.trigger_id, where, { channel: c.channel_id, ...(c.thread_ts ? { threadTs: c.thread_ts } : {}), refs: [] });
    if (HELP_WORDS.has(word)) return tellUser(this.#ctx, where, helpMessage(this.#ctx));
    if (QUOTA_WORDS.has(word)) return this.#quota(where, requester);
    let request: ImagineRequestInput;
    try {
      request = buildImagineRequest({ prompt: text, options: {}, refs: [], requester, location: locationFor(where) }, this.#ctx.engine.models, this.#ctx.engine.defaultModel);
    } catch (err) {
      return this.#refuse(where, err);
    }
    await this.startJob(request, where);
  }

  async #quota(where: Where, requester: Requester): Promise<void> {
    try {
      await tellUser(this.#ctx, where, quotaText(await this.#ctx.engine.quota(requester), SLACK_FORMAT));
    } catch (err) {
      await this.#refuse(where, err);
    }
  }

  async #openModal(triggerId: string | undefined, where: Where, meta: ModalMetadata): Promise<void> {
    const ctx = this.#ctx;
    if (!triggerId) return tellUser(ctx, where, NO_TRIGGER);
    try {
      // No rate-limit wait here: the trigger_id dies 3 s after the click.
      await ctx.client.views.open({ trigger_id: triggerId, view: imagineModal({ models: ctx.engine.models, defaultModel: ctx.engine.defaultModel, meta }) });
    } catch (err) {
      ctx.log.warn({ err: String(err), code: slackErrorCode(err) }, 'views.open failed');
      await tellUser(ctx, where, 'Slack did not let me open the form in time. Please try again, or type your prompt after /imagine (see /imagine help).');
    }
  }

  /** Submits a request and posts its placeholder; a refusal becomes an ephemeral sentence. */
  async startJob(request: ImagineRequestInput, where: Where, cleanupOnRefusal?: string): Promise<void> {
    const ctx = this.#ctx;
    let job;
    try {
      job = await this.#deliverer.trackSubmission(ctx.engine.submit(request));
    } catch (err) {
      await removeDownloads(cleanupOnRefusal);
      return this.#refuse(where, err);
    }
    ctx.log.info({ jobId: job.id, user: where.user, channel: where.channel }, 'slack job submitted');
    await this.#deliverer.postPlaceholder(job, where);
  }

  async #refuse(where: Where, err: unknown): Promise<void> {
    const code = errorCode(err);
    if (code === 'INTERNAL') this.#ctx.log.error({ err, user: where.user }, 'slack request failed');
    else this.#ctx.log.info({ code, user: where.user }, 'slack request refused');
    await tellUser(this.#ctx, where, toUserMessage(err));
  }

  /** Checks a modal submission before ack: field errors go back into the modal. */
  checkSubmission(
    s: z.infer<typeof viewSubmissionSchema>,
  ): { kind: 'errors'; errors: Record<string, string> } | { kind: 'ok'; meta: ModalMetadata } {
    const blocks = new Set(s.view.blocks.map((b) => b.block_id).filter((b): b is string => !!b));
    const inModal = (block: string) => (blocks.has(block) ? block : 'prompt');
    const meta = decodeMetadata(s.view.private_metadata);
    if (!meta) return { kind: 'errors', errors: { prompt: MODAL_EXPIRED } };
    try {
      const sub = readSubmission(s.view.state.values as ViewStateValues);
      // Flags typed in the prompt and the model choice are checked now, while the user can fix them.
      buildImagineRequest(
        { prompt: sub.prompt, options: sub.options, refs: [], requester: requesterOf(s.user), location: {} },
        this.#ctx.engine.models,
        this.#ctx.engine.defaultModel,
      );
    } catch (err) {
      if (err instanceof ValidationError) return { kind: 'errors', errors: { [inModal(modalErrorBlock(err.field))]: err.userMessage } };
      throw err;
    }
    return { kind: 'ok', meta };
  }

  async onModalSubmitted(s: z.infer<typeof viewSubmissionSchema>, meta: ModalMetadata): Promise<void> {
    const ctx = this.#ctx;
    const requester = requesterOf(s.user);
    const where: Where = { channel: meta.channel, user: s.user.id, ...(meta.threadTs ? { threadTs: meta.threadTs } : {}), ...(s.team?.id ? { team: s.team.id } : {}) };
    const sub = readSubmission(s.view.state.values as ViewStateValues);
    await this.#startWithFiles({ prompt: sub.prompt, options: sub.options, requester }, [...meta.refs, ...sub.files], where, async (id) => {
      const f = (await ctx.client.files.info({ file: id })).file;
      const url = f?.url_private ?? f?.url_private_download;
      return url ? { url, ...(f?.name ? { name: f.name } : {}) } : undefined;
    });
  }

  /**
   * Downloads the Slack files (a failure names the image), builds the request with them as
   * references and starts it; every refusal is told to the user, and the downloads removed.
   */
  async #startWithFiles(
    input: Pick<ImagineInput, 'prompt' | 'options' | 'requester'>,
    refs: readonly SlackFileRef[],
    where: Where,
    lookupUrl?: DownloadOptions['lookupUrl'],
  ): Promise<void> {
    const ctx = this.#ctx;
    let references: ReferenceInput[];
    let dir: string | undefined;
    try {
      ({ references, dir } = await downloadSlackFiles(refs, { token: ctx.botToken, apiUrl: slackApiUrl(ctx.config), dir: slackRefsDir(ctx), ...(lookupUrl ? { lookupUrl } : {}) }));
    } catch (err) {
      return this.#refuse(where, err);
    }
    let request: ImagineRequestInput;
    try {
      request = buildImagineRequest({ ...input, refs: references, location: locationFor(where) }, ctx.engine.models, ctx.engine.defaultModel);
    } catch (err) {
      await removeDownloads(dir);
      return this.#refuse(where, err);
    }
    await this.startJob(request, where, dir);
  }

  /**
   * "@Imagine a prompt --flags" with images attached: a job whose references are the attached
   * files (each checked like any reference: a non-image or a too-large file is named in the
   * error), answered in the message's thread.
   */
  async onMention(m: z.infer<typeof appMentionSchema>, botUserId: string | undefined): Promise<void> {
    const ctx = this.#ctx;
    const where: Where = { channel: m.channel, user: m.user, threadTs: m.thread_ts ?? m.ts, ...(m.team ? { team: m.team } : {}) };
    // Only the bot's own mention is removed: other mentions may be part of the prompt.
    const text = (botUserId ? m.text.replaceAll(new RegExp(`<@${botUserId}(?:\\|[^>]*)?>`, 'g'), ' ') : m.text).replace(/\s+/g, ' ').trim();
    const word = text.toLowerCase();
    if (text === '') return tellUser(ctx, where, MENTION_USAGE);
    if (HELP_WORDS.has(word)) return tellUser(ctx, where, helpMessage(ctx));
    if (QUOTA_WORDS.has(word)) return this.#quota(where, { platform: 'slack', userId: m.user });
    await this.#startWithFiles({ prompt: text, options: {}, requester: { platform: 'slack', userId: m.user } }, (m.files ?? []).map(fileRef), where);
  }

  async onMessageShortcut(s: z.infer<typeof messageShortcutSchema>): Promise<void> {
    const threadTs = s.message.thread_ts ?? s.message.ts;
    const where: Where = {
      channel: s.channel.id,
      user: s.user.id,
      threadTs,
      ...(s.response_url ? { responseUrl: s.response_url } : {}),
      ...(s.team?.id ? { team: s.team.id } : {}),
    };
    const maxRefs = Math.max(1, ...this.#ctx.engine.models.map((m) => m.maxReferences));
    const images = (s.message.files ?? []).filter((f) => IMAGE_MIME.test(mimeOf(f)));
    if (images.length === 0) return tellUser(this.#ctx, where, NO_IMAGES_IN_MESSAGE);
    const refs = images.slice(0, maxRefs).map(fileRef);
    await this.#openModal(s.trigger_id, where, { channel: s.channel.id, threadTs, refs });
  }

  async onAction(b: z.infer<typeof blockActionsSchema>): Promise<void> {
    const ctx = this.#ctx;
    const action = b.actions[0]!;
    const channel = b.channel?.id ?? b.container?.channel_id;
    const messageTs = b.message?.ts ?? b.container?.message_ts;
    if (!channel || !messageTs) {
      ctx.log.warn({ actionId: action.action_id }, 'button click without a channel or message');
      return;
    }
    const threadTs = b.message?.thread_ts ?? b.container?.thread_ts ?? messageTs;
    const where: Where = { channel, user: b.user.id, threadTs, ...(b.response_url ? { responseUrl: b.response_url } : {}), ...(b.team?.id ? { team: b.team.id } : {}) };
    const ref = decodeAction(action.action_id, action.selected_option?.value ?? undefined);
    if (!ref) return tellUser(ctx, where, UNKNOWN_BUTTON);
    try {
      const parent = await ctx.engine.getJob(ref.jobId);
      if (!parent) throw new JobNotFoundError(ref.jobId);
      if (ref.action === 'delete') return await this.#delete(parent.request.requester, parent.request.location, where, messageTs);
      const request = requestForAction(parent, ref.action, {
        ...('index' in ref ? { index: ref.index } : {}),
        ...('ratio' in ref && ref.ratio ? { ratio: ref.ratio } : {}),
        clicker: requesterOf(b.user),
        location: locationFor(where),
        models: ctx.engine.models,
      });
      await this.startJob(request, where);
    } catch (err) {
      await this.#refuse(where, err);
    }
  }

  async #delete(owner: Requester, location: unknown, where: Where, messageTs: string): Promise<void> {
    const ctx = this.#ctx;
    if (owner.platform !== 'slack' || owner.userId !== where.user) return tellUser(ctx, where, NOT_OWNER_DELETE(owner.userId));
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
}

const helpMessage = (ctx: SlackContext) => `*How to use /imagine*\n\`\`\`${helpText(ctx.engine.models, 'slack')}\`\`\``;

/** A file on a message as a reference to download (the docs' link is url_private; url_private_download serves the same bytes). */
function fileRef(f: z.infer<typeof slackFileSchema>): SlackFileRef {
  const url = f.url_private ?? f.url_private_download;
  return { id: f.id, ...(f.name ? { name: f.name } : {}), ...(url ? { url } : {}), mimetype: mimeOf(f) };
}

/** A file's media type: `mimetype`, else its `filetype` or name's extension (stubs may lack one). */
function mimeOf(f: z.infer<typeof slackFileSchema>): string {
  if (f.mimetype) return f.mimetype;
  const ext = (f.filetype ?? f.name?.split('.').pop() ?? '').toLowerCase();
  return { jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp' }[ext] ?? '';
}

/** Who and where, read loosely from any payload (commands use *_id fields, interactions objects). */
function roughWhere(body: unknown): Where | undefined {
  const b = (body ?? {}) as Record<string, unknown>;
  const obj = (v: unknown) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {});
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  const user = str(b.user_id) ?? str(b.user) ?? str(obj(b.user).id);
  const channel = str(b.channel_id) ?? str(b.channel) ?? str(obj(b.channel).id) ?? str(obj(b.container).channel_id);
  const responseUrl = str(b.response_url);
  if (!user || !channel) return undefined;
  return { user, channel, ...(responseUrl ? { responseUrl } : {}) };
}

function whereOfCommand(c: z.infer<typeof commandSchema>): Where {
  return {
    channel: c.channel_id,
    user: c.user_id,
    ...(c.thread_ts ? { threadTs: c.thread_ts } : {}),
    ...(c.team_id ? { team: c.team_id } : {}),
    ...(c.response_url ? { responseUrl: c.response_url } : {}),
  };
}

/** Where downloaded Slack reference images live (kept as long as jobs, so Rerun can reuse them). */
export function slackRefsDir(ctx: Pick<SlackContext, 'config'>): string {
  return `${ctx.config.DATA_DIR.replace(/\/+$/, '')}/slack-refs`;
}
