/**
 * Acknowledgements before work. Under a burst of interactions, the work that follows each
 * defer (parsing, quota, store writes, provider calls) would otherwise run between the gateway
 * events still waiting to be acknowledged and push their acks back. Work waits until no
 * acknowledgement is in flight — bounded by `maxWaitMs`, so a steady stream of interactions
 * delays it by at most that much — and first lets pending I/O (more gateway events) run.
 */
export const ACK_PRIORITY_MAX_WAIT_MS = 250;

export class AckFirst {
  readonly maxWaitMs: number;
  #acksInFlight = 0;
  #idleWaiters: (() => void)[] = [];

  constructor(maxWaitMs = ACK_PRIORITY_MAX_WAIT_MS) {
    this.maxWaitMs = maxWaitMs;
  }

  /** Wraps the first response of an interaction. */
  async ack<T>(send: () => Promise<T>): Promise<T> {
    this.#acksInFlight += 1;
    try {
      return await send();
    } finally {
      this.#acksInFlight -= 1;
      if (this.#acksInFlight === 0) for (const wake of this.#idleWaiters.splice(0)) wake();
    }
  }

  /** Resolves once no acknowledgement is in flight (or after `maxWaitMs`), after pending I/O has run. */
  async turn(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.#acksInFlight === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, this.maxWaitMs);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#idleWaiters.push(done);
    });
  }
}
