/**
 * The audit log of a server or workspace: every admin change and every prompt-filter refusal
 * (who, what, when), newest first, for the admin's view and, when the admin picked one, posted
 * to a log channel too (issue 10, "Seeing"; docs/governance.md).
 *
 * Stored as a bounded recent list (Store.recentPush: one atomic step that also trims and sets the
 * expiry), so it never grows without limit and every process sharing the store sees the same
 * log. Posting to the channel is best effort: the entry is in the store first, and a platform
 * failure is logged, never thrown, so an admin's change never fails because the log channel
 * is gone or the bot lost access to it.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../log.ts';
import { DAY_MS } from '../quota.ts';
import type { Store } from '../store.ts';
import type { AuditEntry, ScopeKey } from './api.ts';

/** Entries kept per scope. */
export const AUDIT_MAX_ENTRIES = 500;
/** How long the log lives after its latest entry. */
export const AUDIT_TTL_MS = 90 * DAY_MS;

const auditKey = (scope: ScopeKey) => `audit:${scope}`;

/** An entry as stored: with a unique id, since recentPush keeps one copy of equal members. */
interface StoredEntry extends AuditEntry {
  id: string;
}

/** How an entry reads in the log channel (mentions stay platform-neutral; the adapter renders them). */
export function auditText(entry: Omit<AuditEntry, 'at'>): string {
  return `<@${entry.actorId}>: ${entry.summary}`;
}

export interface AuditLogOptions {
  now?: () => number;
  /** Posts `text` in `channelId` of the scope's platform (Deliverer.notify). */
  notify?: (scope: ScopeKey, channelId: string, text: string) => Promise<void>;
  /** Where a failed post is reported. */
  log?: Logger;
}

export class AuditLog {
  readonly #store: Store;
  readonly #now: () => number;
  readonly #notify: AuditLogOptions['notify'];
  readonly #log: Logger | undefined;

  constructor(store: Store, opts: AuditLogOptions = {}) {
    this.#store = store;
    this.#now = opts.now ?? Date.now;
    this.#notify = opts.notify;
    this.#log = opts.log;
  }

  /** Appends `entry` (stamped now) to the scope's log, then posts it to `logChannel` when given. */
  async record(scope: ScopeKey, entry: Omit<AuditEntry, 'at'>, logChannel?: string): Promise<void> {
    const stored: StoredEntry = { id: randomUUID(), at: this.#now(), actorId: entry.actorId, kind: entry.kind, summary: entry.summary };
    await this.#store.recentPush(auditKey(scope), JSON.stringify(stored), AUDIT_MAX_ENTRIES, AUDIT_TTL_MS);
    if (logChannel === undefined || !this.#notify) return;
    try {
      await this.#notify(scope, logChannel, auditText(entry));
    } catch (err) {
      this.#log?.warn({ err, scope, channelId: logChannel }, 'could not post an audit entry to the log channel');
    }
  }

  /** The scope's newest `limit` entries, newest first. */
  async list(scope: ScopeKey, limit: number): Promise<AuditEntry[]> {
    if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError(`limit must be a non-negative integer, got ${limit}`);
    const members = (await this.#store.recentList(auditKey(scope))).slice(0, limit);
    return members.flatMap((member): AuditEntry[] => {
      try {
        const { at, actorId, kind, summary } = JSON.parse(member) as StoredEntry;
        return [{ at, actorId, kind, summary }];
      } catch {
        return []; // not written by this module: skip rather than fail the whole view
      }
    });
  }
}
