/**
 * Small fakes for calling the Slack listeners directly, as the bolt-js starter's tests do: an
 * `ack` that records when it was called, a Web API client that records every call, an engine
 * that records submissions, and an afterAck that holds the deferred work until `settle()`.
 */
import type { EngineApi, QuotaView } from '../../../../src/engine/api.ts';
import type { JobRecord } from '../../../../src/engine/job.ts';
import type { ModelSpec } from '../../../../src/engine/models.ts';
import type { ImagineRequestInput, Requester } from '../../../../src/engine/request.ts';
import { serverSettingsSchema, type AdminAction, type UserPreferences } from '../../../../src/engine/governance/api.ts';
import { createLogger } from '../../../../src/log.ts';
import { AckFirst } from '../../../../src/platforms/ack-first.ts';
import { DEFAULT_TUNING, type SlackContext, type WebClient } from '../../../../src/platforms/slack/context.ts';
import type { ListenerDeps } from '../../../../src/platforms/slack/listeners/index.ts';
import type { SlackWebCalls } from '../../../../src/platforms/slack/web-api.ts';
import { ALL_MODELS, makeJob } from './fixtures.ts';

export type Call = { method: string; args: Record<string, unknown> };

export interface FakeOptions {
  models?: readonly ModelSpec[];
  /** What engine.submit does (default: a stored job). */
  submit?: (request: ImagineRequestInput) => Promise<JobRecord>;
  jobs?: Record<string, JobRecord>;
  /** Web API methods that fail, with the error they throw. */
  failing?: Record<string, unknown>;
  /** users.info's flags by user id (every other id is an ordinary member). */
  users?: Record<string, { is_admin?: boolean; is_owner?: boolean }>;
  /** Each user's saved /settings, by user id. */
  preferences?: Record<string, UserPreferences>;
}

export function fakeSlack(opts: FakeOptions = {}) {
  /** Everything in the order it happened: 'ack', then Web API methods, 'submit', 'placeholder'. */
  const events: string[] = [];
  const calls: Call[] = [];
  const acks: unknown[] = [];
  const submitted: ImagineRequestInput[] = [];
  const placeholders: { jobId: string; where: unknown }[] = [];
  const deferred: { what: string; urgent: boolean; work: () => Promise<void> }[] = [];
  const logs: Record<string, unknown>[] = [];
  const claimed = new Set<string>();
  const applied: { scope: string; actor: Requester; action: AdminAction }[] = [];
  const preferences = new Map<string, UserPreferences>(Object.entries(opts.preferences ?? {}));

  const rec = (method: string, answer: Record<string, unknown> = {}) => async (args: Record<string, unknown>) => {
    events.push(method);
    calls.push({ method, args });
    if (opts.failing?.[method] !== undefined) throw opts.failing[method];
    return { ok: true, ...answer };
  };
  const client = {
    users: {
      info: async (args: Record<string, unknown>) => {
        const id = String(args.user);
        events.push('users.info');
        calls.push({ method: 'users.info', args });
        return { ok: true, user: { id, ...opts.users?.[id] } };
      },
    },
    conversations: { info: rec('conversations.info', { channel: { id: 'C1' } }) },
    views: { open: rec('views.open') },
    chat: { delete: rec('chat.delete') },
    files: { delete: rec('files.delete'), info: rec('files.info', { file: { id: 'F1', url_private: 'https://files.slack.com/F1' } }) },
  } as unknown as WebClient;
  // Messages go through `web` (web-api.ts): the WebClient above has none to send, so a message
  // sent through it instead fails the test.
  const web = { chat: { postEphemeral: rec('chat.postEphemeral'), postMessage: rec('chat.postMessage', { ts: '9.9' }) } } as unknown as SlackWebCalls;

  const models = opts.models ?? ALL_MODELS;
  const quotaView: QuotaView = { exempt: false, limit: 20, used: 5, left: 15, resetsAt: 1_700_006_400_000, costs: { '1K': 1, '2K': 2, '4K': 4 } };
  const engine = {
    models,
    defaultModel: models[0]!,
    async submit(request: ImagineRequestInput) {
      events.push('submit');
      submitted.push(request);
      return opts.submit ? opts.submit(request) : makeJob({ id: `job${submitted.length}abcdefghij` });
    },
    getJob: async (id: string) => opts.jobs?.[id],
    quota: async () => quotaView,
    claimOnce: async (key: string) => !claimed.has(key) && !!claimed.add(key),
    governance: {
      preferences: async (r: Requester) => preferences.get(r.userId) ?? {},
      setPreferences: async (r: Requester, p: UserPreferences) => (preferences.set(r.userId, p), p),
      apply: async (scope: string, actor: Requester, action: AdminAction) => {
        applied.push({ scope, actor, action });
        return serverSettingsSchema.parse({});
      },
      ceilings: { defaultDailyUnits: 20, maxDailyUnits: 100, allowUnlimited: true },
    },
  } as unknown as EngineApi;

  const ctx: SlackContext = {
    config: { DATA_DIR: '/tmp/imagine-listener-tests', SLACK_ADMIN_USERS: [] } as unknown as SlackContext['config'],
    engine,
    log: createLogger({ level: 'debug', pretty: false, destination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) } }),
    client,
    web,
    botToken: 'xoxb-test',
    tuning: { ...DEFAULT_TUNING, sleep: async () => undefined },
    track: (task) => void task,
    ackFirst: new AckFirst(),
    afterAck: (what, work, o = {}) => void deferred.push({ what, urgent: !!o.urgent, work }),
  };
  const deps: ListenerDeps = {
    ctx,
    jobs: {
      trackSubmission: (p) => p,
      postPlaceholder: async (job, where) => {
        events.push('placeholder');
        placeholders.push({ jobId: job.id, where });
        return undefined;
      },
    },
  };
  const ack = async (response?: unknown) => {
    events.push('ack');
    acks.push(response);
  };
  return {
    deps,
    applied,
    ack,
    acks,
    events,
    calls,
    submitted,
    placeholders,
    deferred,
    logs,
    /** Runs the work deferred after the acks (and any it defers in turn). */
    async settle() {
      while (deferred.length > 0) await deferred.shift()!.work();
    },
    /** The texts told privately, in order. */
    ephemerals: () => calls.filter((c) => c.method === 'chat.postEphemeral').map((c) => String(c.args.text)),
    callsTo: (method: string) => calls.filter((c) => c.method === method),
  };
}

export const command = (text: string, over: Record<string, unknown> = {}) => ({
  command: '/imagine',
  text,
  user_id: 'UALICE',
  user_name: 'alice',
  channel_id: 'C1',
  team_id: 'T1',
  trigger_id: 'trig-1',
  response_url: 'https://hooks.slack.com/commands/1',
  ...over,
});
