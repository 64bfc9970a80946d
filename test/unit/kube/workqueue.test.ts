import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../../../src/kube/clock.js';
import { ItemExponentialFailureRateLimiter } from '../../../src/kube/ratelimiter.js';
import { WorkQueue } from '../../../src/kube/workqueue.js';
import { registry } from '../../../src/obs/metrics.js';

let queues = 0;
function newQueue(clock = new FakeClock()): { q: WorkQueue<string>; clock: FakeClock } {
  const q = new WorkQueue<string>({
    name: `wq-test-${queues++}`,
    clock,
    rateLimiter: new ItemExponentialFailureRateLimiter<string>(5, 1000),
  });
  return { q, clock };
}

/** get() that must not block: the item is expected to be ready now. */
async function getNow(q: WorkQueue<string>): Promise<string | undefined> {
  let settled = false;
  const p = q.get().finally(() => (settled = true));
  await Promise.resolve();
  await Promise.resolve();
  assert.ok(settled, 'get() blocked');
  return p;
}

async function isBlocked(p: Promise<unknown>): Promise<boolean> {
  const marker = Symbol('pending');
  const winner = await Promise.race([p, new Promise((r) => setImmediate(() => r(marker)))]);
  return winner === marker;
}

describe('WorkQueue', () => {
  it('hands items out in FIFO order and collapses duplicates', async () => {
    const { q } = newQueue();
    for (const k of ['a', 'b', 'a', 'c', 'b']) q.add(k);
    assert.equal(q.len(), 3);
    assert.equal(await getNow(q), 'a');
    assert.equal(await getNow(q), 'b');
    assert.equal(await getNow(q), 'c');
    assert.equal(q.len(), 0);
  });

  it('never hands one key to two workers at once', async () => {
    const { q } = newQueue();
    q.add('a');
    assert.equal(await getNow(q), 'a');
    q.add('a'); // while a worker holds it
    assert.equal(q.len(), 0, 'a held key is not queued again');
    const second = q.get();
    assert.ok(await isBlocked(second), 'a second worker must wait');
    q.done('a');
    assert.equal(await second, 'a', 'the re-add is delivered after done()');
  });

  it('drops a key after done() when it was not re-added', async () => {
    const { q } = newQueue();
    q.add('a');
    await getNow(q);
    q.done('a');
    assert.equal(q.len(), 0);
    assert.ok(await isBlocked(q.get()));
    q.shutDown();
  });

  it('wakes a waiting worker when an item arrives', async () => {
    const { q } = newQueue();
    const waiting = q.get();
    assert.ok(await isBlocked(waiting));
    q.add('x');
    assert.equal(await waiting, 'x');
  });

  it('addAfter delivers items when due, earliest first', async () => {
    const { q, clock } = newQueue();
    q.addAfter('late', 300);
    q.addAfter('early', 100);
    q.addAfter('middle', 200);
    q.addAfter('now', 0);
    assert.equal(q.len(), 1);
    clock.advance(99);
    assert.equal(q.len(), 1);
    clock.advance(1);
    assert.equal(q.len(), 2);
    clock.advance(200);
    assert.deepEqual(
      [await getNow(q), await getNow(q), await getNow(q), await getNow(q)],
      ['now', 'early', 'middle', 'late'],
    );
  });

  it('addAfter keeps the earlier time when an item is already waiting', () => {
    const { q, clock } = newQueue();
    q.addAfter('a', 500);
    q.addAfter('a', 100); // sooner: wins
    q.addAfter('a', 1000); // later: ignored
    clock.advance(100);
    assert.equal(q.len(), 1);
    clock.advance(1000);
    assert.equal(q.len(), 1, 'no second delivery from the superseded timers');
    assert.equal(clock.pendingTimers(), 0);
  });

  it('addRateLimited backs off exponentially per item; forget resets', () => {
    const { q, clock } = newQueue();
    const delays: number[] = [];
    for (let i = 0; i < 10; i++) {
      const before = clock.now();
      q.addRateLimited('a');
      let waited = 0;
      while (q.len() === 0) {
        clock.advance(1);
        waited++;
      }
      delays.push(waited);
      void q.get();
      q.done('a');
      assert.equal(clock.now() - before, waited);
    }
    assert.deepEqual(delays, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
    assert.equal(q.numRequeues('a'), 10);
    q.forget('a');
    assert.equal(q.numRequeues('a'), 0);
  });

  it('shutDown releases waiting workers with undefined', async () => {
    const { q } = newQueue();
    const waiting = q.get();
    q.shutDown();
    assert.equal(await waiting, undefined);
  });

  it('after shutDown, queued items are not handed out and adds are ignored', async () => {
    const { q } = newQueue();
    q.add('a');
    q.shutDown();
    assert.equal(q.shuttingDown(), true);
    assert.equal(await q.get(), undefined);
    q.add('b');
    q.addAfter('c', 10);
    assert.equal(q.len(), 1);
  });

  it('shutDownWithDrain waits for in-flight items only', async () => {
    const { q } = newQueue();
    q.add('a');
    q.add('b');
    assert.equal(await getNow(q), 'a');
    q.add('a'); // dirty while processing: must not block the drain
    let drained = false;
    const drain = q.shutDownWithDrain().then(() => (drained = true));
    assert.ok(await isBlocked(drain));
    assert.equal(drained, false);
    assert.equal(await q.get(), undefined, 'no new work once draining');
    q.done('a');
    await drain;
    assert.equal(drained, true);
  });

  it('shutDownWithDrain resolves at once when nothing is in flight', async () => {
    const { q } = newQueue();
    q.add('a');
    await q.shutDownWithDrain();
  });

  it('cancels its delay timer on shutdown', () => {
    const { q, clock } = newQueue();
    q.addAfter('a', 1000);
    assert.equal(clock.pendingTimers(), 1);
    q.shutDown();
    assert.equal(clock.pendingTimers(), 0);
  });

  it('reports workqueue_* metrics for its name', async () => {
    const { q, clock } = newQueue();
    q.add('a');
    q.add('b');
    q.add('a');
    clock.advance(250);
    await getNow(q);
    clock.advance(500);
    q.addRateLimited('z');
    const text = await registry.metrics();
    const label = `name="${q.name}"`;
    assert.match(text, new RegExp(`workqueue_adds_total\\{${label}\\} 2`));
    assert.match(text, new RegExp(`workqueue_depth\\{${label}\\} 1`));
    assert.match(text, new RegExp(`workqueue_retries_total\\{${label}\\} 1`));
    assert.match(text, new RegExp(`workqueue_queue_duration_seconds_count\\{${label}\\} 1`));
    assert.match(text, new RegExp(`workqueue_unfinished_work_seconds\\{${label}\\} 0.5`));
    assert.match(text, new RegExp(`workqueue_longest_running_processor_seconds\\{${label}\\} 0.5`));
    q.done('a');
    assert.match(
      await registry.metrics(),
      new RegExp(`workqueue_work_duration_seconds_sum\\{${label}\\} 0.5`),
    );
    q.shutDown();
  });
});
