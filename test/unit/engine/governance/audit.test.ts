/**
 * The audit log (governance/audit.ts) on both real backends: newest first, bounded, shared by
 * every process on the store, and posted to the log channel best effort.
 */
import { describe, expect, it } from 'vitest';
import { AUDIT_MAX_ENTRIES, AuditLog } from '../../../../src/engine/governance/audit.ts';
import type { ScopeKey } from '../../../../src/engine/governance/api.ts';
import { captureLogger } from '../../../integration/engine-harness.ts';
import { useBackends } from './ledger-backends.ts';

const BACKENDS = useBackends('audit');

describe.each(BACKENDS)('AuditLog on $name', (backend) => {
  it('lists entries newest first, per scope, with who, what and when; identical entries are all kept', async () => {
    const { store } = await backend.open();
    let clock = 1_000;
    const audit = new AuditLog(store, { now: () => clock++ });
    await audit.record('discord:g1', { actorId: 'admin1', kind: 'admin', summary: 'daily units set to 5' });
    await audit.record('discord:g1', { actorId: 'u2', kind: 'filter', summary: 'a prompt was refused by the filter' });
    await audit.record('discord:g1', { actorId: 'u2', kind: 'filter', summary: 'a prompt was refused by the filter' });
    await audit.record('slack:T1', { actorId: 'U9', kind: 'admin', summary: 'blocked <@U7>' });
    expect(await audit.list('discord:g1', 10)).toEqual([
      { at: 1002, actorId: 'u2', kind: 'filter', summary: 'a prompt was refused by the filter' },
      { at: 1001, actorId: 'u2', kind: 'filter', summary: 'a prompt was refused by the filter' },
      { at: 1000, actorId: 'admin1', kind: 'admin', summary: 'daily units set to 5' },
    ]);
    expect((await audit.list('discord:g1', 1)).map((e) => e.at)).toEqual([1002]);
    expect(await audit.list('slack:T1', 10)).toEqual([{ at: 1003, actorId: 'U9', kind: 'admin', summary: 'blocked <@U7>' }]);
  });

  it('keeps only the newest entries', async () => {
    const { store } = await backend.open();
    let clock = 0;
    const audit = new AuditLog(store, { now: () => clock++ });
    for (let i = 0; i < AUDIT_MAX_ENTRIES + 5; i++) await audit.record('discord:g1', { actorId: 'a', kind: 'admin', summary: `change ${i}` });
    const all = await audit.list('discord:g1', AUDIT_MAX_ENTRIES + 100);
    expect(all).toHaveLength(AUDIT_MAX_ENTRIES);
    expect(all[0]?.summary).toBe(`change ${AUDIT_MAX_ENTRIES + 4}`);
    expect(all.at(-1)?.summary).toBe('change 5');
  });

  it('is shared by processes on the same store', async () => {
    const { store, prefix } = await backend.open();
    const { store: other } = await backend.open(prefix);
    await new AuditLog(store).record('discord:g1', { actorId: 'a', kind: 'admin', summary: 'models set to runblob-2' });
    expect((await new AuditLog(other).list('discord:g1', 5)).map((e) => e.summary)).toEqual(['models set to runblob-2']);
  });

  it('posts to the log channel when one is given, and a failed post is logged, not thrown', async () => {
    const { store } = await backend.open();
    const posted: Array<[ScopeKey, string, string]> = [];
    const { log, lines } = captureLogger();
    let fail = false;
    const audit = new AuditLog(store, {
      log,
      notify: async (scope, channelId, text) => {
        if (fail) throw new Error('Missing Access');
        posted.push([scope, channelId, text]);
      },
    });
    await audit.record('discord:g1', { actorId: 'a1', kind: 'admin', summary: 'channel <#c1> allowed' });
    await audit.record('discord:g1', { actorId: 'a1', kind: 'admin', summary: 'filter word added' }, 'log-chan');
    expect(posted).toEqual([['discord:g1', 'log-chan', '<@a1>: filter word added']]);
    fail = true;
    await expect(audit.record('discord:g1', { actorId: 'a1', kind: 'admin', summary: 'x' }, 'log-chan')).resolves.toBeUndefined();
    expect(lines.some((l) => l.includes('could not post an audit entry') && l.includes('Missing Access'))).toBe(true);
    expect(await audit.list('discord:g1', 10)).toHaveLength(3); // stored even when the post failed
  });
});
