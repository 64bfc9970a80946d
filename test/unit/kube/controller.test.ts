import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { FakeClock } from '../../../src/kube/clock.js';
import {
  Controller,
  isTerminal,
  TerminalError,
  type ReconcileContext,
  type ReconcileResult,
} from '../../../src/kube/controller.js';
import { createLogger } from '../../../src/obs/logger.js';
import { registry } from '../../../src/obs/metrics.js';

let controllers = 0;

/** A controller whose reconciler answers from `behaviour`, recording every call. */
function setup(behaviour: (key: string, call: number) => ReconcileResult | void | Error, workers = 1) {
  const clock = new FakeClock();
  const logs = new PassThrough();
  const lines: Record<string, unknown>[] = [];
  logs.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
  });
  const calls: { key: string; ctx: ReconcileContext; at: number }[] = [];
  const name = `ctrl-test-${controllers++}`;
  const controller = new Controller({
    name,
    kind: 'Thing',
    workers,
    clock,
    log: createLogger({ level: 'debug', stream: logs }),
    reconciler: {
      async reconcile(key, ctx) {
        calls.push({ key, ctx, at: clock.now() });
        const out = behaviour(key, calls.filter((c) => c.key === key).length);
        if (out instanceof Error) throw out;
        return out;
      },
    },
  });
  return { controller, calls, clock, lines, name };
}

