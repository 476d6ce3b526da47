/**
 * `npm run bench -- discordrest` (issue 13): CPU of the Discord calls a one-image job makes (the
 * interaction callback that defers, the placeholder's edit, the result's edit with its image),
 * with the bot's own messages, three ways side by side in one run:
 * - @discordjs/rest on its own transport (undici 6's `request`, the files as a FormData): the
 *   bot until 2026-12-08;
 * - the bot now: @discordjs/rest on `discordRequest` (src/platforms/discord/rest-request.ts),
 *   the files as a multipart body of its own (DiscordMessages, messages.ts), the callback sent
 *   past @discordjs/rest's queue (`sendCallbacksDirectly`, since later on 2026-12-08);
 * - no client: undici's `request` with the same bodies, no rate limits, no retries (the floor).
 * Twice: with the fake RunBlob's 1K PNG (560 KiB), and with a file of 8 MiB (a 4K result fitted
 * under Discord's 10 MiB, src/platforms/discord/fit-upload.ts). The answering server runs in a
 * child process, so its work is billed to none; it answers as Discord does (the message's JSON
 * and its rate-limit headers; 204 for the callback). CPU of this process's main thread (what the
 * acknowledgements share) and of every thread; rounds alternate so machine drift hits all alike.
 *
 *   node bench/discordrest.ts [--jobs=N]
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import { REST, Routes, type RESTOptions } from 'discord.js';
import { Agent, request } from 'undici';
import { discordRestOptions, sendCallbacksDirectly } from '../src/platforms/discord/rest-request.ts';
import { DiscordMessages } from '../src/platforms/discord/messages.ts';
import { NO_MENTIONS, placeholderComponentsJson, progressContent, resultBody } from '../src/platforms/discord/render.ts';
import type { UploadFile } from '../src/platforms/discord/fit-upload.ts';
import { queuedEvent } from '../src/platforms/slack/blocks.ts';
import { MODEL_CATALOG } from '../src/engine/models.ts';
import { MiB } from '../src/util/units.ts';
import { multipartBody } from '../src/util/multipart.ts';
import { makeJob } from '../test/unit/platforms/slack/fixtures.ts';
import { alternateRounds, cpuOf, forkRole, median, numberFlag, stopChild } from './processes.ts';

export const DISCORD_REST_BENCH_JOBS = 600;
/** Calls in flight at once (the bot has hundreds of jobs running). */
const CONCURRENCY = 50;
const ROUNDS = 6;
/** The two result sizes, and the share of the jobs each is measured with (8 MiB files take longer to send). */
const SIZES = [
  { label: '560 KiB (a 1K PNG)', bytes: 560 * 1024, share: 1 },
  { label: '8 MiB (a fitted 4K result)', bytes: 8 * MiB, share: 1 / 6 },
];
const APPLICATION_ID = '300000000000000001';
const here = fileURLToPath(import.meta.url);

async function answeringChild(): Promise<void> {
  const { createServer } = await import('node:http');
  const message = JSON.stringify({ id: '200000000000000001', channel_id: '100000000000000001', content: '', attachments: [] });
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url!.split('?')[0]!.endsWith('/callback')) return void res.writeHead(204).end();
      res.writeHead(200, { 'content-type': 'application/json', 'x-ratelimit-limit': '5', 'x-ratelimit-remaining': '4', 'x-ratelimit-reset-after': '1', 'x-ratelimit-bucket': 'bench' });
      res.end(message);
    });
  });
  server.listen(0, '127.0.0.1', () => process.send!({ ready: { api: `http://127.0.0.1:${(server.address() as { port: number }).port}/api` } }));
  process.on('message', (m: { close?: boolean }) => {
    if (m.close) server.close(() => process.exit(0));
  });
}

/** @discordjs/rest on its own transport, as the bot built it before: an agent of the undici it bundles (undici 8's refuses its FormData). */
function bundledUndiciAgent(): NonNullable<RESTOptions['agent']> {
  const undici = createRequire(import.meta.resolve('@discordjs/rest'))('undici') as { Agent: new (o: object) => NonNullable<RESTOptions['agent']> };
  return new undici.Agent({ connect: { timeout: 30_000 } });
}

interface JobBodies {
  placeholder: object;
  result: object;
  file: UploadFile;
}

function bodiesFor(i: number, data: Buffer): JobBodies {
  const job = makeJob({ id: `job${String(i).padStart(10, '0')}`, request: { count: 1, prompt: `a lighthouse on a cliff at dusk ${i}` } });
  const file: UploadFile = { name: `imagine-${job.id}-1.png`, data, contentType: 'image/png', reencoded: false, originalBytes: data.length };
  return {
    placeholder: { content: progressContent(job, queuedEvent(job)), components: placeholderComponentsJson(job), allowed_mentions: NO_MENTIONS },
    result: resultBody(job, [file], [], MODEL_CATALOG),
    file,
  };
}

const token = (i: number) => `aW50ZXJhY3Rpb246${String(i).padStart(12, '0')}${'x'.repeat(120)}`;
const interactionId = (i: number) => String(400000000000000000n + BigInt(i));
/** What discord.js's deferReply adds to the callback's URL (InteractionResponses.js). */
const DEFER_QUERY = new URLSearchParams({ with_response: 'false' });

