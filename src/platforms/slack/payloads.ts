/**
 * The Slack payloads the listeners read, as zod schemas: only the fields used, and of those only
 * what Slack's documentation promises is required (docs/slack.md "Taking input"). Everything
 * else is optional: a payload from an older or newer Slack still reads.
 * - Slash commands: https://docs.slack.dev/interactivity/implementing-slash-commands
 * - block_actions, view_submission, message_action: https://docs.slack.dev/reference/interaction-payloads
 * - app_mention: https://docs.slack.dev/reference/events/app_mention
 */
import { z } from 'zod';
import type { Requester } from '../../engine/request.ts';
import type { Where } from './context.ts';
import type { SlackFileRef } from './files.ts';

export const commandSchema = z.object({
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
export type CommandPayload = z.infer<typeof commandSchema>;

const userSchema = z.object({ id: z.string(), username: z.string().optional(), name: z.string().optional() });
type SlackUser = z.infer<typeof userSchema>;
const teamSchema = z.object({ id: z.string() }).nullish();

export const blockActionsSchema = z.object({
  user: userSchema,
  team: teamSchema,
  channel: z.object({ id: z.string() }).nullish(),
  container: z
    .object({ channel_id: z.string().optional(), message_ts: z.string().optional(), thread_ts: z.string().optional(), is_ephemeral: z.boolean().optional() })
    .nullish(),
  message: z.object({ ts: z.string(), thread_ts: z.string().optional() }).nullish(),
  response_url: z.string().optional(),
  /** Opens a modal within 3 s of the click (Edit, Remix). */
  trigger_id: z.string().optional(),
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
export type BlockActionsPayload = z.infer<typeof blockActionsSchema>;

/** A file on a message, or picked in a file_input. */
export const slackFileSchema = z.object({
  id: z.string(),
  name: z.string().optional(),
  mimetype: z.string().optional(),
  filetype: z.string().optional(),
  url_private: z.string().optional(),
  url_private_download: z.string().optional(),
});
export type SlackFile = z.infer<typeof slackFileSchema>;

export const messageShortcutSchema = z.object({
  trigger_id: z.string().optional(),
  user: userSchema,
  team: teamSchema,
  channel: z.object({ id: z.string() }),
  response_url: z.string().optional(),
  message: z.object({ ts: z.string(), thread_ts: z.string().optional(), files: z.array(slackFileSchema).optional() }),
});
export type MessageShortcutPayload = z.infer<typeof messageShortcutSchema>;

/** The Events API's app_mention (a message that mentions the bot). */
export const appMentionSchema = z.object({
  user: z.string(),
  text: z.string().default(''),
  channel: z.string(),
  ts: z.string(),
  thread_ts: z.string().optional(),
  team: z.string().optional(),
  files: z.array(slackFileSchema).optional(),
});
export type AppMentionPayload = z.infer<typeof appMentionSchema>;

/**
 * One input's entry in a view_submission's `view.state.values` (block_id → action_id → this):
 * text and number inputs send `value`, selects `selected_option`, file_input `files`. Read per
 * input (modal.ts readSubmission), so a value of the wrong type flags that input only.
 */
export const inputStateSchema = z.object({
  type: z.string().optional(),
  value: z.string().nullish(),
  selected_option: z.object({ value: z.string() }).nullish(),
  files: z.array(z.unknown()).nullish(),
});
export type InputState = z.infer<typeof inputStateSchema>;

export const viewSubmissionSchema = z.object({
  user: userSchema,
  team: teamSchema,
  view: z.object({
    private_metadata: z.string().default(''),
    state: z.object({ values: z.record(z.string(), z.record(z.string(), z.unknown())) }),
    blocks: z.array(z.object({ block_id: z.string().optional() }).loose()).default([]),
  }),
});
export type ViewSubmissionPayload = z.infer<typeof viewSubmissionSchema>;

/**
 * Who asked, and where: the workspace (team id) is the scope whose settings apply
 * (docs/governance.md), the channel the one its channel rules are checked against. On Slack a DM
 * is still in the workspace, so it keeps the scope (unlike a Discord DM, which has no server).
 */
export const requesterOf = (user: SlackUser | string, where: Pick<Where, 'team' | 'channel'>): Requester => {
  const u = typeof user === 'string' ? { id: user } : user;
  const name = u.username ?? u.name;
  return {
    platform: 'slack',
    userId: u.id,
    ...(name ? { name } : {}),
    ...(where.team ? { scope: where.team } : {}),
    channelId: where.channel,
  };
};

/** A file as a reference to download (the docs' link is url_private; url_private_download serves the same bytes). */
export function fileRef(f: SlackFile): SlackFileRef {
  const url = f.url_private ?? f.url_private_download;
  return { id: f.id, ...(f.name ? { name: f.name } : {}), ...(url ? { url } : {}) };
}

export function whereOfCommand(c: CommandPayload): Where {
  return {
    channel: c.channel_id,
    user: c.user_id,
    ...(c.thread_ts ? { threadTs: c.thread_ts } : {}),
    ...(c.team_id ? { team: c.team_id } : {}),
    ...(c.response_url ? { responseUrl: c.response_url } : {}),
  };
}

/** Who and where, read loosely from any payload (commands use *_id fields, interactions objects). */
export function roughWhere(body: unknown): Where | undefined {
  const b = (body ?? {}) as Record<string, unknown>;
  const obj = (v: unknown) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {});
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  const user = str(b.user_id) ?? str(b.user) ?? str(obj(b.user).id);
  const channel = str(b.channel_id) ?? str(b.channel) ?? str(obj(b.channel).id) ?? str(obj(b.container).channel_id);
  const responseUrl = str(b.response_url);
  if (!user || !channel) return undefined;
  return { user, channel, ...(responseUrl ? { responseUrl } : {}) };
}
