/**
 * Block Kit for the job's one public message: the placeholder while the job runs, then the
 * summary with its buttons (Upscale 4K, Vary and Edit per image, Rerun, Remix, Change ratio per
 * image, Delete). The
 * texts are the shared ones (commands/render.ts) and the components come from
 * commands/buttons.ts, so Slack and Discord say and offer the same things. Every action_id (and
 * button value) is the durable `imagine:<action>:<jobId>[:<index>]`, so clicks work after restarts.
 *
 * Limits respected (docs/slack.md "Block Kit"): ≤ 50 blocks, ≤ 25 elements per actions
 * block, button text ≤ 75, action_id ≤ 255, value ≤ 2000, section text ≤ 3000.
 */
import type { types } from '@slack/bolt';
import { cancelButtonFor, componentsFor, type ButtonSpec, type RatioSelectSpec } from '../../../commands/buttons.ts';
import { failureText, progressText, summaryText, undeliverableText } from '../../../commands/render.ts';
import type { JobRecord, ProgressEvent } from '../../engine/job.ts';
import type { ModelSpec } from '../../engine/models.ts';
import { SLACK_FORMAT, SLACK_PLAIN_FORMAT, clip } from './format.ts';

export type Block = types.KnownBlock;

export interface SlackMessageContent {
  /** The notification / accessibility fallback. */
  text: string;
  blocks: Block[];
}

export const MAX_SECTION_TEXT_CHARS = 3000;
export const MAX_BUTTON_TEXT_CHARS = 75;
export const MAX_FALLBACK_TEXT_CHARS = 3000;
export const BUTTONS_BLOCK_ID = 'imagine_buttons';
export const RATIO_BLOCK_ID = 'imagine_ratio';
export const CANCEL_BLOCK_ID = 'imagine_cancel';

const section = (text: string): Block => ({ type: 'section', text: { type: 'mrkdwn', text: clip(text, MAX_SECTION_TEXT_CHARS) } });
const context = (text: string): Block => ({ type: 'context', elements: [{ type: 'mrkdwn', text: clip(text, MAX_SECTION_TEXT_CHARS) }] });

/** The placeholder while the job runs: state, elapsed time, prompt and settings. */
export function placeholderMessage(job: JobRecord, event: ProgressEvent): SlackMessageContent {
  const blocks: Block[] = [section(`⏳ ${progressText(job, event, SLACK_FORMAT)}`)];
  const notes = [`Requested by ${SLACK_FORMAT.mention(job.request.requester)}`, ...(job.request.note ? [job.request.note] : [])];
  blocks.push(context(notes.join(' · ')));
  const cancel = cancelButtonFor(job);
  if (cancel) blocks.push({ type: 'actions', block_id: CANCEL_BLOCK_ID, elements: [button(cancel)] });
  return { text: clip(progressText(job, event, SLACK_PLAIN_FORMAT), MAX_FALLBACK_TEXT_CHARS), blocks };
}

/** The first placeholder, right after submission. */
export function queuedEvent(job: JobRecord, now = Date.now()): ProgressEvent {
  return {
    jobId: job.id,
    state: job.state,
    phase: 'queued',
    elapsedMs: Math.max(0, now - job.createdAt),
    done: 0,
    total: job.tasks.length || job.request.count,
    changed: true,
  };
}

function button(b: ButtonSpec): types.Button {
  const el: types.Button = {
    type: 'button',
    action_id: b.customId,
    value: b.customId,
    text: { type: 'plain_text', text: clip(`${b.emoji} ${b.title}`, MAX_BUTTON_TEXT_CHARS), emoji: true },
  };
  if (b.style === 'primary') el.style = 'primary';
  if (b.style === 'danger') {
    el.style = 'danger';
    el.confirm = {
      title: { type: 'plain_text', text: 'Delete these images?' },
      text: { type: 'mrkdwn', text: 'The message and its images are removed for everyone.' },
      confirm: { type: 'plain_text', text: 'Delete' },
      deny: { type: 'plain_text', text: 'Keep' },
      style: 'danger',
    };
  }
  return el;
}

function ratioSelect(s: RatioSelectSpec): types.StaticSelect {
  return {
    type: 'static_select',
    action_id: s.customId,
    placeholder: { type: 'plain_text', text: clip(s.placeholder, 150), emoji: true },
    options: s.options.map((o) => ({ text: { type: 'plain_text', text: clip(o.label, 75) }, value: o.value })),
  };
}

function componentBlocks(job: JobRecord, models: readonly ModelSpec[]): Block[] {
  const c = componentsFor(job, models);
  // At most 4 × 3 image buttons + 3: within the 25 elements of an actions block.
  const buttons = [...c.upscale, ...c.vary, ...c.edit, ...(c.rerun ? [c.rerun] : []), ...(c.remix ? [c.remix] : []), c.delete].map(button);
  const blocks: Block[] = [{ type: 'actions', block_id: BUTTONS_BLOCK_ID, elements: buttons }];
  if (c.ratioSelects.length > 0) blocks.push({ type: 'actions', block_id: RATIO_BLOCK_ID, elements: c.ratioSelects.map(ratioSelect) });
  return blocks;
}

/** The placeholder once the job succeeded (its images are posted by files.uploadV2 next to it). */
export function resultMessage(job: JobRecord, models: readonly ModelSpec[]): SlackMessageContent {
  const summary = summaryText(job, SLACK_FORMAT);
  return {
    text: clip(summaryText(job, SLACK_PLAIN_FORMAT), MAX_FALLBACK_TEXT_CHARS),
    blocks: [section(`✅ ${summary}`), ...componentBlocks(job, models)],
  };
}

/** The placeholder once the job made no image: what happened, what to do, Try again and Delete. */
export function failedMessage(job: JobRecord, models: readonly ModelSpec[]): SlackMessageContent {
  return {
    text: clip(failureText(job, SLACK_PLAIN_FORMAT), MAX_FALLBACK_TEXT_CHARS),
    blocks: [section(`❌ ${failureText(job, SLACK_FORMAT)}`), context(`Requested by ${SLACK_FORMAT.mention(job.request.requester)}`), ...componentBlocks(job, models)],
  };
}

/** The placeholder when Slack kept refusing the finished images (the engine retries at the next start). */
export function undeliverableMessage(job: JobRecord, reason: string): SlackMessageContent {
  return {
    text: clip(undeliverableText(job, 'Slack', reason, SLACK_PLAIN_FORMAT), MAX_FALLBACK_TEXT_CHARS),
    blocks: [section(`⚠️ ${undeliverableText(job, 'Slack', reason, SLACK_FORMAT)}`), context(`Requested by ${SLACK_FORMAT.mention(job.request.requester)}`)],
  };
}

/** Whether a finished job has any image to post. */
export function imagesOf(job: JobRecord) {
  return job.tasks.flatMap((t) => (t.status === 'succeeded' && t.image ? [{ index: t.index, image: t.image }] : []));
}
