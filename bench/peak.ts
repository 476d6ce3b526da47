/**
 * Peak memory while four 4K results are fetched, fitted and posted at once (issue 13, point 1),
 * measured from outside the bot on the Discord path, where results are fitted: a result over
 * Discord's attachment limit (10 MiB by default, docs/discord.md "Files") is re-encoded with
 * sharp before it is posted (src/platforms/discord/fit-upload.ts).
 *
 * Per round, a fresh bot (src/app.ts startBot, the composition root bench/discord.ts uses: real
 * discord.js, adapter, engine, SQLite store, RunBlob client) in a child process, against a fake
 * Discord and a fake RunBlob, each in a child of its own:
 * 1. the bot idles IDLE_SETTLE_MS, then its VmRSS is read (idle) and its peak-RSS mark is reset to
 *    the current RSS (`echo 5 > /proc/<pid>/clear_refs`, proc(5), Linux ≥ 4.0);
 * 2. four /imagine interactions are dispatched at once, each `resolution 4K`, `ratio 1:1` on
 *    RunBlob's v2 model, with the prompt marker `[big]` (test/fakes/runblob.ts: a noisy 4K PNG,
 *    > 10 MiB, so every result must be fitted); the fake RunBlob gives every task the same
 *    duration, so the four finish within milliseconds of each other and are fetched together
 *    (RunBlob calls back to PUBLIC_URL, as docs/providers.md recommends);
 * 3. the parent reads the bot's VmRSS (/proc/<pid>/status) every SAMPLE_EVERY_MS until the fake
 *    Discord has seen all four final messages with their files, then reads VmHWM: after the reset
 *    it is the exact peak of the burst (the samples can miss a short spike, VmHWM cannot).
 * Reported: idle, sampled peak, VmHWM, each above idle; the four PNGs the bot downloaded and the
 * files it posted (type, bytes, pixels). The target is checked on the larger of the two peaks.
 *
 * The fake RunBlob renders the noisy 4K pixels before the run (png.ts caches them), so its PNG
 * encoding (~1 s each) does not spread the four downloads apart. Every child exits when its IPC
 * channel to the parent closes, so a failed or killed run leaves no process behind. The same
 * file is the child program (`--role=discord-fake|runblob-fake|bot`).
 *
 *   npm run bench -- peak        # or: node bench/peak.ts
 */
import { ask, discordBotChild, forkRole, procStatusBytes, shippedNodeOptions, sleep, stopChild } from './processes.ts';
import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { DEFAULT_ATTACHMENT_SIZE_LIMIT_BYTES } from '../src/platforms/discord/fit-upload.ts';

/** Issue 13: "four 4K results … at once". */
export const PEAK_BENCH_JOBS = 4;
/** Fresh bot per round; the target is checked on the worst. */
export const PEAK_BENCH_ROUNDS = 2;
/** Issue 13's target, in MB of 2^20 bytes like bench/jobs.ts. */
const TARGET_MB_ABOVE_IDLE = 400;
/** Every task the same duration, so the four results are ready together. */
const PROVIDER_DURATION_MS = 1_500;
const IDLE_SETTLE_MS = 2_000;
const SAMPLE_EVERY_MS = 20;
const RESULT_TIMEOUT_MS = 60_000;
/** RunBlob's v2 model makes 4K (src/engine/models.ts); standard makes 1K only. */
const MODEL_KEY = 'runblob-2';
const RATIO = '1:1';
const BENCH_USER = { id: '300000000000000004', username: 'peak-bench' };
const MB = 2 ** 20;

/** A child whose parent went away (crash, kill, failed run) must not stay behind. */
const exitWithParent = (cleanUp: () => Promise<unknown> = async () => undefined) =>
  process.on('disconnect', () => void cleanUp().finally(() => process.exit(1)));

// ---- children ---------------------------------------------------------------------------------

type DiscordFakeInfo = { apiUrl: string; token: string; applicationId: string };
type RunblobFakeInfo = { runblobUrl: string; runblobKey: string };
type FakesInfo = DiscordFakeInfo & RunblobFakeInfo;

interface PostedFile {
  filename: string;
  contentType: string | undefined;
  bytes: number;
  width: number | undefined;
  height: number | undefined;
}
/** A job's final message as the fake Discord saw it; `at` is Date.now() there (one machine, one clock). */
interface FinalMessage {
  n: number;
  at: number;
  files: PostedFile[];
}
/** What the fake Discord reports after waiting for a round's final messages. */
interface FinalsAnswer {
  finals: FinalMessage[];
  /** Messages of the round with no file (an error message, a placeholder never edited): their text. */
  without: string[];
  refused: string[];
}
interface ProviderTask {
  prompt: string;
  quality: string;
  completedAt: number | undefined;
  downloads: number;
  pngBytes: number;
}

