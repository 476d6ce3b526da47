/**
 * The words users see, shared by Discord and Slack so both say the same thing. Plain strings;
 * each platform passes a small TextFormat for its markup (bold, mentions, times, escaping).
 */
import { sentenceFor } from '../src/errors.ts';
import type { QuotaView } from '../src/engine/api.ts';
import type { JobRecord, JobTask, ProgressEvent } from '../src/engine/job.ts';
import { MODEL_CATALOG, RESOLUTIONS } from '../src/engine/models.ts';
import { JOB_TTL_MS } from '../src/engine/jobs/records.ts';
import { DAY_MS } from '../src/engine/quota.ts';
import type { Requester } from '../src/engine/request.ts';

export interface TextFormat {
  bold(text: string): string;
  /** A mention of the requester (Discord `<@id>`, Slack `<@id>`); plain text uses their name. */
  mention(requester: Requester): string;
  /** An absolute time (Discord `<t:…:t>` shows it in the reader's zone; plain text says "HH:MM UTC"). */
  time(epochMs: number): string;
  /** Escapes user text (the prompt) so it cannot inject markup or mentions. */
  escape(text: string): string;
  /** A link to the job's message on the platform, when it has one anyone can open (not private). */
  jobLink?(job: JobRecord): string | undefined;
}

export const PLAIN_FORMAT: TextFormat = {
  bold: (text) => text,
  mention: (r) => r.name ?? r.userId,
  time: (ms) => `${new Date(ms).toISOString().slice(11, 16)} UTC`,
  escape: (text) => text,
};

/** Prompts are shown shortened: the full text is in the user's own command. */
export const PROMPT_PREVIEW_CHARS = 300;

