/**
 * What the bot asks Slack about a workspace for governance (docs/governance.md):
 * - who is an admin: workspace admins and owners (users.info's is_admin, is_owner,
 *   is_primary_owner: https://docs.slack.dev/reference/methods/users.info, scope users:read) or a
 *   user the operator listed in SLACK_ADMIN_USERS;
 * - the ServerDirectory an admin's mentions are checked against: a channel is one
 *   conversations.info can see (scopes channels:read / groups:read:
 *   https://docs.slack.dev/reference/methods/conversations.info), a member one users.info knows
 *   and who is not deactivated. Slack has no roles, so there is no hasRole.
 * Answers are cached briefly per process: an admin's next commands cost no Web API call, and a
 * flag changed in Slack counts within a minute.
 */
import type { ServerDirectory } from '../../../commands/command.ts';
import { UserFacingError } from '../../errors.ts';
import { ExpiringMap } from '../../util/expiring-map.ts';
import { slackErrorCode, withRateLimit, type SlackContext } from './context.ts';

/** How long a users.info or conversations.info answer is reused. */
export const WORKSPACE_CACHE_MS = 60_000;

/** Who NOT_ADMIN names on Slack. */
export const SLACK_ADMINS_ARE = 'workspace admins and owners';

/** The users.info fields read. */
export interface SlackMember {
  id: string;
  is_admin?: boolean;
  is_owner?: boolean;
  is_primary_owner?: boolean;
  deleted?: boolean;
}

type Ctx = Pick<SlackContext, 'client' | 'log' | 'tuning' | 'config'>;

export class SlackWorkspace {
  readonly #ctx: Ctx;
  readonly #users: ExpiringMap<string, Promise<SlackMember | undefined>>;
  readonly #channels: ExpiringMap<string, Promise<boolean>>;

  constructor(ctx: Ctx) {
    this.#ctx = ctx;
    this.#users = new ExpiringMap(WORKSPACE_CACHE_MS, () => ctx.tuning.now());
    this.#channels = new ExpiringMap(WORKSPACE_CACHE_MS, () => ctx.tuning.now());
  }

  /** Answers kept (for tests: they go once WORKSPACE_CACHE_MS has passed). */
  get kept(): number {
    return this.#users.size + this.#channels.size;
  }

  #interactive<T>(call: () => Promise<T>): Promise<T> {
    return withRateLimit(this.#ctx, this.#ctx.tuning.interactiveRateLimitWaitMs, call);
  }

  /** The member as users.info describes them; undefined when Slack knows no such user. */
  member(userId: string): Promise<SlackMember | undefined> {
    return this.#users.reuseOrLoad(userId, async () => {
      try {
        const res = await this.#interactive(() => this.#ctx.client.users.info({ user: userId }));
        return res.user?.id ? (res.user as SlackMember) : undefined;
      } catch (err) {
        if (slackErrorCode(err) === 'user_not_found') return undefined;
        this.#ctx.log.warn({ err: String(err), code: slackErrorCode(err), user: userId }, 'users.info failed');
        throw err;
      }
    });
  }

  /** Whether `userId` may use an admin command here: listed by the operator, or a workspace admin or owner. */
  async isAdmin(userId: string): Promise<boolean> {
    if (this.#ctx.config.SLACK_ADMIN_USERS.includes(userId)) return true;
    const m = await this.member(userId);
    return !!m && !m.deleted && !!(m.is_admin || m.is_owner || m.is_primary_owner);
  }

  /** Refuses with NOT_ADMIN unless `userId` is an admin (isAdmin). */
  async requireAdmin(userId: string): Promise<void> {
    if (!(await this.isAdmin(userId))) throw new UserFacingError('NOT_ADMIN', { who: SLACK_ADMINS_ARE });
  }

  hasChannel(channelId: string): Promise<boolean> {
    return this.#channels.reuseOrLoad(channelId, async () => {
      try {
        const res = await this.#interactive(() => this.#ctx.client.conversations.info({ channel: channelId }));
        return !!res.channel?.id;
      } catch (err) {
        // A channel that does not exist and a private one the bot is not in answer the same.
        if (slackErrorCode(err) === 'channel_not_found') return false;
        this.#ctx.log.warn({ err: String(err), code: slackErrorCode(err), channel: channelId }, 'conversations.info failed');
        throw err;
      }
    });
  }

  async hasMember(userId: string): Promise<boolean> {
    const m = await this.member(userId);
    return !!m && !m.deleted;
  }

  readonly directory: ServerDirectory = {
    hasChannel: (id) => this.hasChannel(id),
    hasMember: (id) => this.hasMember(id),
  };
}

const workspaces = new WeakMap<object, SlackWorkspace>();

/** The one SlackWorkspace (and its cache) of an adapter's context. */
export function workspaceOf(ctx: SlackContext): SlackWorkspace {
  let w = workspaces.get(ctx);
  if (!w) workspaces.set(ctx, (w = new SlackWorkspace(ctx)));
  return w;
}