/** Lets workers run until nothing more happens without the clock moving. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

async function metric(text: string): Promise<number> {
  const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(text + ' '));
  assert.ok(line, `no sample ${text}`);
  return Number(line.split(' ')[1]);
}

describe('Controller', () => {
  it('reconciles a queued key once and forgets it on success', async () => {
    const { controller, calls, name } = setup(() => undefined);
    controller.enqueue('ns/a');
    controller.enqueue('ns/a');
    controller.start();
    await settle();
    assert.deepEqual(
      calls.map((c) => c.key),
      ['ns/a'],
    );
    assert.equal(controller.queue.numRequeues('ns/a'), 0);
    assert.equal(
      await metric(`controller_runtime_reconcile_total{controller="${name}",result="success"}`),
      1,
    );
    await controller.stop();
  });

  it('retries a failing key with growing backoff, then forgets it after success', async () => {
    const { controller, calls, clock, name } = setup((_k, n) =>
      n <= 3 ? new Error(`fail ${n}`) : undefined,
    );
    controller.enqueue('a');
    controller.start();
    await settle();
    for (let i = 0; i < 10; i++) {
      clock.advance(5);
      await settle();
    }
    const gaps = calls.slice(1).map((c, i) => c.at - calls[i]!.at);
    assert.equal(calls.length, 4);
    assert.deepEqual(gaps, [5, 10, 20]);
    assert.equal(controller.queue.numRequeues('a'), 0, 'success forgets the failures');
    assert.equal(await metric(`controller_runtime_reconcile_errors_total{controller="${name}"}`), 3);
    assert.equal(await metric(`controller_runtime_reconcile_total{controller="${name}",result="error"}`), 3);
    assert.equal(await metric(`workqueue_retries_total{name="${name}"}`), 3);
    await controller.stop();
  });

  it('does not retry a TerminalError (nor an error caused by one)', async () => {
    const { controller, calls, clock, name, lines } = setup((key) =>
      key === 'direct'
        ? new TerminalError('bad spec')
        : new Error('wrapped', { cause: new TerminalError('bad') }),
    );
    controller.enqueue('direct');
    controller.enqueue('wrapped');
    controller.start();
    await settle();
    clock.advance(60_000);
    await settle();
    assert.equal(calls.length, 2);
    assert.equal(await metric(`controller_runtime_terminal_reconcile_errors_total{controller="${name}"}`), 2);
    assert.equal(await metric(`controller_runtime_reconcile_errors_total{controller="${name}"}`), 2);
    const logged = lines.find((l) => l.msg === 'Reconciler error');
    assert.equal(logged?.terminal, true);
    assert.equal(logged?.err, 'bad spec');
    await controller.stop();
  });

  it('requeues after requeueAfter without counting a failure', async () => {
    const { controller, calls, clock, name } = setup((_k, n) =>
      n === 1 ? { requeueAfter: 30_000 } : undefined,
    );
    controller.enqueue('a');
    controller.start();
    await settle();
    clock.advance(29_999);
    await settle();
    assert.equal(calls.length, 1);
    clock.advance(1);
    await settle();
    assert.equal(calls.length, 2);
    assert.equal(controller.queue.numRequeues('a'), 0);
    assert.equal(
      await metric(`controller_runtime_reconcile_total{controller="${name}",result="requeue_after"}`),
      1,
    );
    await controller.stop();
  });

  it('gives each reconcile a child logger with controller, kind, namespace, name, reconcileID', async () => {
    const { controller, calls, lines } = setup(() => undefined);
    controller.enqueue('ns/a');
    controller.enqueue('host-1');
    controller.start();
    await settle();
    for (const c of calls) c.ctx.log.info('Hello');
    const hellos = lines.filter((l) => l.msg === 'Hello');
    assert.equal(hellos.length, 2);
    assert.deepEqual(
      { ...hellos[0], ts: undefined, reconcileID: undefined },
      {
        ts: undefined,
        level: 'info',
        msg: 'Hello',
        controller: controller.name,
        kind: 'Thing',
        namespace: 'ns',
        name: 'a',
        reconcileID: undefined,
      },
    );
    assert.equal(hellos[1]!.namespace, undefined);
    assert.equal(hellos[1]!.name, 'host-1');
    assert.notEqual(calls[0]!.ctx.reconcileID, calls[1]!.ctx.reconcileID);
    await controller.stop();
  });

  it('runs different keys concurrently up to the worker count, never one key twice', async () => {
    let active = 0;
    let peak = 0;
    const inFlight = new Set<string>();
    const release: (() => void)[] = [];
    const clock = new FakeClock();
    const controller = new Controller({
      name: `ctrl-test-${controllers++}`,
      kind: 'Thing',
      workers: 3,
      clock,
      log: createLogger({ stream: new PassThrough() }),
      reconciler: {
        async reconcile(key) {
          assert.ok(!inFlight.has(key), `${key} reconciled twice at once`);
          inFlight.add(key);
          peak = Math.max(peak, ++active);
          await new Promise<void>((r) => release.push(r));
          active--;
          inFlight.delete(key);
        },
      },
    });
    for (const k of ['a', 'b', 'c', 'd']) controller.enqueue(k);
    controller.start();
    await settle();
    assert.equal(active, 3);
    controller.enqueue('a'); // while a is in flight
    while (release.length > 0) {
      release.shift()!();
      await settle();
    }
    assert.equal(peak, 3);
    await controller.stop();
  });

  it('stop() lets the in-flight reconcile finish and takes no more keys', async () => {
    let finish!: () => void;
    const started: string[] = [];
    const controller = new Controller({
      name: `ctrl-test-${controllers++}`,
      kind: 'Thing',
      log: createLogger({ stream: new PassThrough() }),
      reconciler: {
        async reconcile(key, ctx) {
          started.push(key);
          await new Promise<void>((r) => (finish = r));
          assert.equal(ctx.signal.aborted, false);
        },
      },
    });
    controller.enqueue('a');
    controller.enqueue('b');
    controller.start();
    await settle();
    let stopped = false;
    const stopping = controller.stop().then(() => (stopped = true));
    await settle();
    assert.equal(stopped, false);
    finish();
    await stopping;
    assert.deepEqual(started, ['a']);
  });

  it('abort() signals in-flight reconciles', async () => {
    let seen: AbortSignal | undefined;
    const controller = new Controller({
      name: `ctrl-test-${controllers++}`,
      kind: 'Thing',
      log: createLogger({ stream: new PassThrough() }),
      reconciler: {
        reconcile: (_key, ctx) =>
          new Promise((resolve) => {
            seen = ctx.signal;
            ctx.signal.addEventListener('abort', () => resolve());
          }),
      },
    });
    controller.enqueue('a');
    controller.start();
    await settle();
    const stopping = controller.stop();
    controller.abort('shutdown grace period exceeded');
    await stopping;
    assert.equal(seen?.aborted, true);
  });

  it('registers its metrics at zero with the worker count', async () => {
    const { name } = setup(() => undefined, 4);
    for (const result of ['success', 'error', 'requeue', 'requeue_after']) {
      assert.equal(
        await metric(`controller_runtime_reconcile_total{controller="${name}",result="${result}"}`),
        0,
      );
    }
    assert.equal(await metric(`controller_runtime_max_concurrent_reconciles{controller="${name}"}`), 4);
    assert.equal(await metric(`controller_runtime_active_workers{controller="${name}"}`), 0);
    assert.equal(await metric(`workqueue_depth{name="${name}"}`), 0);
  });

  it('isTerminal follows the cause chain', () => {
    assert.equal(isTerminal(new TerminalError('x')), true);
    assert.equal(
      isTerminal(new Error('x', { cause: new Error('y', { cause: new TerminalError('z') }) })),
      true,
    );
    assert.equal(isTerminal(new Error('x')), false);
    assert.equal(isTerminal('x'), false);
  });
});
