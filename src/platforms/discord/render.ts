/**
 * Discord's rendering of the shared texts (commands/render.ts) and components
 * (commands/buttons.ts): markdown, mentions, timestamps, action rows, and the message bodies
 * the adapter sends. Pure functions: no I/O.
 */
import { escapeMarkdown } from 'discord.js';
import {
  cancelButtonFor,
  FORM_TEXT_ID,
  MAX_FORM_TEXT_CHARS,
  componentRows,
  componentsFor,
  failureText,
  progressText,
  summaryText,
  type ButtonSpec,
  type ComponentRow,
  type FormSpec,
  type TextFormat,
} from '../../../commands/index.ts';
import type { JobRecord, ProgressEvent } from '../../engine/job.ts';
import type { ModelSpec } from '../../engine/models.ts';
import type { UploadFile } from './fit-upload.ts';
import { parseLocation } from './location.ts';
import { formatMiB } from '../../util/units.ts';

export const MAX_CONTENT_CHARS = 2000;

export const DISCORD_FORMAT: TextFormat = {
  bold: (text) => `**${text}**`,
  mention: (r) => `<@${r.userId}>`,
  time: (ms) => `<t:${Math.floor(ms / 1000)}:t>`,
  // Markdown is escaped; "<@…>", "<#…>", "<t:…>" are broken up so a prompt cannot render mentions
  // (allowed_mentions already stops pings).
  escape: (text) => escapeMarkdown(text).replace(/<([@#]|t:|a?:)/g, '<\u200b$1'),
  jobLink: (job) => {
    const url = messageUrl(job);
    return url && `[message](<${url}>)`;
  },
};

/** The public message of a job (its placeholder, later its result); none for private ones. */
export function messageUrl(job: JobRecord): string | undefined {
  const loc = parseLocation(job.request.location);
  if (!loc || loc.ephemeral || !loc.messageId) return undefined;
  return `https://discord.com/channels/${loc.guildId ?? '@me'}/${loc.channelId}/${loc.messageId}`;
}

/** Nobody is pinged unless a body says so. */
export const NO_MENTIONS = { parse: [] as never[] };

export function clipContent(text: string): string {
  return text.length <= MAX_CONTENT_CHARS ? text : `${text.slice(0, MAX_CONTENT_CHARS - 1)}…`;
}

const BUTTON_STYLE: Record<ButtonSpec['style'], number> = { primary: 1, secondary: 2, danger: 4 };

export interface ActionRowJson {
  type: 1;
  components: Record<string, unknown>[];
}

function buttonJson(b: ButtonSpec): Record<string, unknown> {
  return { type: 2, style: BUTTON_STYLE[b.style], label: b.label, emoji: { name: b.emoji }, custom_id: b.customId };
}

export function rowsJson(rows: readonly ComponentRow[]): ActionRowJson[] {
  return rows.map((row) =>
    row.kind === 'buttons'
      ? { type: 1, components: row.buttons.map(buttonJson) }
      : {
          type: 1,
          components: [
            {
              type: 3,
              custom_id: row.select.customId,
              placeholder: row.select.placeholder,
              min_values: 1,
              max_values: 1,
              options: row.select.options.map((o) => ({ label: o.label.slice(0, 100), value: o.value })),
            },
          ],
        },
  );
}

/** The action rows under a finished job (Upscale U1…U4, Rerun, Delete, Change ratio). */
export function jobComponentsJson(job: JobRecord, models: readonly ModelSpec[]): ActionRowJson[] {
  return rowsJson(componentRows(componentsFor(job, models)));
}

/** The placeholder's components: Cancel while the job runs. */
export function placeholderComponentsJson(job: JobRecord): ActionRowJson[] {
  const cancel = cancelButtonFor(job);
  return cancel ? rowsJson([{ kind: 'buttons', buttons: [cancel] }]) : [];
}

/** The placeholder's text: state and elapsed time (computed now, so a delayed edit is not stale). */
export function progressContent(job: JobRecord, event: ProgressEvent, now = Date.now()): string {
  return clipContent(`⏳ ${progressText(job, { ...event, elapsedMs: Math.max(event.elapsedMs, now - job.createdAt) }, DISCORD_FORMAT)}`);
}

export function errorContent(userMessage: string): string {
  return clipContent(`⚠️ ${userMessage}`);
}

export interface OriginalLink {
  index: number;
  url: string;
  bytes: number;
}

/** The result's text: the summary, then links to full-size originals of re-encoded images. */
export function resultContent(job: JobRecord, originals: readonly OriginalLink[], prefix = ''): string {
  const body = job.state === 'succeeded' && job.tasks.some((t) => t.image) ? summaryText(job, DISCORD_FORMAT) : failureText(job, DISCORD_FORMAT);
  const lines = [prefix + body];
  if (originals.length > 0) {
    const links = originals.map((o) => `[image ${o.index + 1} (${formatMiB(o.bytes)})](<${o.url}>)`).join(' · ');
    lines.push(`-# Re-encoded to fit Discord's upload limit. Full-size original${originals.length > 1 ? 's' : ''}: ${links}`);
  }
  return clipContent(lines.join('\n'));
}

export interface MessageBody {
  content: string;
  components: ActionRowJson[];
  attachments: { id: string; filename: string; description?: string }[];
  allowed_mentions: { parse: never[]; users?: string[] };
}

/** The body and files of a result message. */
export function resultBody(job: JobRecord, files: readonly UploadFile[], originals: readonly OriginalLink[], models: readonly ModelSpec[], prefix = ''): MessageBody {
  return {
    content: resultContent(job, originals, prefix),
    components: jobComponentsJson(job, models),
    attachments: files.map((f, i) => ({ id: String(i), filename: f.name, description: `Image ${i + 1}` })),
    allowed_mentions: { parse: [] },
  };
}

/**
 * A form as a Discord modal (interaction callback type 9): one Label (type 18) holding a
 * paragraph text input (type 4), Discord's current layout for modal fields
 * (discord.com/developers/docs/components/reference#label). The modal's custom_id is the
 * button's durable id, so the submission (MODAL_SUBMIT) names the job and the image.
 */
export function modalJson(form: FormSpec): Record<string, unknown> {
  return {
    custom_id: form.customId,
    title: form.title.slice(0, 45),
    components: [
      {
        type: 18,
        label: form.label.slice(0, 45),
        component: {
          type: 4,
          custom_id: FORM_TEXT_ID,
          style: form.multiline ? 2 : 1,
          required: true,
          max_length: MAX_FORM_TEXT_CHARS,
          placeholder: form.placeholder.slice(0, 100),
          ...(form.value !== undefined && { value: form.value }),
        },
      },
    ],
  };
}
