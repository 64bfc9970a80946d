// The Migration controller's state machine against in-memory caches and a recording apiserver:
// what it creates, deletes and patches, in which order, and the phases it writes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  migratedToAnnotation,
  migrationLabel,
  restoreFromAnnotation,
  schedulingGateAnnotation,
  transferTokenFinalizer,
  type Container,
  type Host,
  type Migration,
} from '../../../src/api/v1alpha1/index.js';
import { byHost } from '../../../src/controller/caches.js';
import { MigrationReconciler, targetName } from '../../../src/controller/migration/index.js';
import { FakeClock } from '../../../src/kube/clock.js';
import type { Condition } from '../../../src/kube/conditions.js';
import { Store } from '../../../src/kube/store.js';
import { ctx, quietRecorder } from './fakes.js';

const ns = 'ns';

function container(name: string, nodeName: string | undefined, extra: Partial<Container['metadata']> = {}) {
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Container',
    metadata: { name, namespace: ns, uid: `${name}-uid`, ...extra },
    spec: { image: 'registry.example/counter:1', ...(nodeName ? { nodeName } : {}) },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
  } as unknown as Container;
}

function host(name: string, checkpoint = true): Host {
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Host',
    metadata: { name },
    spec: {},
    status: { checkpoint: { supported: checkpoint, message: '' } },
  } as unknown as Host;
}

function migration(
  mode: 'Checkpoint' | 'Restart',
  status?: Partial<NonNullable<Migration['status']>>,
): Migration {
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Migration',
    metadata: { name: 'move', namespace: ns, uid: 'm-uid', generation: 1 },
    spec: { container: 'app', mode, fallback: 'None', timeoutSeconds: 120 },
    ...(status ? { status: status as Migration['status'] } : {}),
  };
}

const agentCondition = (type: string, status: 'True' | 'False', message = ''): Condition => ({
  type,
  status,
  reason: type,
  message,
  lastTransitionTime: '2026-01-01T00:00:00Z',
});

/**
 * Caches we fill by hand, and an apiserver that records each write in order and applies it (to
 * the cache at once, as if the watch were instant). Like the real one, it refuses a status write
 * from a resourceVersion other than the latest with 409 Conflict.
 */
function setup(m: Migration, containers: Container[], hosts = [host('h1'), host('h2')]) {
  const clock = new FakeClock(Date.now());
  const migrations = new Store<Migration>();
  let version = 1;
  migrations.set({ ...m, metadata: { ...m.metadata, resourceVersion: String(version) } });
  const cache = new Store<Container>({ [byHost]: (c) => [c.spec?.nodeName ?? ''] });
  for (const c of containers) cache.set(c);
  const hostCache = new Store<Host>();
  for (const h of hosts) hostCache.set(h);
  const calls: string[] = [];
  const secrets = new Set<string>();
  // What the scheduler would say of a copy: room somewhere unless a test takes it away.
  const room = { nowhere: undefined as string | undefined };
  const reconciler = new MigrationReconciler({
    migrations,
    containers: cache,
    hosts: hostCache,
    clock,
    recorder: quietRecorder(clock),
    placement: { whyUnplaceable: () => room.nowhere },
    api: {
      applyStatus: async (_name, status, opts) => {
        if (opts.resourceVersion !== String(version)) {
          calls.push(`refused status ${(status as { phase?: string }).phase}`);
          throw Object.assign(new Error('the object has been modified'), { code: 409 });
        }
        version++;
        const live = migrations.get(`${ns}/move`)!;
        const next = {
          ...live,
          metadata: { ...live.metadata, resourceVersion: String(version) },
          status: status as Migration['status'],
        };
        calls.push(`status ${next.status?.phase}`);
        migrations.set(next);
        return next;
      },
      get: async () => migrations.get(`${ns}/move`),
      mergePatch: async (_name, patch) => {
        const { finalizers } = (patch as { metadata: { finalizers: string[] } }).metadata;
        version++;
        const live = migrations.get(`${ns}/move`)!;
        const next = {
          ...live,
          metadata: { ...live.metadata, finalizers, resourceVersion: String(version) },
        };
        calls.push(`finalizers ${JSON.stringify(finalizers)}`);
        migrations.set(next);
        return next;
      },
    },
    containersApi: {
      create: async (c) => {
        calls.push(`create ${c.metadata.name}`);
        const created = { ...c, metadata: { ...c.metadata, uid: `${c.metadata.name}-uid` } } as Container;
        cache.set(created);
        return created;
      },
      delete: async ({ name }) => {
        calls.push(`delete ${name}`);
        return cache.delete(`${ns}/${name}`) !== undefined;
      },
      mergePatch: async ({ name }, patch) => {
        calls.push(`patch ${name} ${JSON.stringify(patch)}`);
        const live = cache.get(`${ns}/${name}`)!;
        const meta = (patch as { metadata: { labels?: object; annotations?: object } }).metadata;
        const merge = (a: object | undefined, b: object | undefined) =>
          Object.fromEntries(Object.entries({ ...a, ...b }).filter(([, v]) => v !== null));
        const next = {
          ...live,
          metadata: {
            ...live.metadata,
            labels: merge(live.metadata.labels, meta.labels),
            annotations: merge(live.metadata.annotations, meta.annotations),
          },
        } as Container;
        cache.set(next);
        return next;
      },
    },
    secrets: {
      ensure: async (name) => void secrets.add(name),
      remove: async (name) => void secrets.delete(name),
    },
  });
  const reconcile = () => reconciler.reconcile(`${ns}/move`, ctx);
  const status = () => migrations.get(`${ns}/move`)!.status;
  return { reconcile, status, calls, cache, migrations, secrets, room };
}

