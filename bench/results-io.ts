/**
 * `npm run bench -- results` (issue 13): CPU of a job's result on its way through the bot:
 * downloaded to disk (`downloadResult`: a temp file renamed into place, so a restart loses
 * nothing), then POSTed to Slack's upload URL (`postToUploadUrl`): both on the results thread as
 * the bot does (results-worker.ts: the thread reads the file back); or downloaded there and
 * POSTed on the main thread from the bytes the download kept (recent-results.ts), as the release
 * before did; or both on the main thread, as the releases before the thread did; against the
 * floor's way (the body read into memory, the same bytes POSTed from memory), side by side in one run.
 * The image is the fake RunBlob's 1K output (a PNG of about half a megabyte); the server that
 * serves it and takes the uploads runs in a child process, so its work is billed to neither. CPU
 * is this process's, every thread (process.cpuUsage: the file system's work runs in libuv's pool,
 * the download and the upload on the results thread) and its main thread's alone (process.threadCpuUsage);
 * rounds alternate so machine drift hits every way alike. The process's RSS before the rounds and
 * after them (and 10 s of quiet) shows whether results' memory is given back. The main thread's
 * ways share one pool of CONCURRENCY connections; the thread uses undici's global dispatcher, as in
 * the bot (with 16 results in flight, both hold 16 connections at most per way).
 *
 *   node bench/results-io.ts [--jobs=N]
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { RecentResults, resultContent } from '../src/engine/recent-results.ts';
import { downloadResult, type DownloadResultFn } from '../src/engine/results.ts';
import { ResultsWorker } from '../src/engine/results-worker.ts';
import { postToUploadUrl } from '../src/platforms/slack/upload.ts';
import type { FileUploader } from '../src/util/file-upload.ts';
import { alternateRounds, cpuOf, forkRole, median, numberFlag, procStatusBytes, sleep, stopChild } from './processes.ts';
import { formatMiB } from '../src/util/units.ts';

export const RESULTS_BENCH_JOBS = 300;
/** Results in flight at once. */
const CONCURRENCY = 16;
const ROUNDS = 6;
/** Quiet after the rounds before the RSS is read again. */
const RSS_SETTLE_MS = 10_000;
const here = fileURLToPath(import.meta.url);

async function serverChild(): Promise<void> {
  const { outputPng } = await import('../test/fakes/png.ts');
  const png = await outputPng({ aspectRatio: '16:9', resolution: '1K', taskId: 'results-bench' });
  const server = createServer((req, res) => {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length });
      res.end(png);
      return;
    }
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end('OK'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  process.on('message', (m: { close?: boolean }) => {
    if (m.close) server.close(() => process.exit(0));
  });
  process.send!({ ready: { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bytes: png.length } });
}

