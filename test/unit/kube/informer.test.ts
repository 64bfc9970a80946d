import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { FakeClock } from '../../../src/kube/clock.js';
import { StatusError } from '../../../src/kube/errors.js';
import { Informer, type ListWatcher, type WatchEvent } from '../../../src/kube/informer.js';
import { createLogger } from '../../../src/obs/logger.js';
import { registry } from '../../../src/obs/metrics.js';

interface Obj {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion: string };
  spec?: { nodeName?: string };
}
const obj = (name: string, rv: string, nodeName?: string): Obj => ({
  metadata: { namespace: 'ns', name, resourceVersion: rv },
  spec: { nodeName },
});

interface ActiveWatch {
  resourceVersion: string;
  timeoutSeconds: number;
  emit: (e: WatchEvent) => void;
  end: () => void;
  fail: (err: unknown) => void;
  signal: AbortSignal;
}

/** A scripted apiserver: list answers come from `lists`, watches are driven by the test. */
class FakeListWatcher implements ListWatcher<Obj> {
  lists: ({ items: Obj[]; resourceVersion: string } | Error)[] = [];
  listCalls = 0;
  watches: ActiveWatch[] = [];

  get active(): ActiveWatch {
    const w = this.watches.at(-1);
    assert.ok(w && !w.signal.aborted, 'no active watch');
    return w;
  }

  async list(): Promise<{ items: Obj[]; resourceVersion: string }> {
    this.listCalls++;
    const next = this.lists.shift();
    assert.ok(next, 'unexpected list');
    if (next instanceof Error) throw next;
    return structuredClone(next);
  }

  watch(
    opts: { resourceVersion: string; timeoutSeconds: number; signal: AbortSignal },
    onEvent: (e: WatchEvent) => void,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      opts.signal.addEventListener('abort', () => reject(new Error('aborted')));
      // Like the real one: an event the informer rejects ends the watch with that error.
      const emit = (e: WatchEvent): void => {
        try {
          onEvent(e);
        } catch (err) {
          reject(err);
        }
      };
      this.watches.push({ ...opts, emit, end: resolve, fail: reject });
    });
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

let informers = 0;
function setup(opts: { resyncPeriodMs?: number } = {}) {
  const lw = new FakeListWatcher();
  const clock = new FakeClock();
  const events: string[] = [];
  const informer = new Informer<Obj>({
    name: `informer-test-${informers++}`,
    listWatcher: lw,
    clock,
    log: createLogger({ stream: new PassThrough() }),
    indexers: { nodeName: (o) => (o.spec?.nodeName ? [o.spec.nodeName] : []) },
    quietTimeoutMs: 60_000,
    backoff: { initialMs: 100, maxMs: 400, jitter: 0 },
    ...opts,
  });
  informer.addEventHandler({
    onAdd: (o) => events.push(`add ${o.metadata.name}@${o.metadata.resourceVersion}`),
    onUpdate: (a, b) =>
      events.push(`update ${a.metadata.name}@${a.metadata.resourceVersion}->${b.metadata.resourceVersion}`),
    onDelete: (o) => events.push(`delete ${o.metadata.name}@${o.metadata.resourceVersion}`),
  });
  return { lw, clock, events, informer };
}

async function metric(sample: string): Promise<number> {
  const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(sample + ' '));
  assert.ok(line, `no sample ${sample}`);
  return Number(line.split(' ')[1]);
}