export async function runDiscordRestBench(jobs = DISCORD_REST_BENCH_JOBS): Promise<string> {
  const child = await forkRole<{ api: string }>(here, 'answer');
  const clients: REST[] = [];
  try {
    const { api } = child.ready;
    const rest = (options: Partial<RESTOptions>) => {
      const r = new REST({ ...options, globalRequestsPerSecond: Infinity }).setToken('bench-token');
      clients.push(r);
      return r;
    };
    const before = rest({ api, agent: bundledUndiciAgent() });
    // The client's REST as the bot builds it (discord/index.ts).
    const botRest = rest(discordRestOptions(api));
    sendCallbacksDirectly(botRest);
    const now = new DiscordMessages(botRest);
    clients.push(now.interactionRest);
    const floorAgent = new Agent();
    const floorCall = async (method: 'POST' | 'PATCH', path: string, headers: Record<string, string>, body: string | Uint8Array[]) => {
      const res = await request(`${api}/v10${path}`, { method, headers, body: typeof body === 'string' ? body : Readable.from(body), dispatcher: floorAgent });
      await res.body.arrayBuffer();
      if (res.statusCode >= 300) throw new Error(`HTTP ${res.statusCode}`);
    };

    type Way = (i: number, b: JobBodies) => Promise<void>;
    const ways: Record<'before' | 'now' | 'floor', Way> = {
      before: async (i, b) => {
        await before.post(Routes.interactionCallback(interactionId(i), token(i)), { body: { type: 5 }, auth: false, query: DEFER_QUERY });
        const original = Routes.webhookMessage(APPLICATION_ID, token(i), '@original');
        await before.patch(original, { body: b.placeholder, auth: false });
        await before.patch(original, { body: b.result, files: [{ name: b.file.name, data: b.file.data, contentType: b.file.contentType }], auth: false });
      },
      now: async (i, b) => {
        await now.rest.post(Routes.interactionCallback(interactionId(i), token(i)), { body: { type: 5 }, auth: false, query: DEFER_QUERY });
        const loc = { applicationId: APPLICATION_ID, interactionToken: token(i), interactionId: interactionId(i), tokenExpiresAt: Date.now() + 900_000, channelId: '100000000000000001', ephemeral: false, attachmentSizeLimit: 10 * MiB };
        await now.editOriginal(loc, b.placeholder);
        await now.editOriginal(loc, b.result, [b.file]);
      },
      floor: async (i, b) => {
        const json = { 'content-type': 'application/json' };
        await floorCall('POST', `${Routes.interactionCallback(interactionId(i), token(i))}?${DEFER_QUERY}`, json, JSON.stringify({ type: 5 }));
        const original = Routes.webhookMessage(APPLICATION_ID, token(i), '@original');
        await floorCall('PATCH', original, json, JSON.stringify(b.placeholder));
        const form = multipartBody([
          { name: 'payload_json', contentType: 'application/json', data: Buffer.from(JSON.stringify(b.result)) },
          { name: 'files[0]', filename: b.file.name, contentType: b.file.contentType, data: b.file.data },
        ]);
        await floorCall('PATCH', original, { 'content-type': form.contentType, 'content-length': String(form.length) }, form.pieces);
      },
    };

    const sections: string[] = [];
    let job = 0;
    for (const size of SIZES) {
      const count = Math.max(10, Math.round(jobs * size.share));
      const data = Buffer.alloc(size.bytes, 7);
      const rounds = (way: Way, n: number) => () => cpuOf(n, CONCURRENCY, (i) => way(job++ + i, bodiesFor(i, data)));
      for (const way of Object.values(ways)) await rounds(way, Math.max(10, Math.round(count / 10)))(); // warm-up: JIT, connections
      const cost = await alternateRounds({ before: rounds(ways.before, count), now: rounds(ways.now, count), floor: rounds(ways.floor, count) }, ROUNDS);
      const per = (xs: { main: number; all: number }[], k: 'main' | 'all') => median(xs.map((x) => x[k])) / count;
      const row = (label: string, xs: { main: number; all: number }[]) =>
        `| ${label} | ${per(xs, 'main').toFixed(3)} ms | ${per(xs, 'all').toFixed(3)} ms | ${xs.map((x) => (x.main / count).toFixed(3)).join(', ')} |`;
      sections.push(
        [
          `### A job's Discord calls, result of ${size.label} (${count} jobs × 3 calls, ${CONCURRENCY} at once)`,
          '',
          '| calls made by | main thread per job (median) | every thread | main thread, each round |',
          '|---|---:|---:|---|',
          row("@discordjs/rest on its own transport, files as a FormData (before)", cost.before),
          row('@discordjs/rest on discordRequest, files as multipart pieces, the callback past its queue (now)', cost.now),
          row("undici's request, no client (floor)", cost.floor),
          '',
          `Main thread, now / before: **${(per(cost.now, 'main') / per(cost.before, 'main')).toFixed(2)}×**; now / no client: ${(per(cost.now, 'main') / per(cost.floor, 'main')).toFixed(2)}×.`,
        ].join('\n'),
      );
    }
    await floorAgent.close();
    return sections.join('\n\n');
  } finally {
    for (const r of clients) {
      r.clearHashSweeper();
      r.clearHandlerSweeper();
    }
    await stopChild(child.child);
  }
}

if (process.argv[1] === here) {
  if (process.argv.includes('--role=answer')) await answeringChild();
  else process.stdout.write(`${await runDiscordRestBench(numberFlag('jobs'))}\n`);
}