describe('MigrationReconciler, checkpoint mode', () => {
  it('creates the target to restore, unbound and kept off the source, with a transfer token', async () => {
    const t = setup(migration('Checkpoint'), [container('app', 'h1')]);
    await t.reconcile();
    const target = t.cache.get(`${ns}/${targetName(migration('Checkpoint'), 'checkpoint')}`)!;
    assert.equal(target.spec.nodeName, undefined);
    assert.equal(target.metadata.labels?.[migrationLabel], 'move');
    assert.equal(target.metadata.annotations?.[restoreFromAnnotation], 'move');
    assert.equal(target.metadata.annotations?.['gantry.dev/migration-avoid-host'], 'h1');
    assert.deepEqual([...t.secrets], ['gantry-migration-m-uid']);
    assert.deepEqual(
      t.migrations.get(`${ns}/move`)!.metadata.finalizers,
      [transferTokenFinalizer],
      'the Migration holds the finalizer that removes its token',
    );
    assert.ok(
      t.calls.indexOf(`finalizers ["${transferTokenFinalizer}"]`) === 0,
      'the finalizer comes before anything else',
    );
    // Once the scheduler binds it, the source agent is asked to checkpoint.
    t.cache.set({ ...target, spec: { ...target.spec, nodeName: 'h2' } });
    await t.reconcile();
    assert.equal(t.status()?.phase, 'Checkpointing');
    assert.equal(t.status()?.targetHost, 'h2');
    // The one Container the target agent may restore into: this name, this UID, on this Host.
    assert.equal(t.status()?.targetContainer, target.metadata.name);
    assert.equal(t.status()?.targetContainerUID, target.metadata.uid);
  });

  it('removes the transfer token of a Migration deleted in flight, then its finalizer', async () => {
    const t = setup(migration('Checkpoint'), [container('app', 'h1')]);
    await t.reconcile();
    assert.deepEqual([...t.secrets], ['gantry-migration-m-uid']);
    const live = t.migrations.get(`${ns}/move`)!;
    t.migrations.set({ ...live, metadata: { ...live.metadata, deletionTimestamp: new Date() } });
    await t.reconcile();
    assert.deepEqual([...t.secrets], [], 'the token is gone');
    assert.deepEqual(t.migrations.get(`${ns}/move`)!.metadata.finalizers, []);
  });

  it('removes the token and the finalizer once the Migration ended', async () => {
    const t = setup(migration('Checkpoint'), [container('app', 'h1')]);
    await t.reconcile();
    const live = t.migrations.get(`${ns}/move`)!;
    t.migrations.set({ ...live, status: { ...live.status, phase: 'Failed' } as Migration['status'] });
    await t.reconcile();
    assert.deepEqual([...t.secrets], []);
    assert.deepEqual(t.migrations.get(`${ns}/move`)!.metadata.finalizers, []);
  });

  it('fails, freezing nothing, when a Container it did not create already has the target name', async () => {
    const name = targetName(migration('Checkpoint'), 'checkpoint');
    // The name follows from the Migration's UID, so anyone who can read it can create it first.
    const squatter = container(name, 'h2');
    const t = setup(migration('Checkpoint'), [container('app', 'h1'), squatter]);
    await t.reconcile();
    assert.equal(t.status()?.phase, 'Failed');
    assert.match(t.status()?.message ?? '', new RegExp(`a Container named ${name} exists already`));
    assert.equal(t.status()?.targetContainerUID, undefined);
    assert.ok(
      !t.calls.some((c) => c.startsWith('create') || c.startsWith('delete')),
      'nothing created or deleted',
    );
  });

  it('decides nothing on a cache that has not seen its own last write', async () => {
    const t = setup(migration('Checkpoint'), [container('app', 'h1')]);
    const pending = t.migrations.get(`${ns}/move`)!;
    await t.reconcile();
    const name = targetName(migration('Checkpoint'), 'checkpoint');
    const target = t.cache.get(`${ns}/${name}`)!;
    t.cache.set({ ...target, spec: { ...target.spec, nodeName: 'h2' } });
    await t.reconcile();
    const checkpointing = t.migrations.get(`${ns}/move`)!;
    assert.equal(checkpointing.status?.phase, 'Checkpointing');
    // The source agent froze it at once, and its Container's update reached the controller before
    // the Migration's own: read as Pending, the source looks "not running".
    const source = t.cache.get(`${ns}/app`)!;
    t.cache.set({ ...source, status: { ...source.status, phase: 'Migrating' } } as Container);
    t.migrations.set(pending);
    const writes = t.calls.length;
    assert.deepEqual(await t.reconcile(), { requeueAfter: 1000 });
    assert.deepEqual(t.calls.slice(writes), ['refused status Failed'], 'the stale decision was not written');
    t.migrations.set(checkpointing);
    await t.reconcile();
    assert.equal(t.status()?.phase, 'Checkpointing', 'on the newer object it waits for the checkpoint');
  });

  it('falls back or fails before anything froze when the source Host cannot checkpoint', async () => {
    const t = setup(migration('Checkpoint'), [container('app', 'h1')], [host('h1', false), host('h2')]);
    await t.reconcile();
    assert.equal(t.status()?.phase, 'Failed');
    assert.match(t.status()?.message ?? '', /h1 cannot checkpoint/);
    assert.ok(!t.calls.some((c) => c.startsWith('create')), 'no target was created');
  });

  it('refuses to checkpoint a stopped Container, saying why, and falls back to a restart when asked', async () => {
    const stopped = {
      ...container('app', 'h1'),
      spec: { image: 'registry.example/counter:1', nodeName: 'h1', stopped: true },
      status: { phase: 'Stopped', conditions: [{ type: 'Ready', status: 'False' }] },
    } as unknown as Container;
    const failing = setup(migration('Checkpoint'), [stopped]);
    await failing.reconcile();
    assert.equal(failing.status()?.phase, 'Failed');
    assert.match(failing.status()?.message ?? '', /app is stopped: there is no process to checkpoint/);
    assert.ok(!failing.calls.some((c) => c.startsWith('create')), 'no target was created');

    const m = migration('Checkpoint');
    const falling = setup({ ...m, spec: { ...m.spec, fallback: 'Restart' } }, [stopped]);
    await falling.reconcile();
    assert.equal(falling.status()?.phase, 'Pending');
    assert.match(falling.status()?.message ?? '', /falling back to Restart/);
  });

  it('waits for a Host whose agent has not finished its checkpoint probe', async () => {
    const starting = {
      ...host('h1'),
      status: { conditions: [{ type: 'Ready', status: 'True' }] },
    } as unknown as Host;
    const t = setup(migration('Checkpoint'), [container('app', 'h1')], [starting, host('h2')]);
    assert.deepEqual(await t.reconcile(), { requeueAfter: 1000 });
    assert.deepEqual(t.calls, [], 'no verdict, no target, no status yet');
  });

  it('after the freeze, deletes the target before it asks the source to resume', async () => {
    const name = targetName(migration('Checkpoint'), 'checkpoint');
    const m = migration('Checkpoint', {
      phase: 'Transferring',
      sourceHost: 'h1',
      targetHost: 'h2',
      targetContainer: name,
      startedAt: new Date().toISOString(),
      frozenAt: new Date().toISOString(),
      conditions: [agentCondition('Transferred', 'False', 'connection refused')] as never,
    });
    const t = setup(m, [container('app', 'h1'), container(name, 'h2')]);
    await t.reconcile();
    assert.deepEqual(t.calls, [`delete ${name}`], 'first only the target goes');
    await t.reconcile();
    assert.equal(t.status()?.phase, 'RollingBack');
    assert.match(t.status()?.message ?? '', /transfer failed: connection refused/);
    // The source agent resumed it.
    t.migrations.set({
      ...t.migrations.get(`${ns}/move`)!,
      status: { ...t.status()!, conditions: [agentCondition('Resumed', 'True')] as never },
    });
    await t.reconcile();
    assert.equal(t.status()?.phase, 'RolledBack');
    assert.deepEqual([...t.secrets], [], 'the token is gone');
  });

  it('hands over in an order that keeps one replica counted: mark the source, release the target, delete the source', async () => {
    const name = targetName(migration('Checkpoint'), 'checkpoint');
    const frozen = new Date(Date.now() - 2000);
    const m = migration('Checkpoint', {
      phase: 'Restoring',
      sourceHost: 'h1',
      targetHost: 'h2',
      targetContainer: name,
      startedAt: frozen.toISOString(),
      frozenAt: frozen.toISOString(),
      restoredAt: new Date(frozen.getTime() + 1500).toISOString(),
      conditions: [agentCondition('Restored', 'True')] as never,
    });
    const target = container(name, 'h2', { labels: { [migrationLabel]: 'move' } });
    const t = setup(m, [container('app', 'h1'), target]);
    await t.reconcile();
    assert.deepEqual(
      t.calls.map((c) => c.split(' ').slice(0, 2).join(' ')),
      ['patch app', `patch ${name}`, 'delete app', 'status Succeeded'],
    );
    assert.match(t.calls[0]!, new RegExp(`"${migratedToAnnotation}":"${name}"`));
    assert.equal(t.cache.get(`${ns}/${name}`)?.metadata.labels?.[migrationLabel], undefined);
    assert.equal(t.status()?.downtimeSeconds, 1.5);
  });
});

