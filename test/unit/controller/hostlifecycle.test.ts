// A lost Host: Ready Unknown, Workload Containers deleted, finalizers released, bare Containers
// shown Unknown; nothing done while the heartbeat is fresh, nor evicted while no Host renews.
// And Heartbeats, which says which Hosts are lost.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubernetesObject, V1Lease } from '@kubernetes/client-node';
import type { Container, Host } from '../../../src/api/v1alpha1/index.js';
import { hostLeaseName } from '../../../src/api/v1alpha1/index.js';
import { FakeClock } from '../../../src/kube/clock.js';
import type { ObjectName } from '../../../src/kube/keys.js';
import { Store } from '../../../src/kube/store.js';
import { byHost, Heartbeats } from '../../../src/controller/caches.js';
import type { EventHandler, Informer } from '../../../src/kube/informer.js';
import { HostLifecycleReconciler } from '../../../src/controller/hostlifecycle.js';
import { ctx, hostReady, quietRecorder } from './fakes.js';

const host: Host = {
  apiVersion: 'gantry.dev/v1alpha1',
  kind: 'Host',
  metadata: { name: 'h2' },
  spec: { unschedulable: false, drain: false, maxConcurrentMigrations: 2 },
  status: {
    conditions: [hostReady],
  },
};

function container(name: string, over: { owned?: boolean; deleting?: boolean } = {}): Container {
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Container',
    metadata: {
      name,
      namespace: 'ns',
      resourceVersion: '5',
      finalizers: ['gantry.dev/runtime-cleanup', 'example.com/keep'],
      ...(over.deleting ? { deletionTimestamp: new Date() } : {}),
      ...(over.owned
        ? {
            ownerReferences: [
              {
                apiVersion: 'gantry.dev/v1alpha1',
                kind: 'Workload',
                name: 'web',
                uid: 'w',
                controller: true,
              },
            ],
          }
        : {}),
    },
    spec: {
      image: 'gantry/web:1',
      nodeName: 'h2',
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
    },
  };
}

function setup(lostAt: number, silent = false, hostExists = true) {
  const clock = new FakeClock(1_000_000);
  const hosts = new Store<Host>();
  if (hostExists) hosts.set(host);
  const containers = new Store<Container>({ [byHost]: (c) => [c.spec?.nodeName ?? ''] });
  for (const c of [
    container('owned', { owned: true }),
    container('bare'),
    container('going', { deleting: true }),
  ])
    containers.set(c);
  const calls: string[] = [];
  const written = new Map<string, object>();
  const reconciler = new HostLifecycleReconciler({
    hosts,
    containers,
    heartbeats: { lostAt: () => lostAt, graceMs: 40_000, silent: () => silent },
    hostsApi: {
      applyStatus: async (name: ObjectName, status: object) => {
        written.set(`host/${name.name}`, status);
        return host;
      },
    },
    containersApi: {
      get: async () => undefined,
      applyStatus: async (name: ObjectName, status: object) => {
        written.set(name.name, status);
        return {} as Container;
      },
      mergePatch: async (name: ObjectName, patch: object) => {
        calls.push(`patch ${name.name} ${JSON.stringify(patch)}`);
        return {} as Container;
      },
      delete: async (name: ObjectName) => {
        calls.push(`delete ${name.name}`);
        return true;
      },
    },
    recorder: quietRecorder(clock),
    clock,
  });
  return { reconciler, calls, written };
}