const promptOf = (label: string, n: number) => `peak ${label} ${n} a noisy test image [big]`;

async function discordFakeChild(): Promise<void> {
  exitWithParent();
  const { startFakeDiscord } = await import('../test/fakes/discord/index.ts');
  // Uploaded bytes are not kept: the fake's memory is not what is measured, but the sizes are.
  const fake = await startFakeDiscord({ keepUploads: false });
  process.on('message', (m: { send?: { label: string; count: number }; finals?: { label: string; expected: number; timeoutMs: number }; close?: boolean }) => {
    void (async () => {
      if (m.close) {
        await fake.close();
        process.exit(0);
      }
      if (m.send) {
        const { label, count } = m.send;
        const sending = Promise.all(
          Array.from({ length: count }, (_, n) =>
            fake.sendCommand({
              name: 'imagine',
              user: BENCH_USER,
              options: [
                { name: 'prompt', type: 3, value: promptOf(label, n) },
                { name: 'model', type: 3, value: MODEL_KEY },
                { name: 'resolution', type: 3, value: '4K' },
                { name: 'ratio', type: 3, value: RATIO },
              ],
            }),
          ),
        );
        await sending.then(
          (interactions) => process.send!({ sent: interactions.length }),
          (err: unknown) => process.send!({ sent: 0, error: String(err) }),
        );
      }
      if (m.finals) {
        const { label, expected, timeoutMs } = m.finals;
        const refusedBefore = fake.refusals.length;
        const ofRound = () => [...fake.messages.values()].filter((msg) => msg.content.includes(`peak ${label} `));
        const finals = () => ofRound().filter((msg) => msg.attachments.length > 0);
        await fake.waitFor(() => finals().length >= expected, timeoutMs, 'final messages').catch(() => undefined);
        const answer: FinalsAnswer = {
          finals: finals().map((msg) => ({
            n: Number(/peak \S+ (\d+)/.exec(msg.content)?.[1] ?? NaN),
            at: msg.history.find((h) => h.attachments.length > 0)?.at ?? NaN,
            files: msg.attachments.map((a) => ({ filename: a.filename, contentType: a.content_type, bytes: a.size, width: a.width, height: a.height })),
          })),
          without: ofRound()
            .filter((msg) => msg.attachments.length === 0)
            .map((msg) => msg.content.slice(0, 200)),
          refused: fake.refusals.slice(refusedBefore).map((r) => `${r.method} ${r.path} → ${r.status}`),
        };
        process.send!(answer);
      }
    })();
  });
  process.send!({ ready: { apiUrl: fake.apiUrl, token: fake.token, applicationId: fake.applicationId } satisfies DiscordFakeInfo });
}

async function runblobFakeChild(): Promise<void> {
  exitWithParent();
  const { startFakeRunblob, outputSize } = await import('../test/fakes/runblob.ts');
  const { renderPng, outputPng } = await import('../test/fakes/png.ts');
  // The fake's default 4 pixel variants, rendered now: png.ts caches them per seed (hashString(task id) % 4).
  const { width, height } = outputSize(RATIO, '4K');
  for (let seed = 0; seed < 4; seed++) await renderPng({ width, height, seed, noisy: true });
  const runblob = await startFakeRunblob({ durationMs: PROVIDER_DURATION_MS });
  process.on('message', (m: { tasks?: string; close?: boolean }) => {
    void (async () => {
      if (m.close) {
        await runblob.close();
        process.exit(0);
      }
      if (m.tasks !== undefined) {
        const label = m.tasks;
        const tasks: ProviderTask[] = [];
        for (const t of runblob.tasks.values()) {
          if (!t.prompt.includes(`peak ${label} `)) continue;
          // The bytes the download served: outputPng is deterministic per task id (png.ts).
          const png = await outputPng({ taskId: t.uuid, aspectRatio: t.aspectRatio, resolution: '4K', noisy: t.noisy });
          tasks.push({ prompt: t.prompt, quality: t.quality, completedAt: t.completedAt, downloads: t.downloads, pngBytes: png.length });
        }
        process.send!({ tasks });
      }
    })();
  });
  process.send!({ ready: { runblobUrl: runblob.url, runblobKey: runblob.apiKey } satisfies RunblobFakeInfo });
}

// ---- measuring from outside ---------------------------------------------------------------------

/** VmRSS and VmHWM of a process, bytes (/proc/<pid>/status, proc(5)). */
async function memoryOf(pid: number): Promise<{ rss: number; hwm: number }> {
  const [rss, hwm] = await Promise.all([procStatusBytes(pid, 'VmRSS'), procStatusBytes(pid, 'VmHWM')]);
  return { rss, hwm };
}

