/**
 * `npm run bench`: every benchmark, each comparing our code side by side with a baseline in the
 * same run (ratios, not absolute times, are what carry over between machines).
 *   - poll:    poll scheduler vs fixed 2 s polling against a simulated Runbase key (issue 2)
 *   - discord: ack latency of /imagine through the real discord.js vs a bare deferring client, in
 *              bursts and sustained at 50/s (issues 3, 13)
 *   - slack:   ack latency of signed slash commands through Bolt vs a bare acking app (issue 4)
 *   - jobs:    end-to-end jobs/s on 1 process (SQLite) and 3 (Redis) vs a REST-calls-only floor,
 *              main-thread CPU and event-loop delay per job, RSS per in-flight job (issues 12, 13)
 *   - peak:    peak RSS of the Discord bot while four 4K results over the attachment limit are
 *              fetched, fitted (re-encoded with sharp) and posted at once, above idle (issue 13)
 *   - leases:  main-thread CPU to keep 1,000 in-flight jobs leased: per job vs one batch (issue 13)
 *   - records: CPU to write and read job records in SQLite: rowid table vs WITHOUT ROWID, and a commit per write vs group commit (issue 13)
 *   - webapi:  CPU of a job's Slack Web API calls: WebClient on the global fetch vs on undici's request (issue 13)
 *   - discordrest: CPU of a job's Discord calls: @discordjs/rest on its own transport vs the bot's (rest-request.ts) (issue 13)
 *   - results: CPU of a result's download to disk and upload to Slack, against in memory only (issue 13)
 *   - log:     CPU per log line and per child logger of the bot's logger vs plain pino (issue 13)
 * `npm run bench -- poll` runs just one part.
 */
import { runPollBench } from './poll.ts';
import { runDiscordBench, runDiscordSustainedBench } from './discord.ts';
import { runSlackBench } from './slack.ts';
import { runJobsBench } from './jobs.ts';
import { runPeakBench } from './peak.ts';
import { runLeasesBench } from './leases.ts';
import { runRecordsBench } from './records.ts';
import { runWebApiBench } from './webapi.ts';
import { runDiscordRestBench } from './discordrest.ts';
import { runResultsBench } from './results-io.ts';
import { runLogBench } from './log.ts';

const parts: Record<string, () => Promise<string>> = {
  poll: () => runPollBench(),
  discord: async () => `${await runDiscordBench()}\n\n${await runDiscordSustainedBench()}`,
  slack: () => runSlackBench(),
  jobs: () => runJobsBench(),
  peak: () => runPeakBench(),
  leases: () => runLeasesBench(),
  records: () => runRecordsBench(),
  webapi: () => runWebApiBench(),
  discordrest: () => runDiscordRestBench(),
  results: () => runResultsBench(),
  log: () => runLogBench(),
};

const wanted = process.argv.slice(2);
for (const name of wanted.length ? wanted : Object.keys(parts)) {
  const run = parts[name];
  if (!run) {
    console.error(`Unknown bench "${name}". Choose from: ${Object.keys(parts).join(', ')}`);
    process.exit(2);
  }
  console.log(`\n## ${name}\n`);
  console.log(await run());
}
