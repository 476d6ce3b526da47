/**
 * /imagine-admin: a server's (Discord guild's) or workspace's (Slack team's) admins see and change
 * the bot's rules there (docs/governance.md "Admin command"). One definition for both platforms: a
 * single text option, parsed by one grammar (grammar.ts). Who may use it is the platform's call
 * (`admin: true`: Discord's Manage Server, Slack's admin flags), checked by the dispatchers before
 * prepare; the answer is always private.
 */
import { scopeOf, type ScopeKey } from '../../src/engine/governance/api.ts';
import { UserFacingError } from '../../src/errors.ts';
import type { Command, CommandInput, CommandSurface, Invocation, PrepareContext, ServerDirectory } from '../command.ts';
import type { CommandDefinition } from '../options.ts';
import { adminHelpText, parseAdminText, type Mention } from './grammar.ts';
import { auditText, confirmationText, filterListText, settingsSummaryText, usageText } from './render.ts';

/** How many members the usage view lists, and how many audit entries it shows. */
export const USAGE_TOP_MEMBERS = 10;
export const AUDIT_ENTRIES_SHOWN = 15;

export const ADMIN_DEFINITION = {
  name: 'imagine-admin',
  description: "Server admins: see and change the image bot's rules here (try \"help\")",
  options: {
    action: {
      type: 'string',
      description: 'What to see or change, e.g. "channels allow #art", "tier @Patrons 50", "usage" or "help"',
      maxLength: 1000,
    },
  },
} as const satisfies CommandDefinition;

/** Refuses a mention of a channel, role or member the server doesn't have. */
async function checkMentions(mentions: readonly Mention[], directory: ServerDirectory | undefined): Promise<void> {
  if (!directory) return;
  for (const m of mentions) {
    if (m.kind === 'channel' && !(await directory.hasChannel(m.id))) throw new UserFacingError('UNKNOWN_CHANNEL', { id: m.id });
    // Slack has no roles: its directory has no hasRole, so a role mention there is unknown.
    if (m.kind === 'role' && !(await directory.hasRole?.(m.id))) throw new UserFacingError('UNKNOWN_ROLE', { id: m.id });
    if (m.kind === 'member' && !(await directory.hasMember(m.id))) throw new UserFacingError('UNKNOWN_USER', { id: m.id });
  }
}

function prepare(input: CommandInput, context: PrepareContext): Invocation {
  const scope: ScopeKey | undefined = scopeOf(input.requester);
  if (!scope) throw new UserFacingError('ADMIN_NEEDS_SERVER', { command: ADMIN_DEFINITION.name });
  const text = typeof input.options.action === 'string' ? input.options.action : '';
  const parsed = parseAdminText(text, context.models, ADMIN_DEFINITION.name);
  return {
    visibility: 'private',
    run: async (surface: CommandSurface) => {
      const governance = surface.engine.governance;
      const ctx = { ceilings: governance.ceilings, defaultModel: surface.engine.defaultModel, format: surface.format };
      switch (parsed.view) {
        case 'show':
          return surface.reply(settingsSummaryText(await governance.settings(scope), ctx));
        case 'help':
          return surface.reply(adminHelpText(ADMIN_DEFINITION.name));
        case 'filter-list':
          return surface.reply(filterListText(await governance.settings(scope), surface.format));
        case 'usage':
          return surface.reply(usageText(await governance.usage(scope, parsed.period, USAGE_TOP_MEMBERS), surface.format));
        case 'audit':
          return surface.reply(auditText(await governance.audit(scope, AUDIT_ENTRIES_SHOWN), surface.format));
        case 'action': {
          await checkMentions(parsed.mentions, surface.directory);
          const settings = await governance.apply(scope, input.requester, parsed.action);
          return surface.reply(confirmationText(parsed.action, settings, ctx));
        }
      }
    },
  };
}

export const imagineAdmin = { ...ADMIN_DEFINITION, admin: true, prepare } satisfies Command;

export * from './grammar.ts';
export * from './render.ts';
