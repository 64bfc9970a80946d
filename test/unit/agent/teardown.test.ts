// Removing what the runtime holds for a Container: on deletion, behind the agent's finalizer (phase
// Terminating, a graceful stop, then the sandbox and the logs, then the finalizer lifted), and in
// the orphan sweep, for runtime objects whose Container is gone.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runtimeCleanupFinalizer, type ContainerStatus } from '../../../src/api/v1alpha1/index.js';
import { labels } from '../../../src/agent/runtimespec.js';
import { log } from '../controller/fakes.js';
import { agent, container, ns, type Agent } from './fakes.js';

describe('Container teardown', () => {
  /** Marks the Container `name` deleted in the agent's cache, as the apiserver's watch would. */
  const remove = (a: Agent, name: string) => {
    const live = a.cache.get(`${ns}/${name}`)!;
    a.cache.set({ ...live, metadata: { ...live.metadata, deletionTimestamp: new Date() } });
  };

  it('on deletion, stops the process gracefully, then removes the sandbox and logs and lifts the finalizer', async () => {
    const a = agent();
    const rc = await a.run(container('app', { terminationGracePeriodSeconds: 5 }));
    const logs = path.join(a.stateDir, 'logs', `${ns}_app_app-uid`);
    assert.ok(fs.existsSync(logs));
    assert.deepEqual(a.cache.get(`${ns}/app`)!.metadata.finalizers, [runtimeCleanupFinalizer]);
    remove(a, 'app');

    await a.reconcile('app');
    assert.ok(a.recorder.events.includes('Normal Killing: Stopping container (grace period 5s)'));
    await a.queued('app');
    await a.reconcile('app');
    assert.deepEqual(
      a.runtime.calls.map((x) => [x.method, x.timeout]),
      [
        ['StopContainer', 5],
        ['RemovePodSandbox', undefined],
      ],
    );
    assert.equal(a.runtime.calls[0]!.id, rc.id);
    assert.deepEqual(await a.runtime.held('app-uid'), { sandboxes: [], containers: [] });
    assert.equal(fs.existsSync(logs), false);
    assert.deepEqual(a.api.finalizers.at(-1), { name: 'app', finalizers: [] });
  });

  it('holds no worker while a process uses its grace period: the reconcile returns, and nothing stops twice', async () => {
    const a = agent();
    await a.run(container('stubborn', { terminationGracePeriodSeconds: 30 }));
    let exit!: () => void;
    const stop = a.runtime.stopContainer.bind(a.runtime);
    a.runtime.stopContainer = async (req) => {
      await new Promise<void>((resolve) => (exit = resolve)); // the process ignores SIGTERM
      return stop(req);
    };
    remove(a, 'stubborn');

    await a.reconcile('stubborn'); // returns while the stop runs
    await a.reconcile('stubborn'); // a resync meanwhile
    assert.equal(a.api.status('stubborn')?.phase, 'Terminating');
    assert.deepEqual(a.enqueued, [], 'not queued before the stop ends');
    assert.deepEqual(
      a.recorder.events.filter((e) => e.includes('Killing')),
      ['Normal Killing: Stopping container (grace period 30s)'],
      'one stop, one event',
    );
    const other = await a.run(container('other'));
    assert.equal(other.state, 'CONTAINER_RUNNING', 'another Container starts meanwhile');

    exit();
    await a.queued('stubborn');
    await a.reconcile('stubborn');
    assert.deepEqual(await a.runtime.held('stubborn-uid'), { sandboxes: [], containers: [] });
    assert.deepEqual(a.api.finalizers.at(-1), { name: 'stubborn', finalizers: [] });
  });

  it('retries a stop that failed, with back-off (the reconcile fails)', async () => {
    const a = agent();
    await a.run(container('app'));
    const stop = a.runtime.stopContainer.bind(a.runtime);
    a.runtime.stopContainer = async () => {
      throw new Error('the runtime is away');
    };
    remove(a, 'app');
    await a.reconcile('app');
    await a.queued('app');
    await assert.rejects(a.reconcile('app'), /the runtime is away/);
    a.runtime.stopContainer = stop;
    await a.reconcile('app');
    await a.queued('app', 2);
    await a.reconcile('app');
    assert.deepEqual(a.api.finalizers.at(-1), { name: 'app', finalizers: [] });
  });

  it('on deletion, shows phase Terminating before the stop begins, keeping what ran', async () => {
    const a = agent();
    const rc = await a.run(container('app', { terminationGracePeriodSeconds: 30 }));
    const ran = a.api.status('app')!;
    remove(a, 'app');
    let atStop: Partial<ContainerStatus> | undefined;
    const stop = a.runtime.stopContainer.bind(a.runtime);
    a.runtime.stopContainer = async (req) => {
      atStop = a.api.status('app');
      return stop(req);
    };

    await a.reconcile('app');
    await a.queued('app');
    assert.equal(atStop?.phase, 'Terminating', 'written before the process got SIGTERM');
    assert.equal(atStop?.reason, 'Deleted');
    assert.match(atStop?.message ?? '', /SIGTERM, and SIGKILL if it still runs after 30s/);
    assert.equal(atStop?.containerID, rc.id);
    assert.equal(atStop?.ip, ran.ip);
    assert.equal(atStop?.restartCount, 0);
    const conditions = Object.fromEntries((atStop?.conditions ?? []).map((c) => [c.type, c]));
    assert.equal(conditions.Ready?.status, 'False');
    assert.equal(conditions.Ready?.reason, 'Deleted');
    assert.equal(conditions.Reconciling?.status, 'True', 'kstatus: work in progress, not stalled');
    assert.equal(conditions.Stalled, undefined);
  });

  it('leaves the runtime alone for a deleted Container that never got the finalizer', async () => {
    const a = agent();
    await a.run(container('app'));
    const live = a.cache.get(`${ns}/app`)!;
    a.cache.set({ ...live, metadata: { ...live.metadata, finalizers: [], deletionTimestamp: new Date() } });
    await a.reconcile('app');
    assert.deepEqual(a.runtime.calls, []);
    assert.equal((await a.runtime.held('app-uid')).containers.length, 1, 'the orphan sweep will remove it');
  });

  it('the orphan sweep removes what belongs to Containers that are gone, and nothing else', async () => {
    const a = agent();
    await a.run(container('gone'));
    const kept = await a.run(container('kept'));
    const foreign = await a.runtime.runPodSandbox({
      config: { metadata: { name: 'foreign', namespace: 'other', uid: 'f', attempt: 0 }, labels: {} },
    });
    a.cache.delete(`${ns}/gone`);

    assert.equal(await a.reconciler.sweepOrphans(log), 1);
    assert.deepEqual(await a.runtime.held('gone-uid'), { sandboxes: [], containers: [] });
    const { sandboxes, containers } = await a.runtime.held('kept-uid');
    assert.equal(sandboxes.length, 1);
    assert.deepEqual(
      containers.map((c) => [c.id, c.state]),
      [[kept.id, 'CONTAINER_RUNNING']],
    );
    const { items } = await a.runtime.listPodSandbox({ filter: { id: foreign.podSandboxId } });
    assert.equal(items.length, 1, 'a sandbox the agent did not make stays');
    assert.equal(items[0]!.labels[labels.managedBy], undefined);
    assert.equal(await a.reconciler.sweepOrphans(log), 0, 'nothing left to sweep');
  });
});
