// The scheduling reconciler against in-memory caches that lag behind its own bindings: the
// assumed bindings keep a burst from piling onto one Host or overfilling it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  runtimeCleanupFinalizer,
  schedulingGateAnnotation,
  type Container,
  type Host,
  type Image,
  type Workload,
} from '../../../src/api/v1alpha1/index.js';
import { FakeClock } from '../../../src/kube/clock.js';
import { objectKey, type ObjectName } from '../../../src/kube/keys.js';
import { Store } from '../../../src/kube/store.js';
import { SchedulingReconciler } from '../../../src/controller/binding.js';
import { byHost, byWorkload, controllingWorkload } from '../../../src/controller/caches.js';
import { ctx, hostReady, quietRecorder } from './fakes.js';

function host(name: string, cpu = '2'): Host {
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Host',
    metadata: { name },
    spec: { unschedulable: false, drain: false, maxConcurrentMigrations: 2 },
    status: {
      allocatable: { cpu, memory: '4Gi' },
      conditions: [hostReady],
    },
  };
}

function container(name: string, cpu?: string): Container {
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Container',
    metadata: {
      name,
      namespace: 'ns',
      uid: `uid-${name}`,
      resourceVersion: '1',
      ownerReferences: [
        { apiVersion: 'gantry.dev/v1alpha1', kind: 'Workload', name: 'web', uid: 'w', controller: true },
      ],
    },
    spec: {
      image: 'gantry/web:1',
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      ...(cpu ? { resources: { requests: { cpu } } } : {}),
    },
  };
}

/** `c` publishing `hostPort` (containerPort 8080). */
function publishing(c: Container, hostPort: number, protocol: 'TCP' | 'UDP' = 'TCP'): Container {
  return { ...c, spec: { ...c.spec, ports: [{ containerPort: 8080, protocol, hostPort }] } };
}

function setup(hosts: Host[]) {
  const containers = new Store<Container>({
    [byHost]: (c) => [c.spec?.nodeName ?? ''],
    [byWorkload]: (c) => {
      const owner = controllingWorkload(c);
      return owner ? [owner] : [];
    },
  });
  const hostStore = new Store<Host>();
  for (const h of hosts) hostStore.set(h);
  const bindings = new Map<string, string>();
  const statuses = new Map<string, NonNullable<Container['status']>>();
  const patches = new Map<string, { resourceVersion?: string; finalizers?: string[] }>();
  const clock = new FakeClock();
  const events: { object: string; type: string; reason: string; note: string }[] = [];
  const recorder = quietRecorder(clock);
  recorder.event = (regarding, type, reason, _action, note) =>
    void events.push({ object: regarding.metadata!.name!, type, reason, note });
  const reconciler = new SchedulingReconciler({
    containers,
    hosts: hostStore,
    workloads: new Store<Workload>(),
    images: new Store<Image>(),
    heartbeats: { fresh: () => true },
    api: {
      // The cache does not see these: it lags.
      mergePatch: async (name: ObjectName, patch: object) => {
        const { spec, metadata } = patch as {
          spec: { nodeName: string };
          metadata: { finalizers?: string[] };
        };
        const nodeName = spec.nodeName;
        bindings.set(name.name, nodeName);
        patches.set(name.name, metadata);
        const c = containers.get(`ns/${name.name}`)!;
        return { ...c, spec: { ...c.spec, nodeName } };
      },
      applyStatus: async (name: ObjectName, status: object) => {
        statuses.set(name.name, status as NonNullable<Container['status']>);
        return {} as Container;
      },
    },
    recorder,
    clock,
  });
  return { containers, reconciler, bindings, patches, statuses, clock, events };
}

