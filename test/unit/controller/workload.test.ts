// The Workload controller's pure parts (template hash, status and conditions) and its reconciler
// against in-memory caches: expectations keep a lagging cache from causing double creates.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiException } from '@kubernetes/client-node';
import {
  migratedToAnnotation,
  migrationLabel,
  parseSpec,
  runtimeCleanupFinalizer,
  templateHashLabel,
  type Container,
  type Workload,
  type WorkloadSpec,
  type WorkloadSpecInput,
  type WorkloadStatus,
} from '../../../src/api/v1alpha1/index.js';
import { objectKey } from '../../../src/kube/keys.js';
import type { Replica } from '../../../src/controller/rollout.js';
import { countedReplicas, templateHash } from '../../../src/controller/workloadreplicas.js';
import { workloadStatus, type StatusInput } from '../../../src/controller/workloadstatus.js';
import { ctx } from './fakes.js';
import { workloadReconciler } from './workloadfakes.js';

function spec(over: Partial<WorkloadSpecInput> = {}): WorkloadSpec {
  const parsed = parseSpec('Workload', {
    replicas: 4,
    selector: { matchLabels: { app: 'web' } },
    template: { metadata: { labels: { app: 'web' } }, spec: { image: 'gantry/web:1' } },
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 1 } },
    ...over,
  });
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
  return parsed.value;
}

describe('templateHash', () => {
  it('is the same for a template with its defaults spelled out or left out', () => {
    const implicit = spec();
    const explicit = spec({
      template: {
        metadata: { labels: { app: 'web' } },
        spec: { image: 'gantry/web:1', restartPolicy: 'Always', terminationGracePeriodSeconds: 30 },
      },
    });
    assert.equal(templateHash(implicit.template), templateHash(explicit.template));
    assert.match(templateHash(implicit.template), /^[0-9a-f]{10}$/);
  });

  it('changes with the image and with the template labels, not with replicas or placement', () => {
    const a = templateHash(spec().template);
    assert.notEqual(
      a,
      templateHash(spec({ template: { ...spec().template, spec: { image: 'gantry/web:2' } } }).template),
    );
    assert.equal(a, templateHash(spec({ replicas: 9, placement: { maxSkew: 3 } }).template));
  });
});

const replica = (name: string, revision: string, ready: boolean): Replica => ({
  name,
  revision,
  ready,
  nodeName: 'h1',
  createdAt: 0,
  deleting: false,
  finished: false,
});

function status(over: Partial<StatusInput>) {
  return workloadStatus({
    generation: 2,
    spec: spec(),
    revision: 'new',
    replicas: [],
    previous: undefined,
    now: 1_000_000,
    ...over,
  });
}

const condition = (s: ReturnType<typeof status>, type: string) => s.conditions?.find((c) => c.type === type);

