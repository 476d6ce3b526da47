/**
 * The bot's deliverer for command-line jobs. `npm run imagine` interrupted mid-job (Ctrl-C, a
 * closed terminal, SIGKILL) leaves its job in the store; a bot process on the same store picks it
 * up like any unfinished job and finishes it (charged once, like every job). There is no terminal
 * to print to any more, so the result is logged: where the images are in DATA_DIR, or why the job
 * failed. Without this the job would wait for a deliverer forever and be retried at every start.
 */
import type { Logger } from '../log.ts';
import type { Deliverer, JobRecord } from '../engine/job.ts';

export function cliJobsFinishedElsewhere(log: Logger): Deliverer {
  return {
    // Only the files are listed.
    takesKeptResults: false,
    progress() {
      // Nobody is watching.
    },
    deliver(job: JobRecord) {
      const images = job.tasks.flatMap((t) => (t.image ? [t.image.path] : []));
      const fields = { jobId: job.id, operator: job.request.requester.userId, prompt: job.request.prompt, state: job.state, images };
      if (images.length > 0) log.info(fields, 'an interrupted command-line job finished here; its images are listed');
      else log.warn({ ...fields, error: job.error?.userMessage }, 'an interrupted command-line job ended without images');
      return Promise.resolve();
    },
  };
}