describe('MigrationReconciler, a named target Host and host ports', () => {
  const publishing = (c: Container, hostPort: number): Container => ({
    ...c,
    spec: { ...c.spec, ports: [{ containerPort: 8080, protocol: 'TCP', hostPort }] },
  });
  const toH2 = (mode: 'Checkpoint' | 'Restart') => {
    const m = migration(mode);
    return { ...m, spec: { ...m.spec, targetHost: 'h2' } };
  };

  for (const mode of ['Checkpoint', 'Restart'] as const) {
    it(`${mode}: fails, creating and stopping nothing, where another Container holds the port`, async () => {
      const t = setup(toH2(mode), [
        publishing(container('app', 'h1'), 8080),
        publishing(container('web', 'h2'), 8080),
      ]);
      await t.reconcile();
      assert.equal(t.status()?.phase, 'Failed');
      assert.equal(t.status()?.message, 'Host h2 has the host port 8080/TCP in use (Container ns/web)');
      assert.equal(t.status()?.conditions?.find((c) => c.type === 'Ready')?.reason, 'HostPortInUse');
      assert.deepEqual(
        t.calls.filter((c) => c.startsWith('create') || c.startsWith('delete')),
        [],
        'no target created, no source deleted',
      );
    });
  }

  it('moves it where the port is free, and never counts its own copy against it', async () => {
    const t = setup(toH2('Checkpoint'), [
      publishing(container('app', 'h1'), 8080),
      publishing(container('web', 'h2'), 8081),
    ]);
    await t.reconcile();
    assert.equal(t.status()?.phase, 'Checkpointing');
    const target = t.cache.get(`${ns}/${targetName(migration('Checkpoint'), 'checkpoint')}`)!;
    assert.equal(target.spec.nodeName, 'h2');
    // Its status write lost: the next reconcile starts over from Pending, with the copy on h2.
    const live = t.migrations.get(`${ns}/move`)!;
    t.migrations.set({ ...live, status: undefined });
    await t.reconcile();
    assert.equal(t.status()?.phase, 'Checkpointing');
  });
});

