/**
 * Scale and cost of the job path (issue 12 point 8, issue 13 point 1), measured from outside the
 * bot, side by side with a floor in the same run (ratios carry over between machines, absolute
 * times do not):
 * - throughput: JOBS /imagine commands sent at once as signed Slack slash commands to the real
 *   bot (src/app.ts startBot: Bolt, engine, store, provider client, uploads) in a child process,
 *   against a fake Slack and a fake RunBlob that finishes each task at once and calls back
 *   (PUBLIC_URL set, as docs/providers.md recommends); on ONE process with SQLite and on THREE
 *   processes sharing one Redis (a private redis-server on a free port: nothing else's keys),
 *   next to the floor: a script making only the REST calls a job needs against the same fakes
 *   (post the placeholder, create the task, read it, download the image, get an upload URL,
 *   upload, complete the upload, final edit). Jobs/s = jobs / (first command sent → last final
 *   edit seen by the fake Slack).
 * - cost, while the single process runs its JOBS: main-thread CPU per job (utime+stime of the
 *   bot's main thread, /proc/<pid>/task/<pid>/stat; the floor's measured the same way), every
 *   thread's CPU by kind of thread, each with its part in the kernel (stime), and the
 *   event-loop delay p99 (prom-client's default nodejs_eventloop_lag_p99_seconds, scraped from
 *   /metrics: one scrape before resets its histogram, one after reads the window).
 * - memory: a fresh bot idle, then with WAITING jobs held pending at a fake RunBlob that never
 *   finishes them: VmRSS (/proc/<pid>/status) and V8 heap used (/metrics) per in-flight job, and
 *   the main thread's CPU per second while they wait; once with Node's defaults (`node src/main.ts`)
 *   and once with the flags the bot ships with (the Dockerfile's NODE_OPTIONS, which `npm start`
 *   passes too: test/unit/ops/compose.test.ts).
 *
 * Every bot process runs with the NODE_OPTIONS the bot ships with (shippedNodeOptions), but for
 * the memory row that measures Node's defaults beside them, and logs at the level it ships with
 * (shippedLog: `info`, its lines formatted but not written).
 *
 * The provider's own request budget (RunBlob: 50 requests/s per key, src/providers/runblob/client.ts)
 * is lifted for the bot here: the fakes have none, and with it every run would measure that limit
 * instead of the bot's own cost. Everything else runs at production timing.
 *
 * Each process (fake Slack, fake RunBlob, each bot, the floor) is its own child, so the load generator and the fakes'
 * work (rendering PNGs, parsing uploads) are billed to none of them. The same file is the child
 * program (`--role=slack-fake|runblob-fake|bot|floor`).
 *
 *   npm run bench -- jobs        # or: node bench/jobs.ts [--jobs=N] [--waiting=N] [--warmup=N]
 *   node bench/jobs.ts --memory-with='' --memory-with='--max-semi-space-size=2'   # per NODE_OPTIONS, side by side
 *   JOBS_BENCH_CPU_PROF_DIR=/tmp/prof node bench/jobs.ts   # + a V8 CPU profile of each bot process
 *   JOBS_BENCH_ALLOC_PROF_DIR=/tmp/alloc node bench/jobs.ts   # + what each bot's main thread allocated
 */
import { ask, forkRole, freePort, numberFlag, percentile, procStatusBytes, shippedLog, shippedNodeOptions, sleep, standInSlackFake, startRedis, stopChild } from './processes.ts';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, readdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Agent, request } from 'undici';
import { createSlackDriver } from '../test/fakes/slack/driver.ts';
import { parseScrape } from '../test/support/prometheus.ts';
import { GC_DURATION_METRIC } from '../src/metrics.ts';

/** Jobs per throughput run (issue 13: "while 500 jobs run"). */
export const JOBS_BENCH_JOBS = 500;
/** Jobs held at the provider for the memory figure (issue 13: "at 1,000 jobs"). */
export const JOBS_BENCH_WAITING = 1_000;
/** Bot processes sharing Redis in the scale-out run. */
export const JOBS_BENCH_PROCESSES = 3;
/**
 * Jobs each runner (the floor, a bot, the bots sharing Redis) runs before its measured run
 * (`--warmup=N`); by default as many as the run has, so both are measured as processes that have
 * run for a while, which is what a bot under sustained load is. With a warm-up of 20 (the default
 * until 2026-12-07) the floor's CPU per job was half as much again as once warm, and the bot's
 * measured run still included V8 compiling many of the job path's functions (even after a warm-up
 * of 500, `--trace-opt` counted 627 compiles in the 500 measured jobs): both then measured a
 * freshly started process (docs/benchmarks.md, "Jobs end to end").
 */
const warmupJobs = (jobs: number): number => numberFlag('warmup') ?? jobs;
/** The floor's sockets per origin (undici's default is unbounded). */
const FLOOR_CONNECTIONS_PER_ORIGIN = 64;
/** Issue 13's targets, stated once. */
const TARGET_FLOOR_RATIO = 0.8;
const TARGET_CPU_MS_PER_JOB = 1.5;
const TARGET_KB_PER_JOB = 50;
const SIGNING_SECRET = 'bench-signing-secret-0123456789abcdef';
const BENCH_USER = 'UBENCH';
/** Every job's final edit names its job ("… · by <@U…> · job ID"); progress edits never do. */
const FINAL_EDIT_MARK = ' · job ';
/** Long enough that no held task ends during the run. */
const HELD_TASK_MS = 3_600_000;
/** Linux clock ticks per second for /proc/<pid>/stat (USER_HZ, 100 on every mainstream kernel: proc(5)). */
const CLOCK_TICKS_PER_SECOND = 100;


// ---- children ---------------------------------------------------------------------------------

type SlackFakeInfo = { apiUrl: string; botToken: string; teamId: string };
type RunblobFakeInfo = { runblobUrl: string; runblobKey: string; heldRunblobUrl: string; heldRunblobKey: string };
type FakesInfo = SlackFakeInfo & RunblobFakeInfo;
/** Per run: final edits seen, the last one's time, and each job's placeholder → final edit ms. */
type Progress = { done: number; lastAt: number; latencies: number[] };

