import { describe, expect, it } from 'vitest';
import { AckFirst, TURN_BUDGET_MS } from '../../../src/platforms/ack-first.ts';

const immediate = () => new Promise<void>((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('AckFirst', () => {
  it('never lets work run in the turn it asked (pending I/O goes first)', async () => {
    const gate = new AckFirst(1_000);
    let ran = false;
    void gate.turn().then(() => (ran = true));
    await Promise.resolve();
    await Promise.resolve();
    expect(ran).toBe(false);
    await immediate();
    await immediate();
    expect(ran).toBe(true);
  });

  it('holds work while an acknowledgement is in flight and lets it go when the ack is done', async () => {
    const gate = new AckFirst(10_000);
    let finishAck!: () => void;
    const ack = gate.ack(() => new Promise<void>((resolve) => (finishAck = resolve)));
    expect(gate.acksInFlight).toBe(1);
    let ran = false;
    void gate.turn().then(() => (ran = true));
    await sleep(30);
    expect(ran).toBe(false);
    expect(gate.waiting).toBe(1);
    finishAck();
    await ack;
    await immediate();
    await immediate();
    expect(ran).toBe(true);
    expect(gate.waiting).toBe(0);
  });

  it('holds work at most maxWaitMs under a steady stream of acknowledgements', async () => {
    const gate = new AckFirst(60);
    let streaming = true;
    // One ack always in flight until the work has had its turn.
    const pump = (async () => {
      while (streaming) await gate.ack(() => sleep(5));
    })();
    const started = performance.now();
    await gate.turn();
    const waited = performance.now() - started;
    streaming = false;
    await pump;
    expect(waited).toBeGreaterThanOrEqual(55);
    expect(waited).toBeLessThan(250);
  });

  it('lets waiting work go oldest first, one piece in the first turn, one more each turn that stayed short', async () => {
    let clock = 0;
    const gate = new AckFirst(1_000, () => clock, { quietMs: 0 });
    const order: number[] = [];
    for (let n = 1; n <= 20; n++) void gate.turn().then(() => order.push(n));
    const released: number[] = [];
    for (let turn = 0; turn < 3; turn++) {
      await immediate();
      released.push(order.length);
    }
    expect(released).toEqual([1, 3, 6]); // 1, then 2, then 3 pieces: each turn took 0 ms
    clock += TURN_BUDGET_MS + 1; // the last turn went over the budget: the next batch is halved (3 → 1)
    await immediate();
    expect(order.length).toBe(7);
    await immediate();
    expect(order.length).toBe(9); // a short turn again: one more (2)
    for (let i = 0; i < 5; i++) await immediate();
    expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('starts again from one piece after a pause', async () => {
    const gate = new AckFirst(10_000, () => 0, { quietMs: 0 });
    const order: number[] = [];
    for (let n = 1; n <= 3; n++) void gate.turn().then(() => order.push(n));
    for (let i = 0; i < 3; i++) await immediate();
    expect(order).toEqual([1, 2, 3]);
    await immediate(); // a turn with nothing waiting
    for (let n = 4; n <= 10; n++) void gate.turn().then(() => order.push(n));
    await immediate();
    expect(order).toEqual([1, 2, 3, 4]);
  });

  it('a failed acknowledgement still releases the work behind it', async () => {
    const gate = new AckFirst(10_000, undefined, { quietMs: 0 });
    const failed = gate.ack(() => Promise.reject(new Error('Unknown interaction')));
    let ran = false;
    void gate.turn().then(() => (ran = true));
    await expect(failed).rejects.toThrow('Unknown interaction');
    for (let i = 0; i < 3; i++) await immediate();
    expect(ran).toBe(true);
  });

  it('holds work until no acknowledgement has begun for quietMs, even between two acks', async () => {
    const gate = new AckFirst(10_000, undefined, { quietMs: 40 });
    gate.begin()(); // an ack began and ended at once: none in flight, but more may be coming
    expect(gate.acksInFlight).toBe(0);
    let ranAt = 0;
    const asked = performance.now();
    const work = gate.turn().then(() => (ranAt = performance.now()));
    await sleep(20);
    gate.begin()(); // another one: the quiet period starts again
    await work;
    expect(ranAt - asked).toBeGreaterThanOrEqual(55);
    expect(ranAt - asked).toBeLessThan(1_000);
  });

  it('begin() counts an acknowledgement until its end is called, once', async () => {
    const gate = new AckFirst(10_000, undefined, { quietMs: 0 });
    const end = gate.begin();
    expect(gate.acksInFlight).toBe(1);
    let ran = false;
    void gate.turn().then(() => (ran = true));
    await sleep(20);
    expect(ran).toBe(false);
    end();
    end();
    expect(gate.acksInFlight).toBe(0);
    for (let i = 0; i < 3; i++) await immediate();
    expect(ran).toBe(true);
  });
});