describe('MigrationReconciler, restart mode', () => {
  it('fails at once, stopping nothing, when the target Host does not exist', async () => {
    const m = migration('Restart');
    const t = setup({ ...m, spec: { ...m.spec, targetHost: 'nowhere' } }, [container('app', 'h1')]);
    await t.reconcile();
    assert.equal(t.status()?.phase, 'Failed');
    assert.equal(t.status()?.message, 'Host nowhere does not exist');
    assert.deepEqual(
      t.calls.filter((c) => !c.startsWith('status')),
      [],
      'no target created, no source deleted',
    );
  });

  it('stops a bare Container first and lifts the gate of its copy after', async () => {
    const t = setup(migration('Restart'), [container('app', 'h1')]);
    await t.reconcile();
    const name = targetName(migration('Restart'), 'restart');
    assert.equal(t.cache.get(`${ns}/${name}`)?.metadata.annotations?.[schedulingGateAnnotation], 'migration');
    await t.reconcile();
    assert.ok(t.calls.includes('delete app'), 'the source goes first');
    await t.reconcile();
    assert.equal(t.cache.get(`${ns}/${name}`)?.metadata.annotations?.[schedulingGateAnnotation], undefined);
  });

  it('keeps a bare Container running while no Host has room for its copy, saying so', async () => {
    const t = setup(migration('Restart'), [container('app', 'h1')]);
    t.room.nowhere = '0/2 Hosts are available: 1 is the source, 1 has too little memory';
    await t.reconcile();
    const result = await t.reconcile();
    assert.ok(!t.calls.includes('delete app'), 'the source runs on');
    assert.equal(
      t.status()?.message,
      'Waiting for a Host with room (0/2 Hosts are available: 1 is the source, 1 has too little memory); it keeps running on h1',
    );
    assert.ok(result && 'requeueAfter' in result, 'it looks again later');
    const writes = t.calls.length;
    await t.reconcile();
    assert.equal(t.calls.length, writes, 'an unchanged wait writes nothing');
    t.room.nowhere = undefined;
    await t.reconcile();
    assert.ok(t.calls.includes('delete app'), 'room found: the source stops, then its copy is released');
  });

  it('moves a stopped Container stopped: done once its copy reports Stopped, with no downtime to tell', async () => {
    const stopped = {
      ...container('app', 'h1'),
      spec: { image: 'registry.example/counter:1', nodeName: 'h1', stopped: true },
      status: { phase: 'Stopped', conditions: [{ type: 'Ready', status: 'False' }] },
    } as unknown as Container;
    const t = setup(migration('Restart'), [stopped]);
    await t.reconcile();
    const name = targetName(migration('Restart'), 'restart');
    assert.equal(t.cache.get(`${ns}/${name}`)?.spec.stopped, true, 'the copy is stopped too');
    await t.reconcile(); // the source goes
    await t.reconcile(); // the gate is lifted
    const copy = t.cache.get(`${ns}/${name}`)!;
    t.cache.set({ ...copy, spec: { ...copy.spec, nodeName: 'h2' } });
    await t.reconcile();
    assert.equal(t.status()?.phase, 'Restoring', 'bound, not reported yet');
    t.cache.set({
      ...t.cache.get(`${ns}/${name}`)!,
      status: { phase: 'Stopped', conditions: [{ type: 'Ready', status: 'False' }] } as never,
    });
    await t.reconcile();
    assert.equal(t.status()?.phase, 'Succeeded');
    assert.equal(t.status()?.message, `Stopped on h2 as ${name}, as it was`);
    assert.equal(t.status()?.downtimeSeconds, undefined);
  });

  it('on timeout with the source still there, removes the copy so only one remains', async () => {
    const name = targetName(migration('Restart'), 'restart');
    const m = migration('Restart', {
      phase: 'Restoring',
      sourceHost: 'h1',
      targetContainer: name,
      startedAt: new Date(Date.now() - 200_000).toISOString(),
    });
    const owned = {
      ownerReferences: [
        { apiVersion: 'gantry.dev/v1alpha1', kind: 'Workload', name: 'w', uid: 'w', controller: true },
      ],
    };
    const copy = container(name, undefined, { ...owned, labels: { [migrationLabel]: 'move' } });
    const t = setup(m, [container('app', 'h1', owned), copy]);
    await t.reconcile();
    assert.ok(t.calls.includes(`delete ${name}`));
    assert.ok(!t.calls.includes('delete app'));
    assert.equal(t.status()?.phase, 'Failed');
    assert.match(t.status()?.message ?? '', /timed out .* it stays on h1/);
  });
});