/** Fake Slack in one process, the fake RunBlobs in another: on a 2-core machine neither fake's work (parsing uploads, serving PNGs) queues behind the other's. */
async function slackFakeChild(): Promise<void> {
  const { startFakeSlack } = await import('../test/fakes/slack/fake-slack.ts');
  const slack = await startFakeSlack();
  // Counted as calls arrive (the call log itself grows to tens of thousands of entries).
  const seen = new Map<string, { done: number; lastAt: number; latencies: number[] }>();
  const postedAt = new Map<string, number>();
  let scanned = 0;
  const scan = () => {
    for (; scanned < slack.calls.length; scanned++) {
      const c = slack.calls[scanned]!;
      if (!c.response.ok) continue;
      const channel = String(c.args.channel);
      if (c.method === 'chat.postMessage') postedAt.set(channel, c.at);
      const text = typeof c.args.text === 'string' ? c.args.text : '';
      if (c.method !== 'chat.update' || !text.includes(FINAL_EDIT_MARK)) continue;
      const run = channel.slice(0, 4);
      const s = seen.get(run) ?? { done: 0, lastAt: 0, latencies: [] };
      s.done++;
      s.lastAt = Math.max(s.lastAt, c.at);
      s.latencies.push(c.at - (postedAt.get(channel) ?? c.at));
      seen.set(run, s);
    }
  };
  process.on('message', (m: { progress?: string; stuck?: string; tally?: boolean; close?: boolean }) => {
    if (m.tally) process.send!({ tally: tallyOf([...slack.calls.map((c) => c.method), ...slack.uploads.map(() => 'upload (POST to upload_url)')]) });
    if (m.stuck !== undefined) {
      // Jobs of a run with a placeholder and no final edit: each one's Slack calls, for the report.
      const run = m.stuck;
      const finals = new Set(slack.calls.filter((c) => c.method === 'chat.update' && String(c.args.text).includes(FINAL_EDIT_MARK)).map((c) => String(c.args.channel)));
      const stuck = [...postedAt.keys()].filter((ch) => ch.startsWith(run) && !finals.has(ch));
      const calls = (ch: string) =>
        slack.calls
          .filter((c) => c.args.channel === ch || c.args.channel_id === ch)
          .map((c) => `${c.method} +${c.at - postedAt.get(ch)!} ms${c.response.ok ? '' : ` (${String(c.response.error)})`}`)
          .join(', ');
      process.send!({ stuck: { count: stuck.length, examples: stuck.slice(0, 3).map((ch) => `${ch}: ${calls(ch)}`) } });
    }
    if (m.progress !== undefined) {
      scan();
      const s = seen.get(m.progress) ?? { done: 0, lastAt: 0, latencies: [] };
      const progress: Progress = s;
      process.send!({ progress });
    }
    if (m.close) void slack.close().then(() => process.exit(0));
  });
  process.send!({ ready: { apiUrl: slack.apiUrl, botToken: slack.botToken, teamId: slack.teamId } });
}

async function runblobFakeChild(): Promise<void> {
  const { startFakeRunblob } = await import('../test/fakes/runblob.ts');
  const runblob = await startFakeRunblob({ durationMs: 0 });
  const held = await startFakeRunblob({ durationMs: HELD_TASK_MS });
  process.on('message', (m: { held?: boolean; tally?: boolean; close?: boolean }) => {
    if (m.held) process.send!({ held: held.counts.create });
    if (m.tally) process.send!({ tally: tallyOf([...runblob.requests.map((r) => `RunBlob ${r.kind}`), ...runblob.callbacks.map(() => 'RunBlob callback')]) });
    if (m.close) void Promise.all([runblob.close(), held.close()]).then(() => process.exit(0));
  });
  process.send!({ ready: { runblobUrl: runblob.url, runblobKey: runblob.apiKey, heldRunblobUrl: held.url, heldRunblobKey: held.apiKey } });
}

type BotEnv = { info: FakesInfo; storeUrl: string; held: boolean; port: number };

async function botChild(env: BotEnv): Promise<void> {
  // The real composition root, exactly what `npm start` runs, at production timing but for the
  // provider's request budget (see the header).
  const { startBot } = await import('../src/app.ts');
  const { parseConfig } = await import('../src/config.ts');
  const dataDir = await mkdtemp(join(tmpdir(), 'imagine-jobs-bench-'));
  const { info } = env;
  const config = parseConfig({
    SLACK_BOT_TOKEN: info.botToken,
    SLACK_SIGNING_SECRET: SIGNING_SECRET,
    SLACK_API_URL: info.apiUrl,
    RUNBLOB_API_KEY: env.held ? info.heldRunblobKey : info.runblobKey,
    RUNBLOB_API_URL: env.held ? info.heldRunblobUrl : info.runblobUrl,
    STORE_URL: env.storeUrl.replace('DATA_DIR', dataDir),
    DATA_DIR: dataDir,
    FETCH_ALLOW_HOSTS: '127.0.0.1',
    QUOTA_EXEMPT_USERS: BENCH_USER,
    PORT: String(env.port),
    PUBLIC_URL: `http://127.0.0.1:${env.port}`,
  });
  const allocations = await sampleAllocations();
  const bot = await startBot(config, { log: await shippedLog(config), engineTiming: { rateLimits: { runblob: { requests: 1_000_000, windowMs: 1_000 } } } });
  process.on('message', (m: { close?: boolean }) => {
    if (m.close) void bot.stop().then(() => rm(dataDir, { recursive: true, force: true })).then(allocations).then(() => process.exit(0));
  });
  process.send!({ ready: { baseUrl: bot.http.localUrl, pid: process.pid } });
}

/**
 * JOBS_BENCH_ALLOC_PROF_DIR=DIR: V8's sampling heap profiler over the bot process's main thread,
 * counting what was allocated whether or not it was collected since (the `include…CollectedBy…`
 * flags: https://chromedevtools.github.io/devtools-protocol/tot/HeapProfiler/#method-startSampling),
 * so the profile shows where the garbage comes from, not only what survived. Node's own
 * `--heap-prof` keeps only what is still alive at exit. Written as DIR/alloc.<pid>.heapprofile when
 * the bot stops (open it in Chrome DevTools, Memory tab). Returns what writes it.
 */
