/**
 * Slack's mrkdwn for the shared texts in commands/render.ts: `*bold*`, `<@U…>` mentions,
 * `<!date^…>` times (shown in the reader's own time zone) and escaping of &, < and > so a prompt
 * cannot inject mentions or links (docs.slack.dev "Formatting text for app surfaces").
 */
import type { TextFormat } from '../../../commands/render.ts';
import type { JobRecord } from '../../engine/job.ts';

/** Slack's three control characters in mrkdwn. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * A job's message: Slack's permalink shape (https://slack.com/archives/<channel>/p<ts without the
 * dot>), which Slack opens in the reader's workspace; chat.getPermalink would cost a call per job.
 */
export function messageUrl(job: JobRecord): string | undefined {
  const { channel, ts } = job.request.location as { channel?: unknown; ts?: unknown };
  if (typeof channel !== 'string' || typeof ts !== 'string') return undefined;
  return `https://slack.com/archives/${channel}/p${ts.replace('.', '')}`;
}

export const SLACK_FORMAT: TextFormat = {
  bold: (text) => `*${text}*`,
  mention: (r) => `<@${r.userId}>`,
  time: (ms) => `<!date^${Math.floor(ms / 1000)}^{time}|${new Date(ms).toISOString().slice(11, 16)} UTC>`,
  escape: escapeMrkdwn,
  jobLink: (job) => {
    const url = messageUrl(job);
    return url && `<${url}|message>`;
  },
};

/** Plain text for notification fallbacks (`text` next to `blocks`): no markup, mentions by id. */
export const SLACK_PLAIN_FORMAT: TextFormat = {
  bold: (text) => text,
  mention: (r) => `<@${r.userId}>`,
  time: (ms) => `${new Date(ms).toISOString().slice(11, 16)} UTC`,
  escape: escapeMrkdwn,
};

/** Cuts text to Slack's per-field limits (section text 3000) without breaking a surrogate pair. */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  let cut = text.slice(0, max - 1);
  const last = cut.charCodeAt(cut.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1);
  return `${cut}…`;
}