describe('Informer', () => {
  it('lists, syncs, then watches from the list resourceVersion', async () => {
    const { lw, events, informer } = setup();
    lw.lists.push({ items: [obj('a', '1', 'host-1'), obj('b', '2')], resourceVersion: '10' });
    assert.equal(informer.hasSynced(), false);
    informer.start();
    assert.equal(await informer.waitForSync(), true);
    assert.equal(informer.hasSynced(), true);
    assert.deepEqual(events, ['add a@1', 'add b@2']);
    await settle();
    assert.equal(lw.active.resourceVersion, '10');
    assert.ok(lw.active.timeoutSeconds >= 300 && lw.active.timeoutSeconds <= 600);
    assert.equal(informer.cache.get('ns/a')?.metadata.resourceVersion, '1');
    assert.deepEqual(
      informer.cache.byIndex('nodeName', 'host-1').map((o) => o.metadata.name),
      ['a'],
    );
    await informer.stop();
  });

  it('applies watch events to the cache and the handlers', async () => {
    const { lw, events, informer } = setup();
    lw.lists.push({ items: [obj('a', '1')], resourceVersion: '10' });
    informer.start();
    await settle();
    lw.active.emit({ type: 'ADDED', object: obj('b', '11', 'host-2') });
    lw.active.emit({ type: 'MODIFIED', object: obj('a', '12') });
    lw.active.emit({ type: 'DELETED', object: obj('b', '13') });
    assert.deepEqual(events.slice(1), ['add b@11', 'update a@1->12', 'delete b@13']);
    assert.deepEqual(informer.cache.keys(), ['ns/a']);
    assert.deepEqual(informer.cache.byIndex('nodeName', 'host-2'), []);
    await informer.stop();
  });

  it('resumes a watch the server ended from the last version seen (bookmarks included)', async () => {
    const { lw, informer } = setup();
    lw.lists.push({ items: [], resourceVersion: '10' });
    informer.start();
    await settle();
    lw.active.emit({ type: 'ADDED', object: obj('a', '11') });
    lw.active.emit({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '25' } } });
    lw.active.end();
    await settle();
    assert.equal(lw.watches.length, 2);
    assert.equal(lw.active.resourceVersion, '25');
    assert.equal(lw.listCalls, 1, 'no relist');
    await informer.stop();
  });

  it('relists on a 410 ERROR event, delivering deletes for vanished objects', async () => {
    const { lw, clock, events, informer } = setup();
    lw.lists.push({ items: [obj('a', '1'), obj('b', '2'), obj('c', '3')], resourceVersion: '10' });
    lw.lists.push({ items: [obj('a', '1'), obj('c', '7'), obj('d', '8')], resourceVersion: '50' });
    informer.start();
    await settle();
    events.length = 0;
    clock.advance(5_000);
    lw.active.emit({
      type: 'ERROR',
      object: { kind: 'Status', code: 410, message: 'too old resource version: 10 (40)' },
    });
    await settle();
    assert.equal(lw.listCalls, 2);
    assert.deepEqual(events.sort(), ['add d@8', 'delete b@2', 'update c@3->7']);
    assert.deepEqual(informer.cache.keys().sort(), ['ns/a', 'ns/c', 'ns/d']);
    assert.equal(lw.active.resourceVersion, '50');
    assert.equal(
      await metric(`gantry_informer_relists_total{informer="${informer.name}",reason="expired"}`),
      1,
    );
    await informer.stop();
  });

  it('relists when the watch request itself answers 410 Gone', async () => {
    const { lw, clock, informer } = setup();
    lw.lists.push({ items: [], resourceVersion: '10' }, { items: [], resourceVersion: '60' });
    informer.start();
    await settle();
    clock.advance(5_000);
    lw.active.fail(new StatusError(410, 'Gone'));
    await settle();
    assert.equal(lw.listCalls, 2);
    assert.equal(lw.active.resourceVersion, '60');
    await informer.stop();
  });

  it('backs off when watches expire right after each list', async () => {
    const { lw, clock, informer } = setup();
    lw.lists.push({ items: [], resourceVersion: '10' }, { items: [], resourceVersion: '11' });
    informer.start();
    await settle();
    lw.active.fail(new StatusError(410, 'Gone'));
    await settle();
    assert.equal(lw.listCalls, 1, 'no immediate relist');
    clock.advance(100);
    await settle();
    assert.equal(lw.listCalls, 2);
    await informer.stop();
  });

  it('retries other watch failures from the last version with growing, capped backoff', async () => {
    const { lw, clock, informer } = setup();
    lw.lists.push({ items: [], resourceVersion: '10' });
    informer.start();
    await settle();
    const waits: number[] = [];
    for (let attempt = 0; attempt < 4; attempt++) {
      lw.active.fail(new Error('connection reset'));
      await settle();
      const before = lw.watches.length;
      let waited = 0;
      while (lw.watches.length === before) {
        clock.advance(50);
        waited += 50;
        await settle();
      }
      waits.push(waited);
    }
    assert.deepEqual(waits, [100, 200, 400, 400]);
    assert.equal(lw.listCalls, 1);
    assert.equal(lw.active.resourceVersion, '10');
    assert.equal(
      await metric(`gantry_informer_watch_restarts_total{informer="${informer.name}",reason="error"}`),
      4,
    );
    // An event proves the connection healthy: the next failure starts from the initial delay.
    lw.active.emit({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '11' } } });
    lw.active.fail(new Error('reset again'));
    await settle();
    clock.advance(100);
    await settle();
    assert.equal(lw.active.resourceVersion, '11');
    await informer.stop();
  });

  it('restarts a watch that goes quiet', async () => {
    const { lw, clock, informer } = setup();
    lw.lists.push({ items: [], resourceVersion: '10' });
    informer.start();
    await settle();
    clock.advance(59_000);
    lw.active.emit({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '12' } } }); // resets the timer
    clock.advance(59_000);
    await settle();
    assert.equal(lw.watches.length, 1);
    clock.advance(1_000); // 60 s of silence
    await settle();
    assert.equal(lw.watches[0]!.signal.aborted, true);
    clock.advance(100); // backoff
    await settle();
    assert.equal(lw.watches.length, 2);
    assert.equal(lw.active.resourceVersion, '12');
    assert.equal(
      await metric(`gantry_informer_watch_restarts_total{informer="${informer.name}",reason="quiet"}`),
      1,
    );
    await informer.stop();
  });

  it('treats a watch ended at once without events as a failure (no hot loop)', async () => {
    const { lw, clock, informer } = setup();
    lw.lists.push({ items: [], resourceVersion: '10' });
    informer.start();
    await settle();
    lw.active.end();
    await settle();
    assert.equal(lw.watches.length, 1);
    clock.advance(100);
    await settle();
    assert.equal(lw.watches.length, 2);
    await informer.stop();
  });

  it('retries a failed list with backoff and syncs once it succeeds', async () => {
    const { lw, clock, informer } = setup();
    lw.lists.push(new Error('connection refused'), { items: [obj('a', '1')], resourceVersion: '5' });
    informer.start();
    await settle();
    assert.equal(informer.hasSynced(), false);
    clock.advance(100);
    assert.equal(await informer.waitForSync(), true);
    assert.equal(lw.listCalls, 2);
    await informer.stop();
  });

  it('resyncs: re-delivers every cached object as an update', async () => {
    const { lw, clock, events, informer } = setup({ resyncPeriodMs: 30_000 });
    lw.lists.push({ items: [obj('a', '1'), obj('b', '2')], resourceVersion: '10' });
    informer.start();
    await settle();
    lw.active.emit({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '11' } } });
    events.length = 0;
    clock.advance(30_000);
    assert.deepEqual(events, ['update a@1->1', 'update b@2->2']);
    clock.advance(30_000);
    assert.equal(events.length, 4);
    await informer.stop();
  });

  it('replays the cache to late handlers and survives a throwing handler', async () => {
    const { lw, informer } = setup();
    lw.lists.push({ items: [obj('a', '1')], resourceVersion: '10' });
    informer.start();
    await informer.waitForSync();
    informer.addEventHandler({
      onAdd: () => {
        throw new Error('handler bug');
      },
    });
    const late: string[] = [];
    informer.addEventHandler({ onAdd: (o) => late.push(o.metadata.name) });
    assert.deepEqual(late, ['a']);
    await settle();
    lw.active.emit({ type: 'ADDED', object: obj('b', '11') });
    assert.deepEqual(late, ['a', 'b']);
    await informer.stop();
  });

  it('stops: the watch is aborted and waitForSync gives up', async () => {
    const { lw, informer } = setup();
    lw.lists.push(new Error('down'));
    informer.start();
    await settle();
    const waiting = informer.waitForSync();
    await informer.stop();
    assert.equal(await waiting, false);

    const second = setup();
    second.lw.lists.push({ items: [], resourceVersion: '1' });
    second.informer.start();
    await settle();
    const watch = second.lw.active;
    await second.informer.stop();
    assert.equal(watch.signal.aborted, true);
  });
});
