/**
 * What the bot knows of a guild, for /imagine-admin's mentions (commands/command.ts
 * ServerDirectory): its channels (GET /guilds/{id}/channels), roles (GET /guilds/{id}/roles) and
 * members (GET /guilds/{id}/members/{user}), from Discord's REST
 * (https://discord.com/developers/docs/resources/guild). Admin commands are rare, so lists are
 * fetched when asked and kept briefly per process; a miss on a list older than a few seconds is
 * fetched again (a channel or role created a moment ago is then found).
 */
import { DiscordAPIError, Routes, type REST } from 'discord.js';
import type { ServerDirectory } from '../../../commands/index.ts';
import { ExpiringMap } from '../../util/expiring-map.ts';

/** How long a guild's lists and a member's presence are reused. */
export const DIRECTORY_CACHE_MS = 60_000;
/** A miss on a list at least this old fetches it again before answering "unknown". */
export const DIRECTORY_REFETCH_ON_MISS_MS = 5_000;

/** https://discord.com/developers/docs/topics/opcodes-and-status-codes#json: 10004 Unknown Guild, 10007 Unknown Member, 10013 Unknown User. */
const UNKNOWN_CODES = new Set<number | string>([10004, 10007, 10013]);

export class DiscordDirectories {
  readonly #rest: REST;
  /** Per guild and kind: the ids of its channels or roles. */
  readonly #lists: ExpiringMap<string, Promise<ReadonlySet<string>>>;
  /** Per guild and user: whether they are a member. */
  readonly #members: ExpiringMap<string, Promise<boolean>>;

  constructor(rest: REST, now: () => number = Date.now) {
    this.#rest = rest;
    this.#lists = new ExpiringMap(DIRECTORY_CACHE_MS, now);
    this.#members = new ExpiringMap(DIRECTORY_CACHE_MS, now);
  }

  /** Answers kept (for tests: they go once DIRECTORY_CACHE_MS has passed). */
  get kept(): number {
    return this.#lists.size + this.#members.size;
  }

  /** The directory of one guild. */
  forGuild(guildId: string): ServerDirectory {
    return {
      hasChannel: (id) => this.#inList(guildId, 'channels', id),
      hasRole: (id) => this.#inList(guildId, 'roles', id),
      hasMember: (id) => this.#hasMember(guildId, id),
    };
  }

  async #inList(guildId: string, kind: 'channels' | 'roles', id: string): Promise<boolean> {
    const key = `${guildId}:${kind}`;
    const cached = this.#lists.entry(key);
    if (cached) {
      const ids = await cached.value;
      if (ids.has(id) || cached.ageMs < DIRECTORY_REFETCH_ON_MISS_MS) return ids.has(id);
    }
    const route = kind === 'channels' ? Routes.guildChannels(guildId) : Routes.guildRoles(guildId);
    const fetched = (this.#rest.get(route) as Promise<{ id: string }[]>).then((items) => new Set(items.map((i) => i.id)));
    // A failed fetch is not kept: the next question asks Discord again.
    return (await this.#lists.keepUnlessFailed(key, fetched)).has(id);
  }

  #hasMember(guildId: string, userId: string): Promise<boolean> {
    return this.#members.reuseOrLoad(`${guildId}:${userId}`, () =>
      this.#rest.get(Routes.guildMember(guildId, userId)).then(
        () => true,
        (err: unknown) => {
          if (err instanceof DiscordAPIError && (UNKNOWN_CODES.has(err.code) || err.status === 404)) return false;
          throw err;
        },
      ),
    );
  }
}
