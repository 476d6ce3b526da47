/**
 * What the benches that run in several processes share: a bench file forks itself once per role
 * (`--role=NAME`, the parent's info in an environment variable), asks its children questions over
 * IPC, stops them, and reads percentiles off the latencies they report.
 */
import { fork, type ChildProcess } from 'node:child_process';

/** Forks `script --role=<role>` and resolves with the child's first `{ ready }` message. */
export function forkRole<Ready>(script: string, role: string, env: Record<string, string> = {}): Promise<{ child: ChildProcess; ready: Ready }> {
  const child = fork(script, [`--role=${role}`], {
    execPath: process.execPath,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`bench ${role} process exited with ${code}`)));
    child.on('message', (m: { ready?: Ready }) => {
      if (m.ready !== undefined) resolve({ child, ready: m.ready });
    });
  });
}

/** Asks a child to close (`{ close: true }`); kills it if it has not exited within 10 s. */
export function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.removeAllListeners('exit');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.send({ close: true });
  });
}

/**
 * Sends `message` and resolves with the child's first answer carrying `answerKey` (the bench's
 * own IPC protocol: the caller names the answer's type).
 */
export function ask<T>(child: ChildProcess, message: object, answerKey: string): Promise<T> {
  return new Promise((resolve) => {
    const onMessage = (m: unknown) => {
      if (typeof m !== 'object' || m === null || !(answerKey in m)) return;
      child.off('message', onMessage);
      resolve(m as T);
    };
    child.on('message', onMessage);
    child.send(message);
  });
}

/** The p-th percentile (nearest rank) of ascending `sorted`; NaN when empty. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}