describe('workloadStatus', () => {
  it('is Ready, Available and done Progressing when every replica of the revision is ready', () => {
    const s = status({ replicas: ['a', 'b', 'c', 'd'].map((n) => replica(n, 'new', true)) });
    assert.deepEqual(
      {
        replicas: s.replicas,
        readyReplicas: s.readyReplicas,
        updatedReplicas: s.updatedReplicas,
        availableReplicas: s.availableReplicas,
        selector: s.selector,
        currentRevision: s.currentRevision,
        observedGeneration: s.observedGeneration,
      },
      {
        replicas: 4,
        readyReplicas: 4,
        updatedReplicas: 4,
        availableReplicas: 4,
        selector: 'app=web',
        currentRevision: 'new',
        observedGeneration: 2,
      },
    );
    assert.equal(condition(s, 'Ready')?.status, 'True');
    assert.equal(condition(s, 'Available')?.status, 'True');
    assert.equal(condition(s, 'Progressing')?.reason, 'NewRevisionAvailable');
  });

  it('during a rolling update is not Ready, and Available while at most maxUnavailable are down', () => {
    const replicas = [replica('o1', 'old', true), replica('o2', 'old', true), replica('n1', 'new', true)];
    const s = status({ replicas: [...replicas, replica('n2', 'new', false)] });
    assert.equal(condition(s, 'Ready')?.reason, 'RollingUpdate');
    assert.equal(condition(s, 'Available')?.status, 'True');
    assert.equal(condition(s, 'Progressing')?.reason, 'RolloutProgressing');
    const down = status({ replicas: [replica('o1', 'old', true), replica('n1', 'new', false)] });
    assert.equal(condition(down, 'Available')?.status, 'False');
  });

  it('reports ProgressDeadlineExceeded when nothing moved for progressDeadlineSeconds', () => {
    const replicas = [replica('n1', 'new', false)];
    const first = status({ replicas, now: 0 });
    assert.equal(first.lastProgressTime, '1970-01-01T00:00:00Z');
    const waiting = status({ replicas, previous: first, now: 599_000 });
    assert.equal(condition(waiting, 'Progressing')?.reason, 'RolloutProgressing');
    // Counted from status.lastProgressTime, not from anything a restarted controller would lose.
    const stuck = status({ replicas, previous: waiting, now: 601_000 });
    assert.equal(stuck.lastProgressTime, '1970-01-01T00:00:00Z', 'no progress, no move');
    assert.equal(condition(stuck, 'Progressing')?.status, 'False');
    assert.equal(condition(stuck, 'Progressing')?.reason, 'ProgressDeadlineExceeded');
    assert.equal(condition(stuck, 'Ready')?.reason, 'ProgressDeadlineExceeded');
    const legacy = status({ replicas, previous: { ...waiting, lastProgressTime: undefined }, now: 601_000 });
    assert.equal(
      condition(legacy, 'Progressing')?.reason,
      'RolloutProgressing',
      'no record: counts from now',
    );
  });

  it('never times out a completed rollout that later loses a replica', () => {
    const all = ['a', 'b', 'c', 'd'].map((n) => replica(n, 'new', true));
    const done = status({ replicas: all, now: 0 });
    const lost = status({ replicas: all.slice(1), previous: done, now: 700_000 });
    assert.equal(condition(lost, 'Progressing')?.reason, 'NewRevisionAvailable');
    assert.equal(condition(lost, 'Ready')?.reason, 'ScalingUp');
  });

  it("says why a replica waits to be scheduled in Ready's message", () => {
    const s = status({
      unschedulable: 'web-x is not scheduled: 0/2 hosts are available: 2 insufficient cpu.',
    });
    assert.match(condition(s, 'Ready')?.message ?? '', /0\/2 hosts are available/);
  });
});

describe('countedReplicas', () => {
  const c = (name: string, labels: Record<string, string> = {}, annotations: Record<string, string> = {}) =>
    ({ metadata: { name, labels, annotations } }) as unknown as Container;
  const names = (cs: Container[]) => countedReplicas(cs).map((x) => x.metadata.name);

  it('counts a moving replica once at every step of the hand-over', () => {
    const moving = { [migrationLabel]: 'move-a' };
    // The target exists but has not taken over: the source counts.
    assert.deepEqual(names([c('a'), c('a-m1', moving), c('b')]), ['a', 'b']);
    // The source is marked replaced while the target is still labelled: still the source.
    assert.deepEqual(names([c('a', {}, { [migratedToAnnotation]: 'a-m1' }), c('a-m1', moving)]), ['a']);
    // The target is released: now it counts, the source no longer.
    assert.deepEqual(names([c('a', {}, { [migratedToAnnotation]: 'a-m1' }), c('a-m1')]), ['a-m1']);
  });

  it('counts a source again when its target is gone (the move was rolled back)', () => {
    assert.deepEqual(names([c('a', {}, { [migratedToAnnotation]: 'a-m1' })]), ['a']);
  });
});

