/**
 * /show <job>: posts a finished job's images again, with working buttons (they point at the same
 * job, so every click works as on the original). Allowed to the requester, or to anyone when the
 * job was public; a private job is shown only privately (Discord's `private` option). The images
 * come from DATA_DIR, where they stay as long as the job record (60 days).
 */
import { stat } from 'node:fs/promises';
import { UserFacingError } from '../src/errors.ts';
import { isTerminalJobState, type JobRecord } from '../src/engine/job.ts';
import { isJobId } from '../src/engine/ids.ts';
import { JOB_TTL_MS } from '../src/engine/jobs/records.ts';
import { DAY_MS } from '../src/engine/quota.ts';
import type { Command, CommandInput, Invocation } from './command.ts';
import type { CommandDefinition } from './options.ts';

export const SHOW_DEFINITION = {
  name: 'show',
  description: 'Post the images of one of your jobs again (see /history for job ids)',
  options: {
    job: { type: 'string', description: 'The job id, as /history and result messages show it', required: true, maxLength: 40 },
    private: {
      type: 'boolean',
      description: 'Only you see it (needed for a private job)',
      platforms: ['discord'],
    },
  },
} as const satisfies CommandDefinition;

const JOB_KEPT_DAYS = Math.round(JOB_TTL_MS / DAY_MS);

/** Whether only the requester could see the job (a private Discord result). */
export const wasPrivate = (job: JobRecord): boolean => job.request.location.ephemeral === true;

function prepare(input: CommandInput): Invocation {
  const jobId = String(input.options.job ?? '').trim();
  if (!isJobId(jobId)) throw new UserFacingError('SHOW_NOT_FOUND', { jobId, days: JOB_KEPT_DAYS });
  const privately = input.options.private === true;
  return {
    visibility: privately ? 'private' : 'public',
    run: async (surface) => {
      if (!surface.show) throw new UserFacingError('UNKNOWN_COMMAND', { command: 'show', known: [] });
      const job = await surface.engine.getJob(jobId);
      const own = job !== undefined && job.request.requester.platform === input.requester.platform && job.request.requester.userId === input.requester.userId;
      // Someone else's private job is not told apart from a job that does not exist.
      if (!job || job.request.requester.platform !== input.requester.platform || (wasPrivate(job) && !own)) throw new UserFacingError('SHOW_NOT_FOUND', { jobId, days: JOB_KEPT_DAYS });
      if (wasPrivate(job) && !privately) throw new UserFacingError('SHOW_PRIVATE_JOB');
      if (!isTerminalJobState(job.state)) throw new UserFacingError('SHOW_NOT_FINISHED');
      const made = job.tasks.filter((t) => t.status === 'succeeded' && t.image);
      if (job.state !== 'succeeded' || made.length === 0) throw new UserFacingError('SHOW_NO_IMAGES');
      const present = await Promise.all(made.map((t) => stat(t.image!.path).then(() => true, () => false)));
      if (present.some((p) => !p)) throw new UserFacingError('SHOW_IMAGES_GONE');
      await surface.show(job);
    },
  };
}

export const show = { ...SHOW_DEFINITION, prepare } satisfies Command;
