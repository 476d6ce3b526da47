/**
 * `npm run bench -- results` (issue 13): CPU of a job's result on its way through the bot:
 * downloaded to disk (`downloadResult`: a temp file renamed into place, so a restart loses
 * nothing) and POSTed to Slack's upload URL (`postToUploadUrl`) from the bytes the download kept
 * (recent-results.ts) as the Slack deliverer does, against the floor's way (the body read into
 * memory, the same bytes POSTed from memory), side by side in one run.
 * The image is the fake RunBlob's 1K output (a PNG of about half a megabyte); the server that
 * serves it and takes the uploads runs in a child process, so its work is billed to neither. CPU
 * is this process's, every thread (process.cpuUsage: the file system's work runs in libuv's pool);
 * rounds alternate so machine drift hits both.
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
import { downloadResult } from '../src/engine/results.ts';
import { postToUploadUrl } from '../src/platforms/slack/upload.ts';
import { alternateRounds, cpuMsOf, forkRole, median, roundsRow, stopChild } from './processes.ts';

export const RESULTS_BENCH_JOBS = 300;
/** Results in flight at once. */
const CONCURRENCY = 16;
const ROUNDS = 6;
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
  try {
    const { origin, bytes } = server.ready;
    const keep = new RecentResults();
    const ways = {
      /** The bot: to disk, renamed into place, the bytes handed to the upload (or the file read back). */
      disk: async (i: number) => {
        const image = await downloadResult(`${origin}/image.png`, join(dir, `job${i % 64}`, 'result-0.png'), { dispatcher, keep });
        // As the Slack deliverer does (upload.ts uploadImages).
        const content = await resultContent(keep, image.path);
        await postToUploadUrl({ uploadUrl: `${origin}/upload`, path: image.path, ...content, filename: 'a.png', mime: image.mime, token: 'xoxb-bench', apiUrl: `${origin}/api/`, dispatcher });
      },
      /** The floor: in memory only. */
      memory: async () => {
        const body = Buffer.from(await (await request(`${origin}/image.png`, { dispatcher })).body.arrayBuffer());
        const res = await request(`${origin}/upload`, { method: 'POST', headers: { 'content-type': 'image/png' }, body, dispatcher });
        await res.body.text();
      },
    };
    await cpuMsOf(jobs / 10, CONCURRENCY, ways.disk); // warm-up: JIT, connections
    await cpuMsOf(jobs / 10, CONCURRENCY, ways.memory);
    const cost = await alternateRounds({ disk: () => cpuMsOf(jobs, CONCURRENCY, ways.disk), memory: () => cpuMsOf(jobs, CONCURRENCY, ways.memory) }, ROUNDS);
    return [
      `### A result's way through the bot (${jobs} results of ${(bytes / 1024).toFixed(0)} KiB, ${CONCURRENCY} at once)`,
      '',
      '| way | CPU per result (median of rounds) | rounds |',
      '|---|---:|---|',
      roundsRow('the bot: downloadResult to disk, postToUploadUrl of the kept bytes', cost.disk, jobs),
      roundsRow('the floor: in memory only', cost.memory, jobs),
      '',
      `Ratio bot / floor: **${(median(cost.disk) / median(cost.memory)).toFixed(2)}×** (what keeping the result on disk costs).`,
    ].join('\n');
  } finally {
    await dispatcher.close();
    await rm(dir, { recursive: true, force: true });
    await stopChild(server.child);
  }
}

if (process.argv[1] === here) {
  if (process.argv.includes('--role=server')) await serverChild();
  else {
    const jobs = process.argv.find((a) => a.startsWith('--jobs='))?.slice('--jobs='.length);
    process.stdout.write(`${await runResultsBench(jobs ? Number(jobs) : undefined)}\n`);
  }
}