/** "0:42", "12:05", "1:02:03". */
export function formatElapsed(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** Shortens at a word boundary when one is near, with an ellipsis. */
export function truncatePrompt(prompt: string, maxChars = PROMPT_PREVIEW_CHARS): string {
  const oneLine = prompt.replace(/\s+/g, ' ').trim();
  if (oneLine.length <= maxChars) return oneLine;
  const cut = oneLine.slice(0, maxChars - 1);
  const space = cut.lastIndexOf(' ');
  return `${space > maxChars * 0.7 ? cut.slice(0, space) : cut}…`;
}

/** The label of a model key, even when the model is no longer configured (old jobs, buttons). */
export function modelLabel(key: string): string {
  return MODEL_CATALOG.find((m) => m.key === key)?.label ?? key;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** What a derived job is doing, for parents: "Upscaling image 2 to 4K…". */
function actionInProgress(job: JobRecord): string | undefined {
  const parent = job.request.parent;
  if (!parent) return undefined;
  const image = parent.imageIndex !== undefined ? `image ${parent.imageIndex + 1}` : 'the image';
  switch (parent.action) {
    case 'upscale':
      return `Upscaling ${image} to 4K…`;
    case 'ratio':
      return `Remaking ${image} at ${job.request.ratio}…`;
    case 'vary':
      return `Varying ${image}…`;
    case 'edit':
      return `Editing ${image}…`;
    case 'rerun':
    case 'remix':
      return undefined;
  }
}

/**
 * The placeholder while a job runs: a status line with the elapsed time, then the prompt and
 * settings. E.g. "Generating 2 images… (1 of 2 done) · 0:42\n"a fox" · Nano Banana 2 (Runbase) · 16:9 · 2K".
 */
export function progressText(job: JobRecord, event: ProgressEvent, fmt: TextFormat = PLAIN_FORMAT): string {
  let status: string;
  switch (event.phase) {
    case 'queued':
      status = event.queue
        ? `Queued: ${event.queue.ahead === 0 ? 'next in line' : `${plural(event.queue.ahead, 'job')} ahead`}, about ${formatWait(event.queue.etaMs)}`
        : 'Queued';
      break;
    case 'generating': {
      const images = job.request.count === 1 ? 'your image' : `${job.request.count} images`;
      status = actionInProgress(job) ?? `Generating ${images}…`;
      if (event.total > 1 && event.done > 0) status += ` (${event.done} of ${event.total} done)`;
      const eta = generatingEstimate(job, event);
      if (eta) status += ` ${eta}`;
      break;
    }
    case 'downloading':
      status = 'Downloading…';
      break;
    case 'done':
      status = 'Finishing…';
      break;
  }
  return `${fmt.bold(status)} · ${formatElapsed(event.elapsedMs)}\n${settingsLine(job, fmt)}`;
}

/** "5 s", "40 s", "2 min": rounded up to 5 s (or a minute), so it changes seldom. */
export function formatWait(ms: number): string {
  const s = Math.max(5, Math.ceil(ms / 5_000) * 5);
  return s < 90 ? `${s} s` : `${Math.round(s / 60)} min`;
}

/** Cells of the progress bar. */
export const PROGRESS_BAR_CELLS = 10;

/** "▰▰▰▱▱▱▱▱▱▱" for a fraction; never full before the result is there. */
export function progressBar(fraction: number): string {
  const filled = Math.min(PROGRESS_BAR_CELLS - 1, Math.max(0, Math.floor(fraction * PROGRESS_BAR_CELLS)));
  return '▰'.repeat(filled) + '▱'.repeat(PROGRESS_BAR_CELLS - filled);
}

/**
 * While generating: the time left against the usual time of this model and size (learned from
 * recent jobs), with a bar; past it, only that it takes longer than usual (a bar would lie).
 */
function generatingEstimate(job: JobRecord, event: ProgressEvent): string | undefined {
  const g = event.generating;
  if (!g || !(g.expectedMs > 0)) return undefined;
  const elapsed = event.elapsedMs - (g.since - job.createdAt);
  const left = g.expectedMs - elapsed;
  if (left <= 0) return `(longer than the usual ${formatWait(g.expectedMs)})`;
  return `${progressBar(elapsed / g.expectedMs)} about ${formatWait(left)} left`;
}

/** `"prompt" · Model · ratio · resolution` */
function settingsLine(job: JobRecord, fmt: TextFormat): string {
  const r = job.request;
  return [`"${fmt.escape(truncatePrompt(r.prompt))}"`, modelLabel(r.model), r.ratio, r.resolution].join(' · ');
}

/** What a derived job did, for the summary's first line. */
function actionDone(job: JobRecord): string | undefined {
  const parent = job.request.parent;
  if (!parent) return undefined;
  const image = parent.imageIndex !== undefined ? `image ${parent.imageIndex + 1}` : 'an image';
  switch (parent.action) {
    case 'upscale':
      return `Upscaled ${image} to 4K`;
    case 'ratio':
      return `Remade ${image} at ${job.request.ratio}`;
    case 'rerun':
      return 'Rerun';
    case 'vary':
      return `Varied ${image}`;
    case 'edit':
      return `Edited ${image}`;
    case 'remix':
      return 'Remix';
  }
}

function failedTasks(job: JobRecord): JobTask[] {
  return job.tasks.filter((t) => t.status === 'failed' || t.error !== undefined);
}

/** "1 of 2 images failed: <sentence>; its units were refunded." (or undefined when none failed). */
export function failedPartsText(job: JobRecord): string | undefined {
  const failed = failedTasks(job);
  if (failed.length === 0 || failed.length === job.tasks.length) return undefined;
  const sentences = [...new Set(failed.map((t) => t.error?.userMessage).filter((s): s is string => !!s))];
  const reason = sentences.length > 0 ? `: ${sentences.map((s) => s.replace(/\.$/, '')).join('; ')}` : '';
  const refunded = job.quota.refunded > 0 ? `; ${failed.length === 1 ? 'its' : 'their'} units were refunded` : '';
  return `${failed.length} of ${plural(job.tasks.length, 'image')} failed${reason}${refunded}.`;
}

/**
 * The text posted with the images: prompt, model, ratio, size, time taken, requester, the note
 * (e.g. the 4K model switch) and what failed. `requesterText` overrides the mention (e.g. a
 * platform that must not ping).
 */
export function summaryText(job: JobRecord, fmt: TextFormat = PLAIN_FORMAT, requesterText?: string): string {
  const r = job.request;
  const lines: string[] = [];
  const action = actionDone(job);
  lines.push(`${action ? `${fmt.bold(action)}: ` : ''}"${fmt.escape(truncatePrompt(r.prompt))}"`);

  const first = job.tasks.find((t) => t.image)?.image;
  const size = first ? `${first.width}×${first.height} (${r.resolution})` : r.resolution;
  const took = job.finishedAt !== undefined ? formatElapsed(job.finishedAt - job.createdAt) : undefined;
  lines.push(
    [modelLabel(r.model), r.ratio, size, ...(took ? [took] : []), `by ${requesterText ?? fmt.mention(r.requester)}`, `job ${job.id}`].join(' · '),
  );
  if (r.note) lines.push(r.note);
  const failed = failedPartsText(job);
  if (failed) lines.push(failed);
  return lines.join('\n');
}

/** The message for a job that made no image: what happened and what to do. */
export function failureText(job: JobRecord, fmt: TextFormat = PLAIN_FORMAT): string {
  const headline = job.state === 'canceled' ? 'Image canceled' : "Couldn't make your image";
  const reason =
    job.error?.userMessage ??
    failedTasks(job).find((t) => t.error)?.error?.userMessage ??
    sentenceFor('INTERNAL', {});
  const lines = [`${fmt.bold(headline)}: "${fmt.escape(truncatePrompt(job.request.prompt, 200))}"`, reason];
  const paid = job.state === 'canceled' ? job.tasks.filter((t) => t.taskId !== undefined).length : 0;
  if (paid > 0) {
    // Accepted by the provider before the cancel: paid for there, so charged (docs/architecture.md "Cancel").
    const charged = job.quota.reserved - job.quota.refunded;
    lines.push(
      `The image service had already started ${plural(paid, 'image')}, which ${paid === 1 ? 'is' : 'are'} paid for: ${plural(charged, 'unit')} charged` +
        `${job.quota.refunded > 0 ? `, ${plural(job.quota.refunded, 'unit')} refunded` : ''}.`,
    );
  } else if (job.quota.reserved > 0 && job.quota.refunded >= job.quota.reserved) {
    lines.push(`You were not charged (${plural(job.quota.reserved, 'unit')} refunded).`);
  }
  return lines.join('\n');
}

/** "1K = 1 unit, 2K = 2, 4K = 4." */
function costsText(costs: QuotaView['costs']): string {
  return RESOLUTIONS.map((res, i) => (i === 0 ? `${res} = ${plural(costs[res], 'unit')}` : `${res} = ${costs[res]}`)).join(', ');
}

/** The /quota answer. */
export function quotaText(view: QuotaView, fmt: TextFormat = PLAIN_FORMAT): string {
  if (view.exempt) {
    return `You have no daily image limit (${plural(view.used, 'unit')} used today).`;
  }
  return (
    `You've used ${view.used} of ${plural(view.limit, 'unit')} today; ${view.left} left. ` +
    `Resets ${fmt.time(view.resetsAt)}. ${costsText(view.costs)} per image.`
  );
}

/**
 * The placeholder (and a private note) when the images were made but the chat platform kept
 * refusing them: the engine stops retrying and tries again at the bot's next start. `reason` is
 * the platform's own word for it (an error code or message), never an internal error.
 */
export function undeliverableText(job: JobRecord, platform: 'Discord' | 'Slack', reason: string, fmt: TextFormat = PLAIN_FORMAT): string {
  const many = job.tasks.filter((t) => t.image).length > 1;
  const it = many ? 'them' : 'it';
  return (
    `${many ? 'Your images are' : 'Your image is'} ready for "${fmt.escape(truncatePrompt(job.request.prompt))}", but ${platform} would not take ${it} (${reason}). ` +
    `I'll try again to post ${it} the next time the bot starts, at no extra cost. Run /imagine again if you want new ones now.`
  );
}

/** "2026-12-05 16:38 UTC": a day and time that reads the same everywhere. */
function utcDateTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

const STATE_WORDS: Record<JobRecord['state'], string> = {
  queued: 'queued',
  submitted: 'generating',
  running: 'generating',
  succeeded: 'done',
  failed: 'failed',
  canceled: 'canceled',
};

/**
 * The /history answer: the requester's last jobs, newest first, one line each (when, prompt,
 * model, state, job id, link to the message), and how to post one again.
 */
export function historyText(jobs: readonly JobRecord[], fmt: TextFormat = PLAIN_FORMAT): string {
  if (jobs.length === 0) return 'You have no images yet. Run /imagine to make one.';
  const lines = jobs.map((job, n) => {
    const r = job.request;
    const link = fmt.jobLink?.(job);
    const made = job.tasks.filter((t) => t.status === 'succeeded' && t.image).length;
    const state = job.state === 'succeeded' ? plural(made, 'image') : STATE_WORDS[job.state];
    return `${n + 1}. ${utcDateTime(job.createdAt)} · "${fmt.escape(truncatePrompt(r.prompt, 80))}" · ${modelLabel(r.model)} · ${state} · job ${fmt.bold(job.id)}${link ? ` · ${link}` : ''}`;
  });
  return [`Your last ${plural(jobs.length, 'job')}, newest first:`, ...lines, `Post one again with /show and its job id. Images are kept as long as their job: ${Math.round(JOB_TTL_MS / DAY_MS)} days.`].join('\n');
}
