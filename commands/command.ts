/**
 * What a command module is: its definition (name, description, options as data) and its handler,
 * written against a small platform-neutral surface. The platforms' dispatchers look commands up in
 * the registry (commands/index.ts), call `prepare` before they answer (pure CPU, so a refusal can
 * still be private), answer as the invocation asks, then `run` it; whatever `prepare` or `run`
 * throws is rendered by the dispatcher's one catch, privately.
 */
import type { EngineApi } from '../src/engine/api.ts';
import type { UserPreferences } from '../src/engine/governance/api.ts';
import type { JobRecord } from '../src/engine/job.ts';
import type { ImagineRequestInput, PlatformLocation, ReferenceInput, Requester } from '../src/engine/request.ts';
import type { CommandDefinition } from './options.ts';
import type { TextFormat } from './render.ts';

/** What a platform collected for one invocation. */
export interface CommandInput {
  /**
   * Option values by option name, as the platform collected them: Discord's typed options, Slack's
   * form fields (strings), or, for text-only invocations (Slack's `/imagine a cat --ar 16:9`, a
   * mention, the CLI), just the text as the first required string option (`prompt`).
   */
  readonly options: Readonly<Record<string, unknown>>;
  /** Reference images the platform collected (attachments, uploaded files). */
  readonly refs: readonly ReferenceInput[];
  readonly requester: Requester;
}

/** What a command may use once the platform has answered (the placeholder exists). */
export interface CommandSurface {
  readonly engine: EngineApi;
  /**
   * Submits a job through the platform (engine.submit, with whatever the platform must know of
   * a job before its first progress event: Slack tracks it to post the placeholder).
   */
  submit(request: ImagineRequestInput): Promise<JobRecord>;
  /** The platform's markup for shared texts. */
  readonly format: TextFormat;
  /**
   * What the platform knows of the server asked in, to refuse an admin's mention of a channel,
   * role or member that is not there. Absent where there is no server (DMs, the CLI).
   */
  readonly directory?: ServerDirectory;
  /** Where the answer is: the engine delivers a job's progress and results there. */
  readonly location: PlatformLocation;
  /** Shows `text` as the answer (it replaces the placeholder; private when the invocation is). */
  reply(text: string): Promise<void>;
  /**
   * Posts a finished job's images again as the answer, with its summary and buttons (/show).
   * Absent where the platform cannot (the CLI).
   */
  show?(job: JobRecord): Promise<void>;
}

/** Lookups in the server (guild or workspace) a command was used in. */
export interface ServerDirectory {
  hasChannel(channelId: string): Promise<boolean>;
  /** Discord only (Slack has no roles): absent on Slack. */
  hasRole?(roleId: string): Promise<boolean>;
  hasMember(userId: string): Promise<boolean>;
}

export interface Invocation {
  /** Whether the first answer (the placeholder) is seen by the channel or only by the requester. */
  readonly visibility: 'public' | 'private';
  /**
   * The work after the first answer. Throws a BotError to refuse: the dispatcher removes a public
   * placeholder and tells the requester privately. Resolves with the job it started, if any.
   */
  run(surface: CommandSurface): Promise<JobRecord | void>;
}

/**
 * What `prepare` may read: the engine's configuration in memory, and for commands that declare
 * `usesPreferences`, the requester's /settings, which the dispatcher read (one store read) before
 * calling prepare.
 */
export type PrepareContext = Pick<EngineApi, 'models' | 'defaultModel'> & { readonly preferences?: UserPreferences };

export interface Command extends CommandDefinition {
  /**
   * Only a server's admins may use it (docs/governance.md): Discord shows it to members with
   * Manage Server by default (default_member_permissions) and never in DMs; Slack checks the
   * user's admin flags (users.info) or the operator's SLACK_ADMIN_USERS.
   */
  readonly admin?: true;
  /** The dispatcher reads the requester's /settings before `prepare` and passes them in its context. */
  readonly usesPreferences?: true;
  /**
   * Parses and validates the input without I/O (so it runs before the platform answers), or throws
   * a BotError whose sentence says what to fix.
   */
  prepare(input: CommandInput, context: PrepareContext): Invocation;
}