/** Resets VmHWM to the current RSS (proc(5), /proc/<pid>/clear_refs, value 5); false where not allowed. */
async function resetPeak(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Reads VmRSS every SAMPLE_EVERY_MS until stopped: the highest, and how regular the sampling was. */
function sampleRss(pid: number) {
  let stopped = false;
  let peak = 0;
  let samples = 0;
  let maxGapMs = 0;
  const loop = (async () => {
    let last = performance.now();
    while (!stopped) {
      const now0 = await memoryOf(pid).catch(() => undefined);
      if (!now0) break; // the bot is gone: the round's own reads report it
      peak = Math.max(peak, now0.rss);
      samples++;
      const now = performance.now();
      if (samples > 1) maxGapMs = Math.max(maxGapMs, now - last);
      last = now;
      await sleep(SAMPLE_EVERY_MS);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { peak, samples, maxGapMs };
    },
  };
}

interface Round {
  idleRss: number;
  hwmAtIdle: number;
  hwmReset: boolean;
  sampledPeak: number;
  hwm: number;
  samples: number;
  maxGapMs: number;
  /** Interactions dispatched → last final message, ms. */
  wallMs: number;
  finals: FinalsAnswer;
  tasks: ProviderTask[];
}

const here = fileURLToPath(import.meta.url);
/** stopChild for a child still running; one that already exited (crashed) is past stopping. */
const stop = (child: ChildProcess) => (child.exitCode === null && child.signalCode === null && child.connected ? stopChild(child) : Promise.resolve());

async function round(label: string, fakes: { discord: ChildProcess; runblob: ChildProcess; info: FakesInfo }, children: ChildProcess[]): Promise<Round> {
  const bot = await forkRole<{ pid: number }>(here, 'bot', { PEAK_BENCH_FAKES: JSON.stringify(fakes.info), NODE_OPTIONS: await shippedNodeOptions() });
  children.push(bot.child);
  try {
    const { pid } = bot.ready;
    await sleep(IDLE_SETTLE_MS);
    const idle = await memoryOf(pid);
    const hwmReset = await resetPeak(pid);
    const sampler = sampleRss(pid);
    const t0 = Date.now();
    const sent = await ask<{ sent: number; error?: string }>(fakes.discord, { send: { label, count: PEAK_BENCH_JOBS } }, 'sent');
    if (sent.sent !== PEAK_BENCH_JOBS) throw new Error(`fake Discord could not dispatch the interactions: ${sent.error ?? sent.sent}`);
    const finals = await ask<FinalsAnswer>(fakes.discord, { finals: { label, expected: PEAK_BENCH_JOBS, timeoutMs: RESULT_TIMEOUT_MS } }, 'finals');
    const sampled = await sampler.stop();
    const end = await memoryOf(pid);
    const { tasks } = await ask<{ tasks: ProviderTask[] }>(fakes.runblob, { tasks: label }, 'tasks');
    return {
      idleRss: idle.rss,
      hwmAtIdle: idle.hwm,
      hwmReset,
      sampledPeak: Math.max(sampled.peak, end.rss),
      hwm: end.hwm,
      samples: sampled.samples,
      maxGapMs: sampled.maxGapMs,
      wallMs: Math.max(...finals.finals.map((f) => f.at)) - t0,
      finals,
      tasks: tasks.sort((a, b) => a.prompt.localeCompare(b.prompt)),
    };
  } finally {
    await stop(bot.child);
    children.splice(children.indexOf(bot.child), 1);
  }
}

export async function runPeakBench(opts: { rounds?: number } = {}): Promise<string> {
  const rounds = opts.rounds ?? PEAK_BENCH_ROUNDS;
  const children: ChildProcess[] = [];
  const results: Round[] = [];
  try {
    // One at a time, so a child that fails to start leaves only already-known children to stop.
    const discord = await forkRole<DiscordFakeInfo>(here, 'discord-fake');
    children.push(discord.child);
    const runblob = await forkRole<RunblobFakeInfo>(here, 'runblob-fake');
    children.push(runblob.child);
    const fakes = { discord: discord.child, runblob: runblob.child, info: { ...discord.ready, ...runblob.ready } };
    for (let r = 0; r < rounds; r++) results.push(await round(`r${r}`, fakes, children));
  } finally {
    await Promise.all(children.map((c) => stop(c)));
  }

  const mb = (bytes: number) => (bytes / MB).toFixed(1);
  const mib = (bytes: number) => (bytes / MB).toFixed(2);
  /** The burst's peak: VmHWM when it was reset at idle (exact), else the samples alone. */
  const peakOf = (r: Round) => (r.hwmReset ? Math.max(r.sampledPeak, r.hwm) : r.sampledPeak);
  const worstAbove = Math.max(...results.map((r) => peakOf(r) - r.idleRss));
  const fileRows: string[] = [];
  const problems: string[] = [];
  results.forEach((r, i) => {
    const byN = new Map(r.finals.finals.map((f) => [f.n, f]));
    r.tasks.forEach((t) => {
      const n = Number(/peak \S+ (\d+)/.exec(t.prompt)?.[1] ?? NaN);
      const files = byN.get(n)?.files ?? [];
      const posted = files.length ? files.map((f) => `${f.filename} (${f.contentType ?? '?'}, ${mib(f.bytes)} MiB, ${f.width ?? '?'}×${f.height ?? '?'})`).join(', ') : 'none';
      const fitted = files.length > 0 && files.every((f) => f.bytes <= DEFAULT_ATTACHMENT_SIZE_LIMIT_BYTES && (f.contentType === 'image/webp' || f.contentType === 'image/jpeg'));
      if (!fitted) problems.push(`round ${i + 1} job ${n}: posted ${posted}`);
      fileRows.push(`| ${i + 1} | ${n} | ${t.quality} | ${mib(t.pngBytes)} MiB (${t.downloads} download${t.downloads === 1 ? '' : 's'}) | ${posted} | ${fitted ? 'yes' : '**no**'} |`);
    });
    if (r.finals.finals.length < PEAK_BENCH_JOBS) {
      problems.push(`round ${i + 1}: ${r.finals.finals.length} of ${PEAK_BENCH_JOBS} final messages within ${RESULT_TIMEOUT_MS / 1000} s; without files: ${r.finals.without.join(' | ') || 'none'}`);
    }
    if (r.finals.refused.length) problems.push(`round ${i + 1}: fake Discord refused ${r.finals.refused.join(', ')}`);
    if (!r.hwmReset) problems.push(`round ${i + 1}: VmHWM could not be reset at idle (clear_refs refused): it includes start-up and only the samples count`);
  });
  const met = worstAbove <= TARGET_MB_ABOVE_IDLE * MB && problems.length === 0;
  return [
    `### Peak RSS: ${PEAK_BENCH_JOBS} noisy 4K results (${RATIO}, RunBlob ${MODEL_KEY}) fetched, fitted and posted at once on Discord (fresh bot per round, ${rounds} rounds)`,
    '',
    '| round | idle VmRSS | sampled peak VmRSS | **above idle** | VmHWM (reset at idle) | VmHWM above idle | VmHWM at idle (start-up) | VmRSS samples (longest gap ms) | dispatch → last final message |',
    '|---|---|---|---|---|---|---|---|---|',
    ...results.map(
      (r, i) =>
        `| ${i + 1} | ${mb(r.idleRss)} MB | ${mb(r.sampledPeak)} MB | **${mb(r.sampledPeak - r.idleRss)} MB** | ${mb(r.hwm)} MB${r.hwmReset ? '' : ' (not reset)'} | ${mb(r.hwm - r.idleRss)} MB | ${mb(r.hwmAtIdle)} MB | ${r.samples} (${r.maxGapMs.toFixed(0)}) | ${(r.wallMs / 1000).toFixed(1)} s |`,
    ),
    '',
    '| round | job | RunBlob quality | PNG the bot downloaded | posted file(s) at fake Discord | fitted (WebP/JPEG ≤ 10 MiB) |',
    '|---|---|---|---|---|---|',
    ...fileRows,
    '',
    `Target (issue 13): ≤ ${TARGET_MB_ABOVE_IDLE} MB above idle: ${met ? 'met' : 'NOT met'} (worst round ${mb(worstAbove)} MB above idle, the larger of the sampled VmRSS peak and VmHWM reset at idle; MB = 2^20 bytes). ` +
      `VmRSS read from /proc/<pid>/status every ${SAMPLE_EVERY_MS} ms by the parent from the moment the interactions are dispatched until all ${PEAK_BENCH_JOBS} final messages are at the fake Discord; idle after ${IDLE_SETTLE_MS / 1000} s with no job; the fake RunBlob finishes every task after ${PROVIDER_DURATION_MS / 1000} s.`,
    ...problems.map((p) => `\n**Problem**: ${p}.`),
  ].join('\n');
}

if (process.argv[1] && here === process.argv[1]) {
  const role = process.argv.find((a) => a.startsWith('--role='))?.slice('--role='.length);
  if (role === 'discord-fake') await discordFakeChild();
  else if (role === 'runblob-fake') await runblobFakeChild();
  else if (role === 'bot') await discordBotChild(JSON.parse(process.env.PEAK_BENCH_FAKES!) as FakesInfo, BENCH_USER.id, 'imagine-peak-bench-');
  else {
    const rounds = process.argv.find((a) => a.startsWith('--rounds='))?.slice('--rounds='.length);
    process.stdout.write(`${await runPeakBench({ ...(rounds && { rounds: Number(rounds) }) })}\n`);
  }
}
