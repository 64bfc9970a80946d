import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { ApiException, type EventsV1Event } from '@kubernetes/client-node';
import { FakeClock } from '../../../src/kube/clock.js';
import { EventRecorder, type EventsApi } from '../../../src/kube/events.js';
import { createLogger } from '../../../src/obs/logger.js';

class FakeEvents {
  created: EventsV1Event[] = [];
  patches: { name: string; body: unknown; contentType?: string }[] = [];
  fail = false;
  expired = new Set<string>();
  /** While set, creates wait for it. */
  createGate: Promise<void> | undefined;

  api(): EventsApi {
    return {
      createNamespacedEvent: async ({ body }) => {
        await this.createGate;
        if (this.fail) throw new ApiException(500, 'boom', '{}', {});
        const wire = JSON.parse(JSON.stringify(body)) as EventsV1Event;
        this.created.push(wire);
        return wire;
      },
      patchNamespacedEvent: async ({ name, body }) => {
        if (this.expired.has(name)) throw new ApiException(404, 'gone', '{}', {});
        this.patches.push({ name, body: JSON.parse(JSON.stringify(body)) });
        return {} as EventsV1Event;
      },
    };
  }
}

const container = {
  apiVersion: 'gantry.dev/v1alpha1',
  kind: 'Container',
  metadata: { name: 'web', namespace: 'ns', uid: 'u1', resourceVersion: '7' },
};

function setup() {
  const sink = new FakeEvents();
  const clock = new FakeClock(Date.parse('2025-01-01T00:00:00Z'));
  const logs: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (c: Buffer) => logs.push(c.toString()));
  const recorder = new EventRecorder({
    api: sink.api(),
    reportingController: 'gantry.dev/controller',
    reportingInstance: 'controller-0',
    log: createLogger({ stream }),
    clock,
  });
  return { sink, clock, recorder, logs };
}

describe('EventRecorder', () => {
  it('creates an events.k8s.io/v1 Event regarding the object', async () => {
    const { sink, recorder } = setup();
    recorder.event(container, 'Warning', 'PullFailed', 'Pull', 'image not found');
    await recorder.flush();
    assert.equal(sink.created.length, 1);
    const e = sink.created[0]!;
    assert.equal(e.metadata?.namespace, 'ns');
    assert.match(e.metadata?.name ?? '', /^web\.[0-9a-f]+$/);
    assert.equal(e.eventTime as unknown as string, '2025-01-01T00:00:00.000000Z');
    assert.deepEqual(
      { type: e.type, reason: e.reason, action: e.action, note: e.note },
      { type: 'Warning', reason: 'PullFailed', action: 'Pull', note: 'image not found' },
    );
    assert.equal(e.reportingController, 'gantry.dev/controller');
    assert.equal(e.reportingInstance, 'controller-0');
    assert.deepEqual(e.regarding, {
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Container',
      name: 'web',
      namespace: 'ns',
      uid: 'u1',
      resourceVersion: '7',
    });
  });

  it('turns repeats within ten minutes into a series count on the same Event', async () => {
    const { sink, clock, recorder } = setup();
    recorder.event(container, 'Warning', 'PullFailed', 'Pull', 'image not found');
    await recorder.flush();
    clock.advance(60_000);
    recorder.event(container, 'Warning', 'PullFailed', 'Pull', 'image not found');
    await recorder.flush();
    clock.advance(9 * 60_000);
    recorder.event(container, 'Warning', 'PullFailed', 'Pull', 'image not found');
    await recorder.flush();
    assert.equal(sink.created.length, 1);
    assert.deepEqual(
      sink.patches.map((p) => p.body),
      [
        { series: { count: 2, lastObservedTime: '2025-01-01T00:01:00.000000Z' } },
        { series: { count: 3, lastObservedTime: '2025-01-01T00:10:00.000000Z' } },
      ],
    );
    assert.equal(sink.patches[0]!.name, sink.created[0]!.metadata?.name);
  });

  it('starts a new Event after ten quiet minutes, or for a different note or object', async () => {
    const { sink, clock, recorder } = setup();
    recorder.event(container, 'Normal', 'Started', 'Start', 'started');
    recorder.event(container, 'Normal', 'Started', 'Start', 'started again, differently');
    recorder.event(
      { ...container, metadata: { ...container.metadata, name: 'db', uid: 'u2' } },
      'Normal',
      'Started',
      'Start',
      'started',
    );
    await recorder.flush();
    clock.advance(10 * 60_000);
    recorder.event(container, 'Normal', 'Started', 'Start', 'started');
    await recorder.flush();
    assert.equal(sink.created.length, 4);
    assert.equal(sink.patches.length, 0);
  });

  it('coalesces a burst into one create carrying the final count', async () => {
    const { sink, recorder } = setup();
    for (let i = 0; i < 50; i++) recorder.event(container, 'Warning', 'BackOff', 'Restart', 'crash loop');
    await recorder.flush();
    assert.equal(sink.created.length, 1);
    assert.equal(sink.created[0]!.series?.count, 50);
    assert.equal(sink.patches.length, 0);
  });

  it('patches the count of repeats that arrive while the Event is being created', async () => {
    const { sink, recorder } = setup();
    let release!: () => void;
    sink.createGate = new Promise((r) => (release = r));
    recorder.event(container, 'Warning', 'BackOff', 'Restart', 'crash loop');
    await new Promise((r) => setImmediate(r)); // the create is in flight
    recorder.event(container, 'Warning', 'BackOff', 'Restart', 'crash loop');
    recorder.event(container, 'Warning', 'BackOff', 'Restart', 'crash loop');
    release();
    await recorder.flush();
    assert.equal(sink.created.length, 1);
    assert.equal(sink.created[0]!.series, undefined);
    assert.deepEqual(
      sink.patches.map((p) => (p.body as { series: { count: number } }).series.count),
      [3],
    );
  });

  it('creates a fresh Event when the series Event has expired', async () => {
    const { sink, recorder } = setup();
    recorder.event(container, 'Warning', 'BackOff', 'Restart', 'crash loop');
    await recorder.flush();
    sink.expired.add(sink.created[0]!.metadata!.name!);
    recorder.event(container, 'Warning', 'BackOff', 'Restart', 'crash loop');
    await recorder.flush();
    assert.equal(sink.created.length, 2);
  });

  it('puts events about cluster-scoped objects in default and never throws', async () => {
    const { sink, recorder, logs } = setup();
    recorder.event(
      { apiVersion: 'gantry.dev/v1alpha1', kind: 'Host', metadata: { name: 'host-1' } },
      'Normal',
      'Registered',
      'Register',
      'ok',
    );
    await recorder.flush();
    assert.equal(sink.created[0]!.metadata?.namespace, 'default');
    sink.fail = true;
    assert.doesNotThrow(() => recorder.event(container, 'Normal', 'X', 'Y', 'z'));
    await recorder.flush();
    assert.ok(logs.some((l) => l.includes('Writing an event failed')));
  });

  it('truncates long notes to the 1 kB limit', async () => {
    const { sink, recorder } = setup();
    recorder.event(container, 'Warning', 'Failed', 'Run', 'x'.repeat(5000));
    await recorder.flush();
    assert.equal(sink.created[0]!.note?.length, 1024);
  });
});
