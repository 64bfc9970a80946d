// A lost Host: Ready Unknown, Workload Containers deleted, finalizers released, bare Containers
// shown Unknown; and nothing done while the heartbeat is fresh.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Container, Host } from '../../../src/api/v1alpha1/index.js';
import { FakeClock } from '../../../src/kube/clock.js';
import type { ObjectName } from '../../../src/kube/keys.js';
import { Store } from '../../../src/kube/store.js';
import { byHost } from '../../../src/controller/caches.js';
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

function setup(lostAt: number) {
  const clock = new FakeClock(1_000_000);
  const hosts = new Store<Host>();
  hosts.set(host);
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
    heartbeats: { lostAt: () => lostAt, graceMs: 40_000 },
    hostsApi: {
      applyStatus: async (name: ObjectName, status: object) => {
        written.set(`host/${name.name}`, status);
        return host;
      },
    },
    containersApi: {
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
});
