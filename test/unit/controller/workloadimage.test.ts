// A Workload whose template names an Image (imageFrom): the template it runs carries that Image's
// digest, a new digest is a new revision, and a rollout waits until the Hosts hold the digest.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  parseSpec,
  type Condition,
  type Host,
  type Image,
  type Workload,
  type WorkloadSpec,
  type WorkloadStatus,
} from '../../../src/api/v1alpha1/index.js';
import { concreteTemplate, hostsPulling } from '../../../src/controller/workloadimage.js';
import { templateHash } from '../../../src/controller/workloadreplicas.js';
import { hostReady } from './fakes.js';
import { workloadReconciler } from './workloadfakes.js';

const digestA = `sha256:${'a'.repeat(64)}`;
const digestB = `sha256:${'b'.repeat(64)}`;

function workloadSpec(templateSpec: object, placement: object = {}): WorkloadSpec {
  const parsed = parseSpec('Workload', {
    replicas: 3,
    selector: { matchLabels: { app: 'web' } },
    template: { metadata: { labels: { app: 'web' } }, spec: templateSpec },
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 1 } },
    placement,
  });
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
  return parsed.value;
}

function image(digest?: string, nodeSelector?: Record<string, string>): Image {
  const parsed = parseSpec('Image', { image: 'registry.example/web:main', nodeSelector });
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Image',
    metadata: { name: 'web', namespace: 'ns' },
    spec: parsed.value,
    ...(digest && { status: { digest, resolvedImage: `registry.example/web@${digest}` } }),
  };
}

type HostHas = { holds?: string; pull?: 'Pulling' | 'Failed'; ready?: boolean; spec?: Partial<Host['spec']> };
function host(name: string, has: HostHas, labels: Record<string, string> = {}): Host {
  const notReady: Condition = { ...hostReady, status: 'False', reason: 'HeartbeatLost' };
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Host',
    metadata: { name, labels },
    spec: has.spec ?? {},
    status: {
      conditions: [has.ready === false ? notReady : hostReady],
      images: has.holds ? [{ digest: has.holds, names: [`registry.example/web@${has.holds}`] }] : [],
      imagePulls: has.pull ? [{ image: 'ns/web', state: has.pull }] : [],
    },
  } as Host;
}

const fromImage = workloadSpec({ imageFrom: { name: 'web' } });

describe('concreteTemplate', () => {
  it('leaves a template with an image reference as it is, so its hash is unchanged', () => {
    const byRef = workloadSpec({ image: 'gantry/web:1' });
    const resolved = concreteTemplate(byRef.template, () => assert.fail('no Image is looked up'));
    assert.ok(resolved.ok);
    assert.equal(resolved.template, byRef.template);
  });

  it('says why there is nothing to run: no such Image, or no digest yet', () => {
    assert.deepEqual(
      concreteTemplate(fromImage.template, () => undefined),
      {
        ok: false,
        reason: 'ImageNotFound',
        message: 'Image web does not exist',
      },
    );
    assert.deepEqual(
      concreteTemplate(fromImage.template, () => image()),
      {
        ok: false,
        reason: 'ImageNotReady',
        message: 'Image web has no digest yet',
      },
    );
  });

  it("runs the Image's digest-pinned reference, and a new digest is a new revision", () => {
    const a = concreteTemplate(fromImage.template, () => image(digestA));
    const b = concreteTemplate(fromImage.template, () => image(digestB));
    assert.ok(a.ok && b.ok);
    assert.equal(a.template.spec.image, `registry.example/web@${digestA}`);
    assert.equal('imageFrom' in a.template.spec, false);
    assert.notEqual(templateHash(a.template), templateHash(b.template));
  });
});

describe('hostsPulling', () => {
  it('lists the Ready, uncordoned Hosts both may use that do not hold the digest yet and have not failed', () => {
    const hosts = [
      host('holds', { holds: digestA }, { zone: 'a' }),
      host('pulling', { pull: 'Pulling' }, { zone: 'a' }),
      host('not-started', {}, { zone: 'a' }),
      host('failed', { pull: 'Failed' }, { zone: 'a' }),
      host('down', { ready: false }, { zone: 'a' }),
      host('other-zone', { pull: 'Pulling' }, { zone: 'b' }),
      host('cordoned', { spec: { unschedulable: true } }, { zone: 'a' }),
      host('draining', { pull: 'Pulling', spec: { drain: true } }, { zone: 'a' }),
    ];
    assert.deepEqual(hostsPulling(image(digestA), { zone: 'a' }, hosts, 'ns/web'), [
      'not-started',
      'pulling',
    ]);
    // The Image warms only zone b, the Workload runs only in zone a: no Host is both.
    assert.deepEqual(hostsPulling(image(digestA, { zone: 'b' }), { zone: 'a' }, hosts, 'ns/web'), []);
  });
});

describe('WorkloadReconciler with imageFrom', () => {
  const workload: Workload = {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Workload',
    metadata: { name: 'web', namespace: 'ns', uid: 'w-uid', generation: 1 },
    spec: fromImage,
  };
  const ready = (status: unknown) => (status as WorkloadStatus).conditions?.find((c) => c.type === 'Ready');
  /** A reconcile a second after the last: the Workload's status writes are coalesced to one a second. */
  const later = (t: ReturnType<typeof workloadReconciler>) => {
    t.clock.advance(1000);
    return t.reconciler.reconcile('ns/web', t.ctx);
  };

  it('creates nothing until the Image has a digest, and says so in Ready', async () => {
    const t = workloadReconciler(workload);
    await t.reconciler.reconcile('ns/web', t.ctx);
    assert.equal(t.api.created.length, 0);
    assert.equal(ready(t.api.statuses.at(-1))?.reason, 'ImageNotFound');
    t.images.set(image());
    await later(t);
    assert.equal(t.api.created.length, 0);
    assert.equal(ready(t.api.statuses.at(-1))?.reason, 'ImageNotReady');
    t.images.set(image(digestA));
    await later(t);
    assert.deepEqual(
      t.api.created.map((c) => c.spec.image),
      Array(3).fill(`registry.example/web@${digestA}`),
    );
  });

  it('rolls out a new digest only once the Hosts hold it, stopping nothing before', async () => {
    const t = workloadReconciler(workload);
    t.images.set(image(digestA));
    t.hosts.set(host('h1', { holds: digestA }));
    await t.reconciler.reconcile('ns/web', t.ctx);
    for (const c of t.api.created) {
      t.containers.set({ ...c, metadata: { ...c.metadata, uid: c.metadata.name } });
      t.reconciler.observe(c);
    }
    const oldNames = t.api.created.map((c) => c.metadata.name);

    t.images.set(image(digestB));
    t.hosts.set(host('h1', { holds: digestA, pull: 'Pulling' }));
    const waiting = await later(t);
    assert.equal(t.api.created.length, 3, 'no Container of the new digest while h1 pulls it');
    assert.deepEqual(t.api.deleted, [], 'no old Container stopped while h1 pulls');
    assert.equal(ready(t.api.statuses.at(-1))?.reason, 'PullingImage');
    assert.match(
      ready(t.api.statuses.at(-1))!.message,
      /h1 still pulling registry\.example\/web@sha256:b{64}/,
    );
    assert.deepEqual(waiting, { requeueAfter: 5_000 });

    t.hosts.set(host('h1', { holds: digestB }));
    await later(t);
    const created = t.api.created.slice(3);
    assert.ok(created.length > 0, 'the rollout began');
    for (const c of created) assert.equal(c.spec.image, `registry.example/web@${digestB}`);
    assert.ok(t.api.deleted.every((name) => oldNames.includes(name)));
  });
});
