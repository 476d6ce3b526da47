/**
 * The fault suite's bot processes (bot-worker.ts) seen from the test: spawn, send commands, wait
 * for events, kill; plus the checks every scenario ends with (each job delivered exactly once,
 * created once at the provider, charged once to its user).
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { openStore } from '../../src/engine/open-store.ts';
import { Quotas } from '../../src/engine/quota.ts';
import { createLogger } from '../../src/log.ts';
import type { FakeRunbase } from '../fakes/runbase.ts';
import { spawnLineWorker, type LineWorker } from '../support/index.ts';

export interface BotEvent {
  event: 'ready' | 'submitted' | 'refused' | 'running' | 'created' | 'delivered' | 'closed';
  at: number;
  processId: string;
  jobId?: string;
  state?: string;
  user?: string;
  code?: string;
  /** delivered: the job's (or a task's) error code and detail; refused: the error's text. */
  error?: string;
  message?: string;
}

export interface BotsOptions {
  fakeUrl: string;
  fakeKey: string;
  storeUrl: string;
  keyPrefix: string;
  workDir: string;
}

/** Every bot's events, in arrival order. */
export class Bots {
  readonly events: BotEvent[] = [];
  readonly workers = new Map<string, LineWorker>();
  readonly #waiters = new Set<() => void>();

  readonly o: BotsOptions;

  constructor(o: BotsOptions) {
    this.o = o;
  }

  async spawn(processId: string): Promise<LineWorker> {
    const w = spawnLineWorker('test/faults/bot-worker.ts', [this.o.fakeUrl, this.o.fakeKey, this.o.storeUrl, this.o.keyPrefix, processId, this.o.workDir]);
    this.workers.set(processId, w);
    void (async () => {
      for (;;) {
        let line: string;
        try {
          line = await w.nextLine();
        } catch {
          return; // exited
        }
        this.events.push(JSON.parse(line) as BotEvent);
        for (const wake of this.#waiters) wake();
      }
    })();
    await this.until(() => this.of('ready', processId).length > 0, 20_000, `${processId} ready`);
    return w;
  }

  submit(processId: string, n: number, userPrefix: string): void {
    this.workers.get(processId)!.child.stdin.write(`submit ${n} ${userPrefix}\n`);
  }

  of(event: BotEvent['event'], processId?: string): BotEvent[] {
    return this.events.filter((e) => e.event === event && (processId === undefined || e.processId === processId));
  }

  until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      // On every event, and every 20 ms for conditions on other things (the fake provider).
      const poll = setInterval(() => check(), 20);
      const check = () => {
        if (!cond()) return;
        clearTimeout(timer);
        clearInterval(poll);
        this.#waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        clearInterval(poll);
        this.#waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; events: ${this.events.length}`));
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  /** Kills what still runs; with FAULT_LOGS_DIR set, keeps each process's stderr there (run with DEBUG_LOGS=1 for its log). */
  async stopAll(): Promise<void> {
    for (const [processId, w] of this.workers) {
      if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
      await w.exited;
      if (process.env.FAULT_LOGS_DIR) await writeFile(join(process.env.FAULT_LOGS_DIR, `${this.o.keyPrefix.replace(/\W+/g, '-')}${processId}.log`), w.stderr());
    }
  }
}

export const uniquePrefix = (name: string): string => `faults-${name}-${randomUUID().slice(0, 8)}:`;

/** Seconds with one decimal, for the report lines. */
export const secs = (ms: number): string => (ms / 1000).toFixed(1);

/**
 * Each of `jobIds` delivered exactly once (whatever process delivered it) as `state`, its task
 * created once at the provider, and its user (one per job) charged once: 1 unit at 1K.
 */
export async function expectEachOnce(bots: Bots, fake: FakeRunbase, jobIds: string[], o: { storeUrl: string; keyPrefix: string; state?: string }): Promise<void> {
  const delivered = bots.of('delivered');
  for (const id of jobIds) expect(delivered.filter((e) => e.jobId === id), id).toHaveLength(1);
  expect(new Set(delivered.map((e) => e.jobId))).toEqual(new Set(jobIds));
  expect(delivered.filter((e) => e.state !== (o.state ?? 'succeeded'))).toEqual([]);
  expect(fake.runs.size).toBe(jobIds.length);
  const store = await openStore(o.storeUrl, { log: createLogger({ level: 'silent' }), keyPrefix: o.keyPrefix });
  try {
    const quotas = new Quotas(store, { dailyUnits: 5, costs: { '1K': 1, '2K': 2, '4K': 4 }, exemptUsers: [], spendCapUsd: undefined });
    const users = bots.of('submitted').map((e) => e.user!);
    expect(users).toHaveLength(jobIds.length);
    const used = await Promise.all(users.map(async (u) => (await quotas.view({ platform: 'discord', userId: u })).used));
    expect(used).toEqual(users.map(() => o.state === 'failed' ? 0 : 1));
  } finally {
    await store.close();
  }
}