export async function runResultsBench(jobs = RESULTS_BENCH_JOBS): Promise<string> {
  const server = await forkRole<{ origin: string; bytes: number }>(here, 'server');
  const dir = await mkdtemp(join(tmpdir(), 'results-bench-'));
  const dispatcher = new Agent({ connections: CONCURRENCY });
  const thread = new ResultsWorker();
  try {
    const { origin, bytes } = server.ready;
    const keep = new RecentResults();
    /**
     * A download made by `download` (to disk, renamed into place), then the upload as the Slack
     * deliverer makes it (upload.ts uploadImages): by `uploader` reading the file, else here from
     * the kept bytes.
     */
    const botWay = (download: DownloadResultFn, uploader?: FileUploader) => async (i: number) => {
      const image = await download(`${origin}/image.png`, join(dir, `job${i % 64}`, 'result-0.png'), uploader ? {} : { keep });
      const content = resultContent(uploader ? undefined : keep, image);
      await postToUploadUrl({ uploadUrl: `${origin}/upload`, path: image.path, ...content, filename: 'a.png', mime: image.mime, token: 'xoxb-bench', apiUrl: `${origin}/api/`, uploader, dispatcher });
    };
    const onThread: DownloadResultFn = (url, path, o) => thread.download(url, path, o);
    const ways = {
      /** Both on the results thread (results-worker.ts), as the bot does. */
      thread: botWay(onThread, (upload) => thread.upload(upload)),
      /** The download there, the upload here from the bytes it kept (the release before). */
      kept: botWay(onThread),
      /** Both on the main thread (downloadResult itself, the upload of the kept bytes). */
      main: botWay((url, path, o) => downloadResult(url, path, { ...o, dispatcher })),
      /** The floor: in memory only. */
      memory: async () => {
        const body = Buffer.from(await (await request(`${origin}/image.png`, { dispatcher })).body.arrayBuffer());
        const res = await request(`${origin}/upload`, { method: 'POST', headers: { 'content-type': 'image/png' }, body, dispatcher });
        await res.body.text();
      },
    };
    for (const way of Object.values(ways)) await cpuOf(jobs / 10, CONCURRENCY, way); // warm-up: JIT, connections, the thread
    const rssBefore = await procStatusBytes(process.pid, 'VmRSS');
    const cost = await alternateRounds(
      {
        thread: () => cpuOf(jobs, CONCURRENCY, ways.thread),
        kept: () => cpuOf(jobs, CONCURRENCY, ways.kept),
        main: () => cpuOf(jobs, CONCURRENCY, ways.main),
        memory: () => cpuOf(jobs, CONCURRENCY, ways.memory),
      },
      ROUNDS,
    );
    await sleep(RSS_SETTLE_MS);
    const rssAfter = await procStatusBytes(process.pid, 'VmRSS');
    const per = (rounds: { all: number; main: number }[], of: 'all' | 'main') => (median(rounds.map((r) => r[of])) / jobs).toFixed(3);
    const row = (label: string, rounds: { all: number; main: number }[]) => `| ${label} | ${per(rounds, 'all')} ms | ${per(rounds, 'main')} ms |`;
    const ratio = (a: { all: number; main: number }[], b: { all: number; main: number }[], of: 'all' | 'main') => (Number(per(a, of)) / Number(per(b, of))).toFixed(2);
    return [
      `### A result's way through the bot (${jobs} results of ${(bytes / 1024).toFixed(0)} KiB, ${CONCURRENCY} at once; medians of ${ROUNDS} alternating rounds)`,
      '',
      '| way | CPU per result, every thread | main thread only |',
      '|---|---:|---:|',
      row('the bot: downloadResult and postToUploadUrl on the results thread, which reads the file back', cost.thread),
      row('downloadResult there, postToUploadUrl here of the bytes it kept (the release before)', cost.kept),
      row('both on the main thread, the kept bytes uploaded', cost.main),
      row('the floor: in memory only, on the main thread', cost.memory),
      '',
      `Main-thread CPU, the bot / the release before: **${ratio(cost.thread, cost.kept, 'main')}×**; / both on the main thread: ${ratio(cost.thread, cost.main, 'main')}×. ` +
        `Every thread, the bot / the release before: ${ratio(cost.thread, cost.kept, 'all')}×; / both on the main thread: ${ratio(cost.thread, cost.main, 'all')}×. ` +
        `The bot / the floor, every thread: ${ratio(cost.thread, cost.memory, 'all')}× (what keeping the result on disk costs).`,
      '',
      `RSS of the process: ${formatMiB(rssBefore)} after the warm-up, ${formatMiB(rssAfter)} after the ${ROUNDS * Object.keys(ways).length * jobs} results of the rounds and ${RSS_SETTLE_MS / 1000} s of quiet.`,
    ].join('\n');
  } finally {
    await thread.close();
    await dispatcher.close();
    await rm(dir, { recursive: true, force: true });
    await stopChild(server.child);
  }
}

if (process.argv[1] === here) {
  if (process.argv.includes('--role=server')) await serverChild();
  else process.stdout.write(`${await runResultsBench(numberFlag('jobs'))}\n`);
}