describe('WorkloadReconciler', () => {
  const workload: Workload = {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Workload',
    metadata: { name: 'web', namespace: 'ns', uid: 'w-uid', generation: 1 },
    spec: spec({ replicas: 3 }),
  };
  const setup = (wl: Workload = workload) => workloadReconciler(wl);

  it('creates owned, labelled Containers named after the template hash', async () => {
    const { api, reconciler, ctx } = setup();
    await reconciler.reconcile('ns/web', ctx);
    assert.equal(api.created.length, 3);
    const hash = templateHash(workload.spec.template);
    for (const c of api.created) {
      assert.match(c.metadata.name!, new RegExp(`^web-${hash}-[bcdfghjklmnpqrstvwxz2456789]{5}$`));
      assert.deepEqual(c.metadata.labels, {
        app: 'web',
        'gantry.dev/workload': 'web',
        [templateHashLabel]: hash,
      });
      assert.deepEqual(c.metadata.ownerReferences, [
        {
          apiVersion: 'gantry.dev/v1alpha1',
          kind: 'Workload',
          name: 'web',
          uid: 'w-uid',
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
      assert.equal(c.spec.image, 'gantry/web:1');
    }
  });

  it("creates replicas bound to the scheduler's Host, with the agent's finalizer; a failed create gives the Host back", async () => {
    const { api, placement, reconciler, ctx } = setup();
    placement.host = 'h1';
    await reconciler.reconcile('ns/web', ctx);
    assert.deepEqual(
      api.created.map((c) => [c.spec.nodeName, c.metadata.finalizers]),
      Array(3).fill(['h1', [runtimeCleanupFinalizer]]),
    );
    assert.deepEqual(
      placement.settled,
      api.created.map((c) => [`ns/${c.metadata.name}`, true]),
    );

    const refused = setup();
    refused.placement.host = 'h1';
    refused.api.containersApi.create = async () => {
      throw new ApiException(403, 'refused', '{"message":"quota exceeded"}', {});
    };
    await assert.rejects(refused.reconciler.reconcile('ns/web', ctx));
    assert.deepEqual(
      refused.placement.settled,
      refused.placement.placed.map((n) => [`ns/${n}`, false]),
    );
    assert.equal(refused.placement.settled.length, 1, 'the slow start stopped after the first');
  });

  it('creates at most 500 Containers a pass, the rest once the cache shows them', async () => {
    const { api, containers, reconciler, ctx } = setup({ ...workload, spec: spec({ replicas: 1_200 }) });
    await reconciler.reconcile('ns/web', ctx);
    assert.equal(api.created.length, 500);
    for (const c of api.created) {
      containers.set({ ...c, metadata: { ...c.metadata, uid: c.metadata.name } });
      reconciler.observe(c);
    }
    await reconciler.reconcile('ns/web', ctx);
    assert.equal(api.created.length, 1_000);
  });

  it('does not create again while its cache has not shown its own creates', async () => {
    const { api, containers, reconciler, ctx } = setup();
    await reconciler.reconcile('ns/web', ctx);
    const again = await reconciler.reconcile('ns/web', ctx);
    assert.equal(api.created.length, 3, 'the lagging cache shows no Containers, yet nothing more is created');
    assert.ok(again && again.requeueAfter! > 0, 'comes back when the expectations would expire');
    for (const c of api.created) {
      containers.set({ ...c, metadata: { ...c.metadata, uid: c.metadata.name } });
      reconciler.observe(c);
    }
    await reconciler.reconcile('ns/web', ctx);
    assert.equal(api.created.length, 3, 'the cache caught up: the count is right');
    assert.equal(api.deleted.length, 0);
  });

  it('writes its status at most once a second while replicas keep changing', async () => {
    const { api, clock, containers, reconciler, ctx } = setup();
    await reconciler.reconcile('ns/web', ctx);
    for (const c of api.created) {
      containers.set({ ...c, metadata: { ...c.metadata, uid: c.metadata.name } });
      reconciler.observe(c);
    }
    assert.equal(api.statuses.length, 1);
    const [first, second] = api.created;
    const run = (c: Container) =>
      containers.set({
        ...c,
        metadata: { ...c.metadata, uid: c.metadata.name },
        status: { phase: 'Running' },
      } as Container);
    run(first!);
    clock.advance(300);
    const wait = await reconciler.reconcile('ns/web', ctx);
    assert.equal(api.statuses.length, 1, 'coalesced with the write 300 ms ago');
    assert.equal(wait?.requeueAfter, 700, 'back when the second is over');
    run(second!);
    clock.advance(700);
    await reconciler.reconcile('ns/web', ctx);
    assert.equal(api.statuses.length, 2);
    assert.equal((api.statuses[1] as WorkloadStatus).replicas, 3);
  });

  it('gives up on expectations that are never met once they expire', async () => {
    const { api, clock, reconciler, ctx } = setup();
    await reconciler.reconcile('ns/web', ctx);
    clock.advance(121_000);
    await reconciler.reconcile('ns/web', ctx);
    assert.equal(api.created.length, 6);
  });

  it('stops quietly when the namespace is being deleted, and fails on other refusals', async () => {
    const { api, reconciler } = setup();
    const refuse = (code: number, body: object) => async () => {
      throw new ApiException(code, 'refused', JSON.stringify(body), {});
    };
    api.containersApi.create = refuse(403, { details: { causes: [{ reason: 'NamespaceTerminating' }] } });
    await reconciler.reconcile('ns/web', ctx);
    api.containersApi.create = refuse(403, { message: 'quota exceeded' });
    await assert.rejects(reconciler.reconcile('ns/web', ctx), /creating Containers: 1 failed/);
  });

  it('reports an invalid Workload in its conditions instead of failing', async () => {
    const long = { ...workload, metadata: { ...workload.metadata, name: 'x'.repeat(64) } };
    const { api, reconciler, ctx } = setup(long);
    await reconciler.reconcile(objectKey(long), ctx);
    assert.equal(api.created.length, 0);
    const written = api.statuses.at(-1) as { conditions: { type: string; reason: string }[] };
    assert.deepEqual(
      written.conditions.map((c) => [c.type, c.reason]),
      [
        ['Ready', 'InvalidSpec'],
        ['Progressing', 'InvalidSpec'],
        ['Stalled', 'InvalidSpec'],
      ],
    );
  });

  it('keeps counting the progress deadline across a controller restart (from status)', async () => {
    const { clock } = setup();
    // The last controller saw progress 601 s ago and wrote it down; this one has just started.
    const stuck: Workload = {
      ...workload,
      status: {
        observedGeneration: 1,
        replicas: 3,
        readyReplicas: 0,
        updatedReplicas: 3,
        currentRevision: templateHash(workload.spec.template),
        lastProgressTime: new Date(clock.now() - 601_000).toISOString().replace(/\.\d+Z$/, 'Z'),
      },
    };
    const t = setup(stuck);
    for (const n of ['a', 'b', 'c']) {
      t.containers.set({
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Container',
        metadata: {
          name: `web-${n}`,
          namespace: 'ns',
          labels: { [templateHashLabel]: templateHash(workload.spec.template) },
          ownerReferences: [
            {
              apiVersion: 'gantry.dev/v1alpha1',
              kind: 'Workload',
              name: 'web',
              uid: 'w-uid',
              controller: true,
            },
          ],
        },
        spec: workload.spec.template.spec,
      } as Container);
    }
    await t.reconciler.reconcile('ns/web', t.ctx);
    const written = t.api.statuses.at(-1) as WorkloadStatus;
    assert.equal(written.lastProgressTime, stuck.status!.lastProgressTime);
    assert.equal(
      written.conditions?.find((c) => c.type === 'Progressing')?.reason,
      'ProgressDeadlineExceeded',
    );
  });
});