describe('SchedulingReconciler', () => {
  it('spreads a burst over the Hosts although the cache shows none of the bindings', async () => {
    const { containers, reconciler, bindings } = setup([host('a'), host('b')]);
    const names = ['w1', 'w2', 'w3', 'w4'];
    for (const n of names) containers.set(container(n));
    await Promise.all(names.map((n) => reconciler.reconcile(`ns/${n}`, ctx)));
    const perHost = [...bindings.values()].reduce<Record<string, number>>(
      (acc, h) => ({ ...acc, [h]: (acc[h] ?? 0) + 1 }),
      {},
    );
    assert.deepEqual(perHost, { a: 2, b: 2 });
  });

  it("binds with the agent's finalizer in the same write, on the resourceVersion it decided on", async () => {
    const { containers, reconciler, patches } = setup([host('a')]);
    containers.set({
      ...container('p'),
      metadata: { ...container('p').metadata, finalizers: ['example.com/keep'] },
    });
    await reconciler.reconcile('ns/p', ctx);
    assert.deepEqual(patches.get('p'), {
      resourceVersion: '1',
      finalizers: ['example.com/keep', runtimeCleanupFinalizer],
    });
  });

  it('does not overfill a Host with assumed bindings; says why the rest waits', async () => {
    const { containers, reconciler, bindings, statuses } = setup([host('a', '1'), host('b', '1')]);
    for (const n of ['c1', 'c2', 'c3']) containers.set(container(n, '600m'));
    for (const n of ['c1', 'c2', 'c3']) await reconciler.reconcile(`ns/${n}`, ctx);
    assert.equal(bindings.size, 2);
    assert.notEqual(bindings.get('c1'), bindings.get('c2'));
    const waiting = statuses.get('c3')!;
    assert.equal(waiting.phase, 'Pending');
    assert.equal(waiting.message, '0/2 hosts are available: 2 insufficient cpu.');
    assert.deepEqual(
      waiting.conditions?.map((c) => [c.type, c.status, c.reason]),
      [
        ['Scheduled', 'False', 'Unschedulable'],
        ['Reconciling', 'True', 'Unschedulable'],
      ],
    );
  });

  it('forgets assumed bindings the cache never confirms, after a while', async () => {
    const { containers, reconciler, bindings, clock } = setup([host('a', '1')]);
    containers.set(container('c1', '600m'));
    await reconciler.reconcile('ns/c1', ctx);
    containers.set(container('c2', '600m'));
    await reconciler.reconcile('ns/c2', ctx);
    assert.equal(bindings.has('c2'), false, 'c1 is assumed on a');
    clock.advance(31_000);
    await reconciler.reconcile('ns/c2', ctx);
    assert.equal(bindings.get('c2'), 'a');
  });

  it('places a Container before its create, and counts it on that Host until the cache has it', async () => {
    const { containers, reconciler, bindings } = setup([host('a', '1'), host('b', '1')]);
    const unborn = (name: string) => {
      const c = container(name, '600m');
      delete c.metadata.uid;
      return c;
    };
    const first = reconciler.placeNew(unborn('r1'))!;
    containers.set(container('c2', '600m'));
    await reconciler.reconcile('ns/c2', ctx);
    assert.notEqual(bindings.get('c2'), first, 'the placement counts although nothing is in the cache');
    assert.equal(reconciler.placeNew(unborn('r3')), undefined, 'both Hosts are full');

    reconciler.createSettled('ns/r1', false);
    assert.equal(reconciler.placeNew(unborn('r3')), first, 'a failed create gives its room back');
    const created = unborn('r3');
    containers.set({
      ...created,
      metadata: { ...created.metadata, uid: 'u' },
      spec: { ...created.spec, nodeName: first },
    });
    assert.equal(reconciler.placeNew(unborn('r4')), undefined, 'counted once the cache shows it, not twice');
  });

  it('keeps Containers asking for one hostPort on different Hosts, though the cache shows no binding; the rest wait, saying why', async () => {
    const { containers, reconciler, bindings, statuses, events } = setup([host('a'), host('b')]);
    const names = ['p1', 'p2', 'p3'];
    for (const n of names) containers.set(publishing(container(n), 8080));
    await Promise.all(names.map((n) => reconciler.reconcile(`ns/${n}`, ctx)));
    assert.deepEqual([...bindings.values()].sort(), ['a', 'b']);
    const waiting = names.find((n) => !bindings.has(n))!;
    const message = '0/2 hosts are available: 2 hosts have the host port 8080/TCP in use.';
    assert.equal(statuses.get(waiting)?.phase, 'Pending');
    assert.equal(statuses.get(waiting)?.message, message);
    assert.deepEqual(
      statuses.get(waiting)?.conditions?.map((c) => [c.type, c.status, c.reason]),
      [
        ['Scheduled', 'False', 'Unschedulable'],
        ['Reconciling', 'True', 'Unschedulable'],
      ],
    );
    assert.deepEqual(events, [
      { object: waiting, type: 'Warning', reason: 'FailedScheduling', note: message },
    ]);

    // Another protocol on the same port number is another socket.
    containers.set(publishing(container('dns'), 8080, 'UDP'));
    await reconciler.reconcile('ns/dns', ctx);
    assert.ok(bindings.has('dns'));
  });

  it('counts the ports of Containers being deleted, and of finished ones, until they are gone', async () => {
    const { containers, reconciler, bindings, statuses } = setup([host('a'), host('b')]);
    const on = (c: Container, nodeName: string): Container => ({ ...c, spec: { ...c.spec, nodeName } });
    const terminating = on(publishing(container('old'), 8080), 'a');
    terminating.metadata.deletionTimestamp = new Date();
    const finished = {
      ...on(publishing(container('done'), 8080), 'b'),
      status: { phase: 'Succeeded' as const },
    };
    containers.set(terminating);
    containers.set(finished);
    containers.set(publishing(container('new'), 8080));
    await reconciler.reconcile('ns/new', ctx);
    assert.equal(bindings.has('new'), false);
    assert.equal(
      statuses.get('new')?.message,
      '0/2 hosts are available: 2 hosts have the host port 8080/TCP in use.',
    );
    containers.delete(objectKey(terminating));
    await reconciler.reconcile('ns/new', ctx);
    assert.equal(bindings.get('new'), 'a', 'the port is free once the Container is gone');
  });

  it('counts the host ports of a Container placed before its create', () => {
    const { reconciler } = setup([host('a'), host('b')]);
    const unborn = (name: string) => {
      const c = publishing(container(name), 9000);
      delete c.metadata.uid;
      return c;
    };
    const first = reconciler.placeNew(unborn('r1'));
    const second = reconciler.placeNew(unborn('r2'));
    assert.deepEqual([first, second].sort(), ['a', 'b']);
    assert.equal(reconciler.placeNew(unborn('r3')), undefined, 'the port is taken on both Hosts');
  });

  it('leaves a gated Container to be created unbound', () => {
    const { reconciler } = setup([host('a')]);
    const gated = container('g');
    gated.metadata.annotations = { [schedulingGateAnnotation]: 'quota' };
    assert.equal(reconciler.placeNew(gated), undefined);
  });

  it('leaves Scheduled=True of a bound Container to its agent, and corrects a Scheduled=False of its own', async () => {
    const { containers, reconciler, bindings, statuses } = setup([host('a')]);
    const bound = { ...container('p'), spec: { ...container('p').spec, nodeName: 'a' } };
    containers.set(bound);
    await reconciler.reconcile(objectKey(bound), ctx);
    assert.equal(bindings.size, 0);
    assert.equal(statuses.get('p'), undefined, 'no write: the agent reports Scheduled=True');

    const wasUnschedulable = {
      ...bound,
      status: {
        conditions: [
          {
            type: 'Scheduled',
            status: 'False' as const,
            reason: 'Unschedulable',
            message: 'no Host fits',
            lastTransitionTime: '2026-01-01T00:00:00Z',
          },
        ],
      },
    };
    containers.set(wasUnschedulable);
    await reconciler.reconcile(objectKey(bound), ctx);
    assert.equal(bindings.size, 0);
    assert.equal(statuses.get('p')?.conditions?.[0]?.message, 'Assigned to host a');
  });
});
