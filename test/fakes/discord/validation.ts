/**
 * Checks request bodies against Discord's official API description, through the zod schemas the
 * `discord-api-spec` package generates from it, and builds Discord's error answers.
 * Route → schema follows the OpenAPI description's requestBody for each operation.
 */
import * as spec from 'discord-api-spec/zod';

interface SafeParsable {
  safeParse(data: unknown): { success: true } | { success: false; error: { issues: readonly Issue[] } };
}
interface Issue {
  code: string;
  path: readonly PropertyKey[];
  message: string;
  maximum?: unknown;
  minimum?: unknown;
}

const schemas = spec as unknown as Record<string, SafeParsable>;
const schema = (name: string): SafeParsable => {
  const s = schemas[name];
  if (!s) throw new Error(`discord-api-spec has no ${name}`);
  return s;
};

/** Interaction callback bodies: the OpenAPI anyOf, picked by `type` so errors point at fields. */
const CALLBACK_SCHEMA_BY_TYPE: Record<number, string> = {
  1: 'PongInteractionCallbackRequestSchema',
  4: 'CreateMessageInteractionCallbackRequestSchema',
  5: 'CreateMessageInteractionCallbackRequestSchema',
  6: 'UpdateMessageInteractionCallbackRequestSchema',
  7: 'UpdateMessageInteractionCallbackRequestSchema',
  8: 'ApplicationCommandAutocompleteCallbackRequestSchema',
  9: 'ModalInteractionCallbackRequestSchema',
  12: 'LaunchActivityInteractionCallbackRequestSchema',
};

export type BodyKind =
  | 'interactionCallback'
  | 'webhookExecute'
  | 'webhookMessageEdit'
  | 'channelMessageCreate'
  | 'channelMessageEdit'
  | 'commandsBulkOverwrite'
  | 'createDm';

const SCHEMA_BY_KIND: Record<Exclude<BodyKind, 'interactionCallback' | 'commandsBulkOverwrite'>, string> = {
  webhookExecute: 'IncomingWebhookRequestPartialSchema',
  webhookMessageEdit: 'IncomingWebhookUpdateRequestPartialSchema',
  channelMessageCreate: 'MessageCreateRequestSchema',
  channelMessageEdit: 'MessageEditRequestPartialSchema',
  createDm: 'CreatePrivateChannelRequestSchema',
};

export interface DiscordErrorBody {
  code: number;
  message: string;
  errors?: unknown;
}

const ISSUE_CODES: Record<string, string> = {
  too_big: 'BASE_TYPE_MAX_LENGTH',
  too_small: 'BASE_TYPE_MIN_LENGTH',
  invalid_type: 'BASE_TYPE_BAD_TYPE',
  invalid_value: 'BASE_TYPE_CHOICES',
  invalid_union: 'UNION_TYPE_CHOICES',
  invalid_format: 'BASE_TYPE_BAD_FORMAT',
};

/** Discord's 50035 "Invalid Form Body" with errors nested by path, each leaf holding `_errors`. */
export function invalidFormBody(issues: readonly { path: readonly PropertyKey[]; code: string; message: string }[]): DiscordErrorBody {
  const errors: Record<string, unknown> = {};
  for (const issue of issues) {
    let node = errors;
    for (const key of issue.path) {
      const k = String(key);
      node[k] ??= {};
      node = node[k] as Record<string, unknown>;
    }
    const list = (node._errors ??= []) as { code: string; message: string }[];
    list.push({ code: ISSUE_CODES[issue.code] ?? issue.code.toUpperCase(), message: issue.message });
  }
  return { code: 50035, message: 'Invalid Form Body', errors };
}

/** Validates one JSON body; returns Discord's error body, or undefined when valid. */
export function validateBody(kind: BodyKind, body: unknown): DiscordErrorBody | undefined {
  let target: SafeParsable;
  if (kind === 'interactionCallback') {
    const type = (body as { type?: unknown } | null)?.type;
    const name = typeof type === 'number' ? CALLBACK_SCHEMA_BY_TYPE[type] : undefined;
    if (!name) {
      return invalidFormBody([{ path: ['type'], code: 'invalid_value', message: 'Value must be one of {1, 4, 5, 6, 7, 8, 9, 12}.' }]);
    }
    target = schema(name);
  } else if (kind === 'commandsBulkOverwrite') {
    if (!Array.isArray(body)) return invalidFormBody([{ path: [], code: 'invalid_type', message: 'Must be an array.' }]);
    if (body.length > 130) return invalidFormBody([{ path: [], code: 'too_big', message: 'Must be 130 or fewer in length.' }]);
    const item = schema('ApplicationCommandUpdateRequestSchema');
    const issues: Issue[] = [];
    body.forEach((cmd, i) => {
      // Discord's docs give default_member_permissions as a string ("a bit set"); the OpenAPI
      // description as an integer. Both are accepted; a string must hold a decimal integer
      // (https://discord.com/developers/docs/interactions/application-commands#application-command-object).
      const dmp = (cmd as { default_member_permissions?: unknown } | null)?.default_member_permissions;
      if (typeof dmp === 'string') {
        if (!/^\d{1,20}$/.test(dmp)) {
          issues.push({ code: 'number_type_coerce', path: [i, 'default_member_permissions'], message: `Value "${dmp}" is not int.` });
          return;
        }
        cmd = { ...(cmd as object), default_member_permissions: Number(dmp) };
      }
      const r = item.safeParse(cmd);
      if (!r.success) issues.push(...r.error.issues.map((is) => ({ ...is, path: [i, ...is.path] })));
    });
    return issues.length ? invalidFormBody(issues) : undefined;
  } else {
    target = schema(SCHEMA_BY_KIND[kind]);
  }
  const result = target.safeParse(body);
  if (result.success) return undefined;
  return invalidFormBody(result.error.issues);
}

export const ERRORS = {
  unknownInteraction: { code: 10062, message: 'Unknown interaction' },
  alreadyAcknowledged: { code: 40060, message: 'Interaction has already been acknowledged.' },
  invalidWebhookToken: { code: 50027, message: 'Invalid Webhook Token' },
  unknownMessage: { code: 10008, message: 'Unknown Message' },
  unknownWebhook: { code: 10015, message: 'Unknown Webhook' },
  unknownChannel: { code: 10003, message: 'Unknown Channel' },
  tooManyAttachments: { code: 30015, message: 'Maximum number of attachments in a message reached (10)' },
  entityTooLarge: { code: 40005, message: 'Request entity too large' },
  unauthorized: { code: 0, message: '401: Unauthorized' },
  missingPermissions: { code: 50013, message: 'Missing Permissions' },
  cannotEditOthers: { code: 50005, message: 'Cannot edit a message authored by another user' },
  notFound: { code: 0, message: '404: Not Found' },
  unknownGuild: { code: 10004, message: 'Unknown Guild' },
  unknownEmoji: { code: 10014, message: 'Unknown Emoji' },
  interactionNotReplied: { code: 10015, message: 'Unknown Webhook' },
} as const satisfies Record<string, DiscordErrorBody>;