async function sampleAllocations(): Promise<() => Promise<void>> {
  const dir = process.env.JOBS_BENCH_ALLOC_PROF_DIR;
  if (!dir) return async () => undefined;
  const { Session } = await import('node:inspector/promises');
  const { writeFile, mkdir } = await import('node:fs/promises');
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', { samplingInterval: 16_384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  return async () => {
    const { profile } = await session.post('HeapProfiler.stopSampling');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, `alloc.${process.pid}.heapprofile`), JSON.stringify(profile));
  };
}

/** The provider's part of a floor job: create the task, read it until done, download the image. */
function floorProvider(info: FakesInfo): (prompt: string) => Promise<ArrayBuffer> {
  // A pooled client, as any real one is: 500 sockets opened at once to one origin get reset.
  const dispatcher = new Agent({ connections: FLOOR_CONNECTIONS_PER_ORIGIN });
  const runblobHeaders = { authorization: `Bearer ${info.runblobKey}`, 'content-type': 'application/json' };
  const runblobJson = async (path: string, body?: object) => {
    const r = await request(`${info.runblobUrl}${path}`, body ? { method: 'POST', headers: runblobHeaders, body: JSON.stringify(body), dispatcher } : { headers: runblobHeaders, dispatcher });
    if (r.statusCode !== 200) throw new Error(`floor: RunBlob ${path} answered ${r.statusCode} ${await r.body.text()}`);
    return (await r.body.json()) as Record<string, unknown>;
  };
  return async (prompt) => {
    const created = await runblobJson('/v1/gemini/generate', { prompt, model: 'standard', aspect_ratio: '16:9' });
    let task = await runblobJson(`/v1/gemini/generations/${String(created.task_uuid)}`);
    while (task.status !== 'completed') {
      if (task.status === 'failed') throw new Error(`floor: task failed ${JSON.stringify(task)}`);
      await sleep(10);
      task = await runblobJson(`/v1/gemini/generations/${String(created.task_uuid)}`);
    }
    return (await request(String(task.result_image_url), { dispatcher })).body.arrayBuffer();
  };
}

/** A worker thread running floorProvider: its answers' images are moved (transferred), not copied. */
function floorProviderWorker(): void {
  const provider = floorProvider((workerData as { floorProvider: FakesInfo }).floorProvider);
  parentPort!.on('message', ({ id, prompt }: { id: number; prompt: string }) => {
    provider(prompt).then(
      (image) => parentPort!.postMessage({ id, image }, [image]),
      (err: unknown) => parentPort!.postMessage({ id, error: String(err) }),
    );
  });
}

/** floorProvider in a worker thread, called from the main thread. */
function floorProviderInWorker(info: FakesInfo): (prompt: string) => Promise<ArrayBuffer> {
  const worker = new Worker(here, { workerData: { floorProvider: info } });
  worker.unref();
  const waiting = new Map<number, PromiseWithResolvers<ArrayBuffer>>();
  let next = 0;
  worker.on('message', ({ id, image, error }: { id: number; image?: ArrayBuffer; error?: string }) => {
    const w = waiting.get(id)!;
    waiting.delete(id);
    if (image) w.resolve(image);
    else w.reject(new Error(error));
  });
  return (prompt) => {
    const w = Promise.withResolvers<ArrayBuffer>();
    const id = next++;
    waiting.set(id, w);
    worker.postMessage({ id, prompt });
    return w.promise;
  };
}

/**
 * The floor: one job is these REST calls and nothing else (no store, no files on disk, no
 * progress edits), the same calls the bot makes against the same fakes. With `split`, the
 * provider's calls (create, read, download) run in a worker thread and the platform's on the
 * main thread: the least main-thread work a bot whose engine runs in a worker thread could do.
 */
