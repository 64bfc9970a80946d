// The drain against in-memory caches and a recording apiserver: at most maxConcurrentMigrations
// moves at a time, even when the Migration cache lags behind the drain's own creates.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Container, Host, Migration, Workload } from '../../../src/api/v1alpha1/index.js';
import { byHost } from '../../../src/controller/caches.js';
import { DrainReconciler } from '../../../src/controller/drain.js';
import { FakeClock } from '../../../src/kube/clock.js';
import { Store } from '../../../src/kube/store.js';
import { ctx, quietRecorder } from './fakes.js';

const host: Host = {
  apiVersion: 'gantry.dev/v1alpha1',
  kind: 'Host',
  metadata: { name: 'h1' },
  spec: { unschedulable: true, drain: true, maxConcurrentMigrations: 2 },
};

const container = (name: string): Container =>
  ({
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Container',
    metadata: { name, namespace: 'ns', uid: `${name}-uid` },
    spec: { image: 'registry.example/counter:1', nodeName: 'h1' },
    status: { phase: 'Running' },
  }) as unknown as Container;

function setup() {
  const clock = new FakeClock(0);
  const containers = new Store<Container>({ [byHost]: (c) => [c.spec?.nodeName ?? ''] });
  for (const name of ['a', 'b', 'c', 'd']) containers.set(container(name));
  const hosts = new Store<Host>();
  hosts.set(host);
  const migrations = new Store<Migration>();
  const created: Migration[] = [];
  const statuses: { phase?: string }[] = [];
  const reconciler = new DrainReconciler({
    hosts,
    containers,
    workloads: new Store<Workload>(),
    migrations,
    hostsApi: {
      applyStatus: async (_name, status) => {
        statuses.push((status as { drain?: { phase?: string } }).drain ?? {});
        return host;
      },
    },
    containersApi: { delete: async () => true },
    migrationsApi: {
      create: async (m) => {
        if (created.some((x) => x.metadata.name === m.metadata.name)) {
          throw Object.assign(new Error('already exists'), { code: 409 });
        }
        created.push(m);
        return m;
      },
    },
    recorder: quietRecorder(clock),
    clock,
  });
  return { reconciler, containers, migrations, created, statuses, clock };
}

describe('DrainReconciler', () => {
  it('starts at most maxConcurrentMigrations moves while its Migration cache lags', async () => {
    const t = setup();
    await t.reconciler.reconcile('h1', ctx);
    assert.deepEqual(
      t.created.map((m) => m.spec.container),
      ['a', 'b'],
    );
    // A Container update re-indexes it (a now comes last) before the Migrations reach the cache.
    t.containers.set({
      ...t.containers.get('ns/a')!,
      status: { phase: 'Running', message: 'x' },
    } as Container);
    await t.reconciler.reconcile('h1', ctx);
    assert.equal(t.created.length, 2, 'no third move while two are in flight');

    // Once the cache shows them finished, the next two start.
    for (const m of t.created) t.migrations.set({ ...m, status: { phase: 'Succeeded' } } as Migration);
    for (const name of ['a', 'b']) t.containers.delete(`ns/${name}`);
    await t.reconciler.reconcile('h1', ctx);
    assert.deepEqual(
      t.created.map((m) => m.spec.container),
      ['a', 'b', 'c', 'd'],
    );
  });

  it('says Drained only once every move has ended, not when the last source is gone', async () => {
    const t = setup();
    for (const name of ['b', 'c', 'd']) t.containers.delete(`ns/${name}`);
    await t.reconciler.reconcile('h1', ctx);
    const [move] = t.created;
    // The Migration deleted its source and has not written Succeeded yet.
    t.migrations.set({ ...move!, status: { phase: 'Restoring' } } as Migration);
    t.containers.delete('ns/a');
    await t.reconciler.reconcile('h1', ctx);
    assert.equal(t.statuses.at(-1)?.phase, 'Draining');
    t.migrations.set({ ...move!, status: { phase: 'Succeeded' } } as Migration);
    await t.reconciler.reconcile('h1', ctx);
    assert.equal(t.statuses.at(-1)?.phase, 'Drained');
  });
});