describe('HostLifecycleReconciler', () => {
  it('does nothing while the heartbeat is fresh, and looks again when it would run out', async () => {
    const { reconciler, calls, written } = setup(1_030_000);
    assert.deepEqual(await reconciler.reconcile('h2', ctx), { requeueAfter: 30_000 });
    assert.deepEqual(calls, []);
    assert.equal(written.size, 0);
  });

  it('on a lost Host: Ready Unknown, Workload Containers deleted, finalizers released, bare ones Unknown', async () => {
    const { reconciler, calls, written } = setup(999_000);
    await reconciler.reconcile('h2', ctx);
    const hostStatus = written.get('host/h2') as { conditions: { status: string; reason: string }[] };
    assert.deepEqual(
      hostStatus.conditions.map((c) => [c.status, c.reason]),
      [['Unknown', 'HeartbeatLost']],
    );
    assert.deepEqual(calls.sort(), [
      'delete owned',
      'patch going {"metadata":{"resourceVersion":"5","finalizers":["example.com/keep"]}}',
    ]);
    const bare = written.get('bare') as { phase: string; conditions: { type: string; status: string }[] };
    assert.equal(bare.phase, 'Unknown');
    assert.deepEqual(
      bare.conditions.map((c) => [c.type, c.status]),
      [
        ['Scheduled', 'True'],
        ['Ready', 'Unknown'],
      ],
    );
  });

  it('handles the Containers of a Host that does not exist (deleted, or a made-up nodeName) as a lost one', async () => {
    const waiting = setup(1_030_000, false, false);
    assert.deepEqual(await waiting.reconciler.reconcile('h2', ctx), { requeueAfter: 30_000 });
    assert.deepEqual(waiting.calls, [], 'a grace period first: its agent may register it again');

    const { reconciler, calls, written } = setup(999_000, false, false);
    await reconciler.reconcile('h2', ctx);
    assert.equal(written.has('host/h2'), false, 'no Host to write');
    assert.deepEqual(calls.sort(), [
      'delete owned',
      'patch going {"metadata":{"resourceVersion":"5","finalizers":["example.com/keep"]}}',
    ]);
    const bare = written.get('bare') as { phase: string; reason: string; message: string };
    assert.deepEqual(
      [bare.phase, bare.reason, bare.message],
      ['Unknown', 'HostNotFound', 'Host h2 does not exist (deleted, or never registered by an agent)'],
    );
  });

  it('evicts nothing when no Host renews at all, and looks again a grace period later', async () => {
    const { reconciler, calls, written } = setup(999_000, true);
    assert.deepEqual(await reconciler.reconcile('h2', ctx), { requeueAfter: 40_000 });
    assert.ok(!calls.includes('delete owned'), 'the Workload replica stays');
    for (const name of ['owned', 'bare']) {
      assert.equal((written.get(name) as { phase: string }).phase, 'Unknown', name);
    }
    const hostStatus = written.get('host/h2') as { conditions: { message: string }[] };
    assert.match(hostStatus.conditions[0]!.message, /No Host renewed .* nothing is evicted/);
  });
});

describe('Heartbeats', () => {
  const lease = (host: string, renewTime: string): V1Lease => ({
    metadata: { name: hostLeaseName(host), namespace: 'gantry-system' },
    spec: { holderIdentity: host, renewTime: renewTime as unknown as Date },
  });
  /** Just the event-handler side of an informer, fed by hand. */
  function source<T extends KubernetesObject>() {
    const handlers: EventHandler<T>[] = [];
    return {
      informer: { addEventHandler: (h: EventHandler<T>) => void handlers.push(h) } as unknown as Informer<T>,
      add: (obj: T) => handlers.forEach((h) => h.onAdd?.(obj)),
      update: (before: T, after: T) => handlers.forEach((h) => h.onUpdate?.(before, after)),
    };
  }

  it('gives a name with no Host and no Lease a grace period from the first time it is asked about', () => {
    const clock = new FakeClock(0);
    const beats = new Heartbeats(40_000, clock, source<V1Lease>().informer, source<Host>().informer);
    clock.advance(100_000);
    assert.equal(beats.fresh('typo'), true, 'first asked now');
    clock.advance(40_001);
    assert.equal(beats.fresh('typo'), false);
  });

  it('counts a Host lost a grace period after its last renewal, by this process clock', () => {
    const clock = new FakeClock(0);
    const leases = source<V1Lease>();
    const beats = new Heartbeats(40_000, clock, leases.informer, source<Host>().informer);
    leases.add(lease('a', 't0'));
    leases.add(lease('b', 't0'));
    for (let t = 1; t <= 4; t++) {
      clock.advance(10_000);
      leases.update(lease('a', `t${t - 1}`), lease('a', `t${t}`));
    }
    clock.advance(5_000);
    assert.equal(beats.fresh('a'), true);
    assert.equal(beats.fresh('b'), false, 'b renewed nothing for 45 s');
    assert.equal(beats.silent(), false, 'a still renews');
  });

  it('is silent for the first Host to run out of grace when all stopped within a renewal interval', () => {
    const clock = new FakeClock(0);
    const leases = source<V1Lease>();
    const beats = new Heartbeats(40_000, clock, leases.informer, source<Host>().informer);
    leases.add(lease('a', 't0'));
    clock.advance(9_000);
    leases.add(lease('b', 't0'));
    clock.advance(31_001);
    assert.equal(beats.fresh('a'), false);
    assert.equal(beats.silent(), true, 'b renewed 31 s ago, it stopped too');
  });

  it('after a silence of every Host, gives each a full grace period from the first renewal', () => {
    const clock = new FakeClock(0);
    const leases = source<V1Lease>();
    const beats = new Heartbeats(40_000, clock, leases.informer, source<Host>().informer);
    leases.add(lease('a', 't0'));
    leases.add(lease('b', 't0'));
    clock.advance(60_000);
    assert.equal(beats.silent(), true);
    leases.update(lease('a', 't0'), lease('a', 't1'));
    assert.equal(beats.silent(), false);
    clock.advance(39_000);
    assert.equal(beats.fresh('b'), true, 'b has had 39 s since renewals resumed, not 99 s');
    clock.advance(2_000);
    assert.equal(beats.fresh('b'), false);
  });
});