async function floorChild(info: FakesInfo, split: boolean): Promise<void> {
  // A pooled client, as any real one is: 500 sockets opened at once to one origin get reset.
  const dispatcher = new Agent({ connections: FLOOR_CONNECTIONS_PER_ORIGIN });
  const slackHeaders = { authorization: `Bearer ${info.botToken}`, 'content-type': 'application/json; charset=utf-8' };
  const slack = async (method: string, body: object) => {
    const r = await request(`${info.apiUrl}${method}`, { method: 'POST', headers: slackHeaders, body: JSON.stringify(body), dispatcher });
    const json = (await r.body.json()) as Record<string, unknown>;
    if (json.ok !== true) throw new Error(`floor: ${method} answered ${JSON.stringify(json)}`);
    return json;
  };
  const provider = split ? floorProviderInWorker(info) : floorProvider(info);
  const job = async (channel: string, i: number) => {
    const prompt = `floor bench prompt ${i}`;
    const placeholder = await slack('chat.postMessage', { channel, text: `Queued · "${prompt}"` });
    const image = Buffer.from(await provider(prompt));
    const filename = `floor-${i}.png`;
    const target = await slack('files.getUploadURLExternal', { filename, length: image.length, alt_text: prompt });
    const boundary = `----floor-${randomBytes(8).toString('hex')}`;
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: image/png\r\n\r\n`),
      image,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const up = await request(String(target.upload_url), { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, authorization: slackHeaders.authorization }, body, dispatcher });
    if (up.statusCode !== 200) throw new Error(`floor: upload answered ${up.statusCode}`);
    await up.body.text();
    await slack('files.completeUploadExternal', { files: [{ id: String(target.file_id), title: prompt }], channel_id: channel });
    await slack('chat.update', { channel, ts: String(placeholder.ts), text: `"${prompt}"${FINAL_EDIT_MARK}floor${i}` });
  };
  process.on('message', (m: { run?: { prefix: string; count: number }; close?: boolean }) => {
    if (m.run) {
      const { prefix, count } = m.run;
      void Promise.all(Array.from({ length: count }, (_, i) => job(`${prefix}${i}`, i))).then(
        () => process.send!({ ran: count }),
        (err: unknown) => process.send!({ ran: -1, error: String(err) }),
      );
    }
    if (m.close) process.exit(0);
  });
  process.send!({ ready: { pid: process.pid } });
}

// ---- measuring from outside ---------------------------------------------------------------------

/**
 * From a /proc stat file (a process's: every thread it has had; a task's: that thread's), in ms:
 * utime + stime, and stime alone (the kernel's work for it: system calls, copying bytes to and
 * from sockets and files, page faults).
 */
async function statCpuMs(path: string): Promise<{ cpu: number; kernel: number }> {
  const stat = await readFile(path, 'utf8');
  // Fields after the command name (which may hold spaces, hence the last ')'): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ms = (ticks: string | undefined) => (Number(ticks) * 1000) / CLOCK_TICKS_PER_SECOND;
  return { cpu: ms(fields[11]) + ms(fields[12]), kernel: ms(fields[12]) };
}

/** utime + stime of the process's main thread (its task whose id is the pid), in ms. */
const mainThreadCpuMs = async (pid: number): Promise<number> => (await statCpuMs(`/proc/${pid}/task/${pid}/stat`)).cpu;

/**
 * A process's CPU by thread, in ms: its main thread; its worker threads (the bot's results
 * thread; the split floor's provider thread); V8's own threads (parallel and concurrent garbage
 * collection, background compilation); libuv's pool (file calls); the rest of the process's own
 * total (threads of other names, and threads that have ended). Node names its threads on Linux
 * (comm): `WorkerThread`, `node-V8Worker`, `libuv-worker`; a Node that does not counts them as
 * "other" (the bench says so).
 */
interface ThreadCpu {
  main: number;
  workers: number;
  v8: number;
  libuv: number;
  other: number;
}
const THREAD_GROUPS: Record<string, Exclude<keyof ThreadCpu, 'main' | 'other'>> = { WorkerThread: 'workers', 'node-V8Worker': 'v8', 'libuv-worker': 'libuv' };
const THREAD_COLUMNS: [keyof ThreadCpu, string][] = [
  ['main', 'main thread'],
  ['workers', 'worker threads'],
  ['v8', "V8's threads (GC, compilers)"],
  ['libuv', "libuv's pool (files)"],
  ['other', 'other (the rest of the process; ± a 10 ms tick)'],
];
const ZERO_CPU: ThreadCpu = { main: 0, workers: 0, v8: 0, libuv: 0, other: 0 };
const totalOf = (t: ThreadCpu): number => t.main + t.workers + t.v8 + t.libuv + t.other;
/** Whether any thread had one of THREAD_GROUPS' names (else the table by thread says nothing). */
let namedThreadsSeen = false;

/** A process's CPU by thread (`cpu`), and of it the part in the kernel (`kernel`), in ms. */
interface CpuWithKernel {
  cpu: ThreadCpu;
  kernel: ThreadCpu;
}

async function threadCpuMs(pid: number): Promise<CpuWithKernel> {
  const cpu: ThreadCpu = { ...ZERO_CPU };
  const kernel: ThreadCpu = { ...ZERO_CPU };
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    // A thread that ended meanwhile: its CPU is in the process's total, hence in "other".
    const sample = await Promise.all([readFile(`/proc/${pid}/task/${tid}/comm`, 'utf8'), statCpuMs(`/proc/${pid}/task/${tid}/stat`)]).catch(() => undefined);
    if (!sample) continue;
    const group = tid === String(pid) ? 'main' : THREAD_GROUPS[sample[0].trim()];
    if (group && group !== 'main') namedThreadsSeen = true;
    if (group) {
      cpu[group] += sample[1].cpu;
      kernel[group] += sample[1].kernel;
    }
  }
  const whole = await statCpuMs(`/proc/${pid}/stat`);
  cpu.other = Math.max(0, whole.cpu - totalOf(cpu));
  kernel.other = Math.max(0, whole.kernel - totalOf(kernel));
  return { cpu, kernel };
}

/** `after - before` over `jobs`, summed over processes (or runs). */
function perJobThreads(before: ThreadCpu[], after: ThreadCpu[], jobs: number): ThreadCpu {
  const out: ThreadCpu = { ...ZERO_CPU };
  after.forEach((a, i) => {
    for (const k of Object.keys(out) as (keyof ThreadCpu)[]) out[k] += (a[k] - before[i]![k]) / jobs;
  });
  return out;
}

/** perJobThreads for both the CPU and its kernel part. */
const perJobCpuWithKernel = (before: CpuWithKernel[], after: CpuWithKernel[], jobs: number): CpuWithKernel => ({
  cpu: perJobThreads(before.map((b) => b.cpu), after.map((a) => a.cpu), jobs),
  kernel: perJobThreads(before.map((b) => b.kernel), after.map((a) => a.kernel), jobs),
});

/**
 * What the bench reads from a bot's /metrics, in one scrape (which also starts a new window of
 * prom-client's event-loop lag figures): the event-loop delay's p99, the V8 heap in use, and the
 * main thread's garbage collections so far and their seconds (nodejs_gc_duration_seconds, src/metrics.ts).
 */
async function scrapeBot(baseUrl: string): Promise<{ lagP99Seconds: number; heapUsedBytes: number; gcCount: number; gcSeconds: number }> {
  const scrape = parseScrape(await (await request(`${baseUrl}/metrics`)).body.text());
  const gauge = (name: string) => {
    if (!scrape.families.has(name)) throw new Error(`/metrics has no ${name}`);
    return scrape.sum(name);
  };
  return {
    lagP99Seconds: gauge('nodejs_eventloop_lag_p99_seconds'),
    heapUsedBytes: gauge('nodejs_heap_size_used_bytes'),
    gcCount: scrape.count(GC_DURATION_METRIC),
    gcSeconds: scrape.sum(`${GC_DURATION_METRIC}_sum`),
  };
}

const here = fileURLToPath(import.meta.url);
/** Both fakes; `child` is the fake Slack's process (the one asked about progress). */
type Fakes = Awaited<ReturnType<typeof startFakes>>;
async function startFakes() {
  const [slack, runblob] = await Promise.all([forkRole<SlackFakeInfo>(here, 'slack-fake'), forkRole<RunblobFakeInfo>(here, 'runblob-fake')]);
  return { child: slack.child, runblob: runblob.child, ready: { ...slack.ready, ...runblob.ready } };
}
const startFloor = (info: FakesInfo, split = false) =>
  forkRole<{ pid: number }>(here, 'floor', { JOBS_BENCH_FAKES: JSON.stringify(info), JOBS_BENCH_FLOOR_SPLIT: split ? '1' : '0' });
/** `nodeOptions`: NODE_OPTIONS for the bot process (none: Node's defaults, whatever the bench itself runs with). */
async function startBotProcess(info: FakesInfo, storeUrl: string, held = false, nodeOptions = '') {
  const env: BotEnv = { info, storeUrl, held, port: await freePort() };
  // JOBS_BENCH_CPU_PROF_DIR=DIR: each bot process writes a V8 CPU profile there when it exits (open it in Chrome DevTools).
  const profile = process.env.JOBS_BENCH_CPU_PROF_DIR ? ` --cpu-prof --cpu-prof-dir=${process.env.JOBS_BENCH_CPU_PROF_DIR}` : '';
  return forkRole<{ baseUrl: string; pid: number }>(here, 'bot', { JOBS_BENCH_BOT: JSON.stringify(env), NODE_OPTIONS: `${nodeOptions}${profile}`.trim() });
}

/**
 * Sends `count` /imagine commands, spread over the bots' events URLs, each in its own channel
 * `${run}${i}` (Slack limits posting per channel, so a workspace's load is spread over channels).
 */
async function sendCommands(teamId: string, baseUrls: string[], run: string, count: number, perSecond = Infinity): Promise<void> {
  const drivers = baseUrls.map((u) => createSlackDriver({ eventsUrl: `${u}/slack/events`, signingSecret: SIGNING_SECRET, fake: standInSlackFake(teamId) }));
  const start = performance.now();
  const sends: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const wait = start + (i * 1000) / perSecond - performance.now();
    if (wait > 0) await sleep(wait);
    sends.push(
      drivers[i % drivers.length]!.slashCommand({ user: { id: BENCH_USER }, channel: `${run}${i}`, text: `bench prompt ${i} --ar 16:9` }).then((r) => {
        if (r.status !== 200) throw new Error(`${run}: HTTP ${r.status} for command ${i}`);
      }),
    );
  }
  await Promise.all(sends);
}

/** How long a run's jobs may take to be delivered before the run is reported with the missing ones. */
const DELIVERY_TIMEOUT_MS = 45_000;

/**
 * Polls the fakes until `count` final edits in channels starting with `run` (4 characters), or
 * the timeout: then the jobs not delivered are described (`missing`), not hidden.
 */
async function waitDone(fakes: ChildProcess, run: string, count: number): Promise<Progress & { missing?: string }> {
  const deadline = Date.now() + DELIVERY_TIMEOUT_MS;
  for (;;) {
    const { progress } = await ask<{ progress: Progress }>(fakes, { progress: run }, 'progress');
    if (progress.done >= count) return progress;
    if (Date.now() > deadline) {
      const { stuck } = await ask<{ stuck: { count: number; examples: string[] } }>(fakes, { stuck: run }, 'stuck');
      const missing = `${count - progress.done} of ${count} jobs not delivered within ${DELIVERY_TIMEOUT_MS / 1000} s (${stuck.count} with a placeholder; e.g. ${stuck.examples.join('; ') || 'none'})`;
      return { ...progress, missing };
    }
    await sleep(50);
  }
}

interface Throughput {
  jobsPerSecond: number;
  /** Each job's placeholder → final edit, ascending. */
  latencies: number[];
  /** Jobs not delivered in time, described (the warm-up's included). */
  missing: string[];
  /** CPU per job by thread (summed over the processes), and its part in the kernel; `cpu.main` is the main thread's. */
  threads: CpuWithKernel;
  lagP99Ms?: number;
  /** The bots' main-thread garbage collections and their time (ms) per job, from their /metrics: all the processes' over all the jobs. */
  gcPerJob?: { collections: number; ms: number };
  /** HTTP exchanges per job seen by the fakes, by Slack method / RunBlob request kind. */
  callsPerJob: Record<string, number>;
}

type Tally = Record<string, number>;
const tallyOf = (names: string[]): Tally => {
  const t: Tally = {};
  for (const n of names) t[n] = (t[n] ?? 0) + 1;
  return t;
};
/** Every exchange the fakes have seen so far (Slack API calls and uploads, RunBlob requests and callbacks). */
async function tally(fakes: Fakes): Promise<Tally> {
  const [slack, runblob] = await Promise.all([ask<{ tally: Tally }>(fakes.child, { tally: true }, 'tally'), ask<{ tally: Tally }>(fakes.runblob, { tally: true }, 'tally')]);
  return { ...slack.tally, ...runblob.tally };
}
const perJob = (before: Tally, after: Tally, jobs: number): Tally =>
  Object.fromEntries(Object.entries(after).map(([k, v]) => [k, (v - (before[k] ?? 0)) / jobs]).filter(([, v]) => (v as number) > 0));

/** Runs use 4-character channel prefixes, unique per run ("C" + 3). */
let runSeq = 0;
const nextRun = () => `C${String(++runSeq).padStart(3, '0')}`;

async function botThroughput(fakes: Fakes, storeUrl: (i: number) => string, processes: number, jobs: number, nodeOptions: string): Promise<Throughput> {
  const info = fakes.ready;
  const bots = await Promise.all(Array.from({ length: processes }, async (_, i) => startBotProcess(info, storeUrl(i), false, nodeOptions)));
  try {
    const urls = bots.map((b) => b.ready.baseUrl);
    const warm = nextRun();
    await sendCommands(info.teamId, urls, warm, warmupJobs(jobs));
    const warmDone = await waitDone(fakes.child, warm, warmupJobs(jobs));
    const run = nextRun();
    const calls0 = await tally(fakes);
    const cpu0 = await Promise.all(bots.map((b) => threadCpuMs(b.ready.pid)));
    const before = await Promise.all(urls.map(scrapeBot)); // also resets the event-loop lag window
    const t0 = Date.now();
    await sendCommands(info.teamId, urls, run, jobs);
    const done = await waitDone(fakes.child, run, jobs);
    const cpu1 = await Promise.all(bots.map((b) => threadCpuMs(b.ready.pid)));
    const calls1 = await tally(fakes);
    const after = await Promise.all(urls.map(scrapeBot));
    const gcDelta = (of: 'gcCount' | 'gcSeconds') => after.reduce((n, a, i) => n + a[of] - before[i]![of], 0);
    return {
      jobsPerSecond: done.done / ((done.lastAt - t0) / 1000),
      latencies: done.latencies.sort((a, b) => a - b),
      missing: [warmDone.missing && `warm-up: ${warmDone.missing}`, done.missing].filter((m): m is string => !!m),
      threads: perJobCpuWithKernel(cpu0, cpu1, done.done),
      lagP99Ms: Math.max(...after.map((a) => a.lagP99Seconds)) * 1000,
      gcPerJob: { collections: gcDelta('gcCount') / done.done, ms: (gcDelta('gcSeconds') * 1000) / done.done },
      callsPerJob: perJob(calls0, calls1, done.done),
    };
  } finally {
    await Promise.all(bots.map((b) => stopChild(b.child)));
  }
}

async function floorThroughput(fakes: Fakes, jobs: number, split = false): Promise<Throughput> {
  const floor = await startFloor(fakes.ready, split);
  try {
    const go = async (prefix: string, count: number) => {
      const r = await ask<{ ran: number; error?: string }>(floor.child, { run: { prefix, count } }, 'ran');
      if (r.ran !== count) throw new Error(r.error ?? 'floor run failed');
    };
    await go(nextRun(), warmupJobs(jobs));
    const run = nextRun();
    const cpu0 = await threadCpuMs(floor.ready.pid);
    const calls0 = await tally(fakes);
    const t0 = Date.now();
    await go(run, jobs);
    const done = await waitDone(fakes.child, run, jobs);
    const cpu1 = await threadCpuMs(floor.ready.pid);
    const calls1 = await tally(fakes);
    return {
      jobsPerSecond: done.done / ((done.lastAt - t0) / 1000),
      latencies: done.latencies.sort((a, b) => a - b),
      missing: done.missing ? [done.missing] : [],
      threads: perJobCpuWithKernel([cpu0], [cpu1], done.done),
      callsPerJob: perJob(calls0, calls1, done.done),
    };
  } finally {
    await stopChild(floor.child);
  }
}

interface Memory {
  idleRss: number;
  rss: number;
  idleHeap: number;
  heap: number;
  waiting: number;
  /** Main-thread CPU per second of wall time while the jobs wait (lease renewals, polls, progress ticks). */
  waitingCpuMsPerSecond: number;
}

/** How long the main thread's CPU is sampled while the jobs wait. */
const WAITING_CPU_WINDOW_MS = 10_000;

async function memoryAtWaiting(runblobFake: ChildProcess, info: FakesInfo, waiting: number, nodeOptions = ''): Promise<Memory> {
  const bot = await startBotProcess(info, 'sqlite://DATA_DIR/store.sqlite', true, nodeOptions);
  try {
    const { pid, baseUrl } = bot.ready;
    await sleep(1_000);
    const idleHeap = (await scrapeBot(baseUrl)).heapUsedBytes;
    const idleRss = await procStatusBytes(pid, 'VmRSS');
    // 200/s: a steady arrival, not a burst, so the figure is what the jobs hold, not a spike in socket buffers.
    await sendCommands(info.teamId, [baseUrl], nextRun(), waiting, 200);
    const deadline = Date.now() + 60_000;
    let held = 0;
    while ((held = (await ask<{ held: number }>(runblobFake, { held: true }, 'held')).held) < waiting && Date.now() < deadline) await sleep(100);
    if (held < waiting) throw new Error(`only ${held} of ${waiting} jobs reached the provider`);
    await sleep(2_000); // placeholders edited to "Generating", the engine's first polls planned
    const rss = await procStatusBytes(pid, 'VmRSS');
    const heap = (await scrapeBot(baseUrl)).heapUsedBytes;
    const cpu0 = await mainThreadCpuMs(pid);
    await sleep(WAITING_CPU_WINDOW_MS);
    const waitingCpuMsPerSecond = ((await mainThreadCpuMs(pid)) - cpu0) / (WAITING_CPU_WINDOW_MS / 1000);
    return { idleRss, rss, idleHeap, heap, waiting, waitingCpuMsPerSecond };
  } finally {
    await stopChild(bot.child);
  }
}

/**
 * One fresh bot per NODE_OPTIONS variant ('' for Node's defaults), side by side in one run, each
 * variant twice in alternation: memory per in-flight job and, on one process with SQLite, jobs/s
 * and main-thread CPU per job. For choosing the image's NODE_OPTIONS
 * (`node bench/jobs.ts --memory-with='' --memory-with='--max-semi-space-size=2'`).
 */
async function compareNodeOptions(variants: string[], waiting: number, jobs: number): Promise<string> {
  const rows: string[] = [];
  for (const round of [1, 2]) {
    for (const nodeOptions of variants) {
      const fakes = await startFakes();
      let m: Memory;
      let t: Throughput;
      try {
        m = await memoryAtWaiting(fakes.runblob, fakes.ready, waiting, nodeOptions);
      } finally {
        await Promise.all([stopChild(fakes.child), stopChild(fakes.runblob)]);
      }
      const fresh = await startFakes();
      try {
        t = await botThroughput(fresh, () => 'sqlite://DATA_DIR/store.sqlite', 1, jobs, nodeOptions);
      } finally {
        await Promise.all([stopChild(fresh.child), stopChild(fresh.runblob)]);
      }
      rows.push(
        `| \`${nodeOptions || "Node's defaults"}\` | ${round} | **${((m.rss - m.idleRss) / 1024 / m.waiting).toFixed(1)} KB** | ${((m.heap - m.idleHeap) / 1024 / m.waiting).toFixed(1)} KB | ${m.waitingCpuMsPerSecond.toFixed(0)} ms/s | ${t.jobsPerSecond.toFixed(1)} | ${t.threads.cpu.main.toFixed(2)} | ${totalOf(t.threads.cpu).toFixed(2)} |`,
      );
    }
  }
  return [
    `| NODE_OPTIONS | round | RSS per job (${waiting} waiting) | heap per job | CPU while they wait | jobs/s (${jobs} at once, 1 process) | main-thread CPU ms/job | process CPU ms/job, every thread |`,
    '|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

/**
 * CPU per job by thread: on two cores shared with the fakes, jobs/s follows the whole process's
 * CPU, of which the main thread is only a part.
 */
function threadsTable(rows: [string, CpuWithKernel][]): string {
  const cell = (cpu: number, kernel: number) => `${cpu.toFixed(2)} (${kernel.toFixed(2)})`;
  return [
    `${namedThreadsSeen ? 'CPU ms per job, by thread' : "CPU ms per job, by thread (this Node does not name its threads: all but the main thread's is under \"other\")"}; ` +
      'in brackets, the part of it in the kernel (stime: system calls, copying bytes to and from sockets and files, page faults):',
    '',
    `| runner | ${THREAD_COLUMNS.map(([, label]) => label).join(' | ')} | whole process |`,
    `|---|${THREAD_COLUMNS.map(() => '---:|').join('')}---:|`,
    ...rows.map(([label, t]) => `| ${label} | ${THREAD_COLUMNS.map(([k]) => cell(t.cpu[k], t.kernel[k])).join(' | ')} | ${cell(totalOf(t.cpu), totalOf(t.kernel))} |`),
  ].join('\n');
}

/** The exchanges a job makes, the floor's against the bot's: where the bot's extra work on the wire is. */
function callsTable(floor: Throughput, bot: Throughput): string {
  const names = [...new Set([...Object.keys(floor.callsPerJob), ...Object.keys(bot.callsPerJob)])].sort();
  const cell = (t: Throughput, n: string) => (t.callsPerJob[n] ?? 0).toFixed(2);
  const total = (t: Throughput) => Object.values(t.callsPerJob).reduce((s, v) => s + v, 0).toFixed(2);
  return [
    'HTTP exchanges per job, as the fakes saw them (the slash command itself not counted):',
    '',
    '| exchange | floor | bot, 1 process |',
    '|---|---:|---:|',
    ...names.map((n) => `| ${n} | ${cell(floor, n)} | ${cell(bot, n)} |`),
    `| **total** | **${total(floor)}** | **${total(bot)}** |`,
  ].join('\n');
}

export async function runJobsBench(opts: { jobs?: number; waiting?: number; processes?: number } = {}): Promise<string> {
  const jobs = opts.jobs ?? JOBS_BENCH_JOBS;
  const waiting = opts.waiting ?? JOBS_BENCH_WAITING;
  const processes = opts.processes ?? JOBS_BENCH_PROCESSES;
  const redis = await startRedis();
  try {
    // Fresh fakes for every runner: the fake Slack keeps every upload's bytes, so a later runner
    // would otherwise pay for the earlier runners' garbage.
    const withFakes = async <T>(run: (fakes: Awaited<ReturnType<typeof startFakes>>) => Promise<T>): Promise<T> => {
      const fakes = await startFakes();
      try {
        return await run(fakes);
      } finally {
        await Promise.all([stopChild(fakes.child), stopChild(fakes.runblob)]);
      }
    };
    // Floor first and last: the mean of the two is the floor the bot runs are compared with (machine drift).
    const shipped = await shippedNodeOptions();
    const floorA = await withFakes((f) => floorThroughput(f, jobs));
    const one = await withFakes((f) => botThroughput(f, () => 'sqlite://DATA_DIR/store.sqlite', 1, jobs, shipped));
    const three = await withFakes((f) => botThroughput(f, () => redis.url, processes, jobs, shipped));
    const floorB = await withFakes((f) => floorThroughput(f, jobs));
    // Issue 13 point 3's best case: the floor with its provider calls in a worker thread.
    const floorSplit = await withFakes((f) => floorThroughput(f, jobs, true));
    const memDefault = await withFakes((f) => memoryAtWaiting(f.runblob, f.ready, waiting));
    const memShipped = await withFakes((f) => memoryAtWaiting(f.runblob, f.ready, waiting, shipped));
    const floorJps = (floorA.jobsPerSecond + floorB.jobsPerSecond) / 2;
    const zero: CpuWithKernel = { cpu: ZERO_CPU, kernel: ZERO_CPU };
    const floorThreadsCpu = perJobCpuWithKernel([zero, zero], [floorA.threads, floorB.threads], 2);
    const floorThreads = floorThreadsCpu.cpu;
    const floorCpu = floorThreads.main;
    const floorProcessCpu = totalOf(floorThreads);
    const meets = (ok: boolean) => (ok ? 'met' : 'NOT met');
    const kbPerJob = (m: Memory) => (m.rss - m.idleRss) / 1024 / m.waiting;
    const heapKbPerJob = (m: Memory) => (m.heap - m.idleHeap) / 1024 / m.waiting;
    const memRow = (label: string, m: Memory) =>
      `| ${label} | ${(m.idleRss / 2 ** 20).toFixed(1)} → ${(m.rss / 2 ** 20).toFixed(1)} MB | **${kbPerJob(m).toFixed(1)} KB** | ${(m.idleHeap / 2 ** 20).toFixed(1)} → ${(m.heap / 2 ** 20).toFixed(1)} MB | ${heapKbPerJob(m).toFixed(1)} KB | ${m.waitingCpuMsPerSecond.toFixed(0)} ms/s |`;
    const oneRatio = one.jobsPerSecond / floorJps;
    /** CPU per job and its multiple of the floor's in this run: steadier between runs than the time, which swings with the machine. */
    const cpuCell = (t: Throughput) => `${t.threads.cpu.main.toFixed(2)} (${(t.threads.cpu.main / floorCpu).toFixed(2)}×)`;
    const processCpuCell = (t: Throughput) => `${totalOf(t.threads.cpu).toFixed(2)} (${(totalOf(t.threads.cpu) / floorProcessCpu).toFixed(2)}×)`;
    const gcCell = (t: Throughput) => `${t.gcPerJob!.collections.toFixed(2)} collections, ${t.gcPerJob!.ms.toFixed(2)} ms`;
    const spread = (t: Throughput) => [50, 99, 100].map((p) => percentile(t.latencies, p).toFixed(0)).join(' / ');
    return [
      `### Jobs end to end (${jobs} /imagine commands at once, after a warm-up of ${warmupJobs(jobs)} jobs per runner; instant fake RunBlob with callbacks, fake Slack)`,
      '',
      '| runner | jobs/s | ratio to floor | job p50 / p99 / max ms | main-thread CPU ms/job (× the floor\'s) | process CPU ms/job, every thread (× the floor\'s) | event-loop delay p99 ms |',
      '|---|---|---|---|---|---|---|',
      `| floor script (REST calls only, 1 process) | ${floorJps.toFixed(1)} (${floorA.jobsPerSecond.toFixed(1)} before, ${floorB.jobsPerSecond.toFixed(1)} after) | 1.00× | ${spread(floorB)} | ${floorCpu.toFixed(2)} (1.00×) | ${floorProcessCpu.toFixed(2)} (1.00×) | – |`,
      `| floor, provider calls in a worker thread (the platform's on the main thread) | ${floorSplit.jobsPerSecond.toFixed(1)} | ${(floorSplit.jobsPerSecond / floorJps).toFixed(2)}× | ${spread(floorSplit)} | ${cpuCell(floorSplit)} | ${processCpuCell(floorSplit)} | – |`,
      `| bot, 1 process, SQLite | ${one.jobsPerSecond.toFixed(1)} | **${oneRatio.toFixed(2)}×** | ${spread(one)} | ${cpuCell(one)} | ${processCpuCell(one)} | ${one.lagP99Ms!.toFixed(1)} |`,
      `| bot, ${processes} processes, one Redis | ${three.jobsPerSecond.toFixed(1)} | **${(three.jobsPerSecond / floorJps).toFixed(2)}×** | ${spread(three)} | ${three.threads.cpu.main.toFixed(2)} (sum of the ${processes}) | ${totalOf(three.threads.cpu).toFixed(2)} (sum of the ${processes}) | ${three.lagP99Ms!.toFixed(1)} (worst of the ${processes}) |`,
      '',
      `Targets (issue 13): jobs/s ≥ ${TARGET_FLOOR_RATIO}× the floor on one process: ${meets(oneRatio >= TARGET_FLOOR_RATIO)}; ` +
        `≤ ${TARGET_CPU_MS_PER_JOB} ms main-thread CPU per job: ${meets(one.threads.cpu.main <= TARGET_CPU_MS_PER_JOB)} ` +
        `(the platform's REST calls alone, with the provider's in a worker thread, cost ${floorSplit.threads.cpu.main.toFixed(2)} ms of main-thread CPU per job). ` +
        `Jobs/s: ${jobs} / (first command sent → last final edit). Job time: placeholder posted → final edit (the floor's: its second run). ` +
        `CPU from /proc/<pid>/task/<tid>/stat (10 ms ticks); event-loop delay from the bot's /metrics (nodejs_eventloop_lag_p99_seconds) over the run.`,
      '',
      threadsTable([
        ['floor script (the mean of its two runs)', floorThreadsCpu],
        ['floor, provider calls in a worker thread', floorSplit.threads],
        ['bot, 1 process, SQLite', one.threads],
        [`bot, ${processes} processes, one Redis (sum)`, three.threads],
      ]),
      '',
      `The bots' main-thread garbage collection per job (their /metrics, nodejs_gc_duration_seconds; the results thread's own is not in it): ` +
        `1 process ${gcCell(one)}; ${processes} processes ${gcCell(three)} (all their collections over all the jobs).`,
      '',
      callsTable(floorB, one),
      ...[floorA, one, three, floorB, floorSplit].flatMap((t, i) => t.missing.map((m) => `\n**Not delivered** (${['floor, first run', 'bot, 1 process', `bot, ${processes} processes`, 'floor, second run', 'floor, provider calls in a worker'][i]}): ${m}. Jobs/s and CPU count the delivered jobs only.`)),
      '',
      `### Memory per in-flight job (${memDefault.waiting} jobs waiting at a fake RunBlob that holds them, one process, SQLite)`,
      '',
      '| bot run with | RSS (VmRSS) idle → waiting | RSS per job | V8 heap used idle → waiting | heap per job | main-thread CPU while they wait |',
      '|---|---|---|---|---|---|',
      memRow("Node's defaults (`node src/main.ts`)", memDefault),
      memRow(`as shipped: \`npm start\` and the image (\`${shipped}\`)`, memShipped),
      '',
      `Target (issue 13): ≤ ${TARGET_KB_PER_JOB} KB RSS per in-flight job: ${meets(kbPerJob(memDefault) <= TARGET_KB_PER_JOB)} with Node's defaults, ` +
        `${meets(kbPerJob(memShipped) <= TARGET_KB_PER_JOB)} as shipped (\`npm start\`, the image). Jobs arrive at 200/s; read 2 s after the last reached the provider. ` +
        `Heap "used" counts garbage not yet collected as well as what the jobs hold. CPU: over ${WAITING_CPU_WINDOW_MS / 1000} s after that, with the ` +
        `provider's request budget lifted (see the header), so polls run as often as the poll plan asks.`,
    ].join('\n');
  } finally {
    await redis.stop();
  }
}

if (!isMainThread && (workerData as { floorProvider?: unknown } | null)?.floorProvider) floorProviderWorker();
else if (process.argv[1] && here === process.argv[1]) {
  const role = process.argv.find((a) => a.startsWith('--role='))?.slice('--role='.length);
  if (role === 'slack-fake') await slackFakeChild();
  else if (role === 'runblob-fake') await runblobFakeChild();
  else if (role === 'bot') await botChild(JSON.parse(process.env.JOBS_BENCH_BOT!) as BotEnv);
  else if (role === 'floor') await floorChild(JSON.parse(process.env.JOBS_BENCH_FAKES!) as FakesInfo, process.env.JOBS_BENCH_FLOOR_SPLIT === '1');
  else {
    // --jobs=N / --waiting=N: a quicker run while working on the job path.
    const jobs = numberFlag('jobs');
    const waiting = numberFlag('waiting');
    const variants = process.argv.filter((a) => a.startsWith('--memory-with=')).map((a) => a.slice('--memory-with='.length));
    if (variants.length > 0) {
      process.stdout.write(`${await compareNodeOptions(variants, waiting ?? JOBS_BENCH_WAITING, jobs ?? JOBS_BENCH_JOBS)}\n`);
      process.exit(0);
    }
    process.stdout.write(`${await runJobsBench({ ...(jobs !== undefined && { jobs }), ...(waiting !== undefined && { waiting }) })}\n`);
  }
}
