// The Image reconciler with a fake clock, apiserver and registry: when it asks the registry
// (first sight, refresh, retry with backoff; never for a digest), what it keeps when asking
// fails, the events it records, and that a stale cache never makes it write an older digest.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { beforeEach, describe, it } from 'node:test';
import type { V1ConfigMap, V1Secret } from '@kubernetes/client-node';
import type { Build, Host, Image, ImageSpecInput } from '../../../src/api/v1alpha1/index.js';
import { ImageReconciler } from '../../../src/controller/image.js';
import type { Credentials } from '../../../src/kube/dockerconfig.js';
import { RegistryError, type ManifestInfo } from '../../../src/controller/registry.js';
import { FakeClock } from '../../../src/kube/clock.js';
import { getCondition } from '../../../src/kube/conditions.js';
import type { ReconcileResult } from '../../../src/kube/controller.js';
import { joinKey, type ObjectName } from '../../../src/kube/keys.js';
import { Store } from '../../../src/kube/store.js';
import { createLogger } from '../../../src/obs/logger.js';

const digest1 = `sha256:${'1'.repeat(64)}`;
const digest2 = `sha256:${'2'.repeat(64)}`;
const ctx = {
  log: createLogger({ stream: new PassThrough() }),
  reconcileID: 'test',
  signal: new AbortController().signal,
};

/** The apiserver's copy of each Image; a status apply replaces the status, as our field manager's. */
class FakeImages {
  readonly objects = new Map<string, Image>();
  writes = 0;
  private rv = 1;

  put(obj: Image): void {
    this.objects.set(
      joinKey(obj.metadata as ObjectName),
      structuredClone({ ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } }),
    );
  }

  async get(name: ObjectName): Promise<Image | undefined> {
    const obj = this.objects.get(joinKey(name));
    return obj && structuredClone(obj);
  }

  async applyStatus(name: ObjectName, status: object): Promise<Image> {
    const obj = this.objects.get(joinKey(name))!;
    if (JSON.stringify(obj.status) === JSON.stringify(status)) return obj;
    this.writes++;
    this.put({ ...obj, status: structuredClone(status) as Image['status'] });
    return this.objects.get(joinKey(name))!;
  }
}

class FakeRegistry {
  digest = digest1;
  failure: RegistryError | undefined;
  readonly calls: { method: 'HEAD' | 'GET'; credentials: Credentials[] }[] = [];

  async head(_ref: unknown, credentials: Credentials[] = []): Promise<string> {
    this.calls.push({ method: 'HEAD', credentials });
    if (this.failure) throw this.failure;
    return this.digest;
  }

  async get(_ref: unknown, credentials: Credentials[] = []): Promise<ManifestInfo> {
    this.calls.push({ method: 'GET', credentials });
    if (this.failure) throw this.failure;
    return { digest: this.digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', sizeBytes: 1234 };
  }
}

let clock: FakeClock;
let api: FakeImages;
let cache: Store<Image>;
let registry: FakeRegistry;
let events: { type: string; reason: string; note: string }[];
let secrets: Map<string, V1Secret>;
let reconciler: ImageReconciler;
let builds: Store<Build>;
let configMaps: Store<V1ConfigMap>;
let hosts: Store<Host>;
/** Builds created, in order; a second create of a name fails with 409 as the apiserver's does. */
let created: Build[];
let deleted: string[];

const key = 'ns/web';

function image(spec: ImageSpecInput, generation = 1): Image {
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Image',
    metadata: { name: 'web', namespace: 'ns', generation, uid: 'u1' },
    spec: spec as Image['spec'],
  };
}

/** The user creates or changes the Image; the cache sees it at once. */
function userWrites(obj: Image): void {
  api.put({ ...obj, status: api.objects.get(key)?.status });
  cache.set(api.objects.get(key)!);
}

/** A reconcile after the cache has caught up with the apiserver. */
async function reconcile(): Promise<ReconcileResult | void> {
  const result = await reconciler.reconcile(key, ctx);
  cache.set(api.objects.get(key)!);
  return result;
}

const status = () => api.objects.get(key)!.status!;
const resolved = () => getCondition(status().conditions, 'Resolved')!;

describe('ImageReconciler', () => {
  beforeEach(() => {
    clock = new FakeClock(Date.parse('2026-03-01T00:00:00Z'));
    api = new FakeImages();
    cache = new Store<Image>();
    registry = new FakeRegistry();
    events = [];
    secrets = new Map();
    builds = new Store<Build>();
    configMaps = new Store<V1ConfigMap>();
    hosts = new Store<Host>();
    created = [];
    deleted = [];
    reconciler = new ImageReconciler({
      images: cache,
      hosts,
      builds,
      configMaps,
      api,
      buildsApi: {
        create: async (b) => {
          if (created.some((c) => c.metadata.name === b.metadata.name)) {
            throw Object.assign(new Error('AlreadyExists'), { code: 409 });
          }
          created.push(b as Build);
          return b as Build;
        },
        delete: async (name) => {
          deleted.push(name.name);
          return builds.delete(joinKey(name)) !== undefined;
        },
      },
      readSecret: async (namespace, name) => secrets.get(`${namespace}/${name}`),
      registry: { digest: (r, c) => registry.head(r, c), inspect: (r, c) => registry.get(r, c) },
      recorder: { event: (_obj, type, reason, _action, note) => events.push({ type, reason, note }) },
      clock,
    });
  });

  it('resolves a tag once, then only reads its caches', async () => {
    userWrites(image({ image: '127.0.0.1:5000/gantry/web:1' }));
    assert.equal(await reconcile(), undefined);
    assert.deepEqual(
      registry.calls.map((c) => c.method),
      ['GET'],
    );
    assert.equal(status().digest, digest1);
    assert.equal(status().resolvedImage, `127.0.0.1:5000/gantry/web@${digest1}`);
    assert.equal(status().sizeBytes, 1234);
    assert.equal(status().lastResolvedTime, '2026-03-01T00:00:00Z');
    assert.equal(resolved().status, 'True');
    const writes = api.writes;
    await reconcile();
    await reconcile();
    assert.equal(registry.calls.length, 1);
    assert.equal(api.writes, writes);
  });

  it('refreshes every refreshInterval with a HEAD, and records a moved tag', async () => {
    userWrites(image({ image: '127.0.0.1:5000/gantry/web:1', refreshInterval: '10m' }));
    assert.deepEqual(await reconcile(), { requeueAfter: 600_000 });
    clock.advance(600_000);
    await reconcile();
    assert.deepEqual(
      registry.calls.map((c) => c.method),
      ['GET', 'HEAD'],
    );
    assert.equal(status().lastResolvedTime, '2026-03-01T00:10:00Z');
    assert.deepEqual(events, []);

    registry.digest = digest2;
    clock.advance(600_000);
    await reconcile();
    assert.deepEqual(
      registry.calls.map((c) => c.method),
      ['GET', 'HEAD', 'HEAD', 'GET'],
    );
    assert.equal(status().digest, digest2);
    assert.deepEqual(events, [
      {
        type: 'Normal',
        reason: 'TagMoved',
        note: `127.0.0.1:5000/gantry/web:1 moved from ${digest1} to ${digest2}`,
      },
    ]);
  });

  it('retries a failure with backoff, not on every event, and records a Warning', async () => {
    registry.failure = new RegistryError('ManifestUnknown', 'no such tag');
    userWrites(image({ image: '127.0.0.1:5000/gantry/web:nope' }));
    assert.deepEqual(await reconcile(), { requeueAfter: 5000 });
    assert.equal(resolved().status, 'False');
    assert.equal(resolved().reason, 'ManifestUnknown');
    assert.equal(getCondition(status().conditions, 'Ready')?.reason, 'ManifestUnknown');
    assert.deepEqual(events, [{ type: 'Warning', reason: 'ManifestUnknown', note: 'no such tag' }]);

    await reconcile(); // a Host event, say: too early to ask again
    assert.equal(registry.calls.length, 1);
    clock.advance(5000);
    assert.deepEqual(await reconcile(), { requeueAfter: 10_000 });
    assert.equal(registry.calls.length, 2);

    registry.failure = undefined;
    clock.advance(10_000);
    await reconcile();
    assert.equal(resolved().status, 'True');
  });

  it('keeps the last good digest when a refresh fails', async () => {
    userWrites(image({ image: '127.0.0.1:5000/gantry/web:1', refreshInterval: '1m' }));
    await reconcile();
    registry.failure = new RegistryError('RegistryUnreachable', 'cannot reach it');
    clock.advance(60_000);
    await reconcile();
    assert.equal(status().digest, digest1);
    assert.equal(resolved().status, 'False');
    assert.match(
      resolved().message,
      new RegExp(`cannot reach it; still using 127.0.0.1:5000/gantry/web@${digest1}`),
    );
  });

  it('resolves again when the spec changes', async () => {
    userWrites(image({ image: '127.0.0.1:5000/gantry/web:1' }));
    await reconcile();
    registry.digest = digest2;
    userWrites(image({ image: '127.0.0.1:5000/gantry/web:2' }, 2));
    await reconcile();
    assert.equal(status().digest, digest2);
    assert.equal(resolved().observedGeneration, 2);
    assert.deepEqual(events, [], 'a new tag is no moved tag');
  });

  it('needs no registry for a digest reference', async () => {
    userWrites(image({ image: `127.0.0.1:5000/gantry/web@${digest2}` }));
    assert.equal(await reconcile(), undefined);
    assert.deepEqual(registry.calls, []);
    assert.equal(status().digest, digest2);
    assert.equal(resolved().reason, 'PinnedByDigest');
  });

  it('reports a spec that does not parse instead of failing', async () => {
    userWrites(image({ image: 'Not A Reference' }));
    await reconcile();
    assert.deepEqual(registry.calls, []);
    assert.equal(resolved().reason, 'InvalidSpec');
    assert.match(resolved().message, /^spec\.image: /);
  });

  it('reads the Image afresh before acting, so a stale cache never writes an older digest back', async () => {
    userWrites(image({ image: '127.0.0.1:5000/gantry/web:1' }));
    const stale = structuredClone(api.objects.get(key)!);
    await reconciler.reconcile(key, ctx); // resolves and writes; the cache still holds `stale`
    assert.equal(cache.get(key)?.metadata?.resourceVersion, stale.metadata?.resourceVersion);
    await reconciler.reconcile(key, ctx);
    assert.equal(registry.calls.length, 1, 'not resolved twice');
    assert.equal(status().digest, digest1);
  });

  it('uses the credentials of the pull Secrets that match the registry, and names missing ones', async () => {
    const auths = {
      '127.0.0.1:5000': { username: 'u', password: 'p' },
      'ghcr.io': { username: 'x', password: 'y' },
    };
    secrets.set('ns/regcred', {
      metadata: { name: 'regcred', namespace: 'ns' },
      type: 'kubernetes.io/dockerconfigjson',
      data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths })).toString('base64') },
    });
    registry.failure = new RegistryError('Unauthorized', 'denied');
    userWrites(
      image({ image: '127.0.0.1:5000/gantry/web:1', pullSecrets: [{ name: 'regcred' }, { name: 'gone' }] }),
    );
    await reconcile();
    assert.deepEqual(registry.calls[0]?.credentials, [{ username: 'u', password: 'p' }]);
    assert.equal(resolved().message, 'denied; pull secret ns/gone does not exist');
  });

  describe('a built image (spec.build)', () => {
    const builder: Host = {
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Host',
      metadata: { name: 'host-1', labels: { 'gantry.dev/builder': 'true' } },
      spec: {} as Host['spec'],
      status: {
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'Ready',
            message: '',
            lastTransitionTime: '2026-03-01T00:00:00Z',
          },
        ],
      } as Host['status'],
    };
    const built = (extra: object = {}) =>
      image({
        image: '127.0.0.1:5000/e2e/app:1',
        build: { context: { configMap: { name: 'src' } }, ...extra },
      });
    const setConfigMap = (dockerfile: string) =>
      configMaps.set({ metadata: { name: 'src', namespace: 'ns' }, data: { Dockerfile: dockerfile } });
    /** The agent reports on the last Build created; the Build cache sees it. */
    const agentReports = (status: Build['status']) => {
      const b = created.at(-1)!;
      builds.set({ ...b, status });
    };

    beforeEach(() => {
      hosts.set(builder);
      setConfigMap('FROM busybox\n');
    });

    it('creates one Build per inputs, bound to a builder Host, and never asks the registry', async () => {
      userWrites(built());
      await reconcile();
      assert.equal(created.length, 1);
      const b = created[0]!;
      assert.match(b.metadata.name!, /^web-[0-9a-f]{10}$/);
      assert.equal(b.spec.nodeName, 'host-1');
      assert.deepEqual(b.spec.context.files, { Dockerfile: 'FROM busybox\n' });
      assert.equal(b.metadata.ownerReferences?.[0]?.uid, 'u1');
      assert.equal(status().build, b.metadata.name);
      assert.equal(resolved().status, 'Unknown');
      assert.equal(resolved().reason, 'Building');
      builds.set(b);
      await reconcile();
      assert.equal(created.length, 1, 'the same inputs make no second Build');
      assert.equal(registry.calls.length, 0);
    });

    it("takes the Build's digest once it succeeded, and keeps it while the next one fails", async () => {
      userWrites(built());
      await reconcile();
      agentReports({ phase: 'Succeeded', digest: digest1, finishedAt: '2026-03-01T00:01:00Z' });
      await reconcile();
      assert.equal(status().digest, digest1);
      assert.equal(status().resolvedImage, `127.0.0.1:5000/e2e/app@${digest1}`);
      assert.equal(resolved().reason, 'Built');

      setConfigMap('FROM busybox\nRUN exit 3\n');
      await reconcile();
      assert.equal(created.length, 2, 'new context files, new Build');
      assert.notEqual(created[1]!.metadata.name, created[0]!.metadata.name);
      agentReports({
        phase: 'Failed',
        failedStep: '[2/2] RUN exit 3',
        message: 'process "/bin/sh -c exit 3" did not complete successfully: exit code: 3',
        logTail: '#5 ERROR: exit code: 3',
      });
      await reconcile();
      assert.equal(status().digest, digest1, 'the last good digest stays');
      assert.equal(resolved().status, 'False');
      assert.equal(resolved().reason, 'BuildFailed');
      assert.match(resolved().message, /failed at \[2\/2\] RUN exit 3/);
      const stalled = getCondition(status().conditions, 'Stalled');
      assert.equal(stalled?.status, 'True');
      assert.deepEqual(
        events.map((e) => e.reason),
        ['BuildCreated', 'BuildCreated', 'BuildFailed'],
      );
      await reconcile();
      assert.equal(events.length, 3, 'the same failure is told once');
    });

    it('deletes the oldest Builds beyond the last five when it makes a new one', async () => {
      userWrites(built());
      for (let i = 0; i < 7; i++) {
        setConfigMap(`FROM busybox\nRUN echo ${i}\n`);
        await reconcile();
        const b = created.at(-1)!;
        builds.set({
          ...b,
          metadata: { ...b.metadata, creationTimestamp: new Date(Date.UTC(2026, 2, 1, 0, i)) },
        });
      }
      assert.equal(created.length, 7);
      assert.deepEqual(deleted, [created[0]!.metadata.name, created[1]!.metadata.name]);
      assert.equal(builds.list().length, 5);
    });

    it('says so when no Host can build or the ConfigMap is missing', async () => {
      hosts.delete('host-1');
      userWrites(built());
      assert.deepEqual(await reconcile(), { requeueAfter: 30_000 });
      assert.equal(resolved().reason, 'NoBuilder');
      assert.equal(created.length, 0);
      configMaps.delete('ns/src');
      hosts.set(builder);
      await reconcile();
      assert.equal(resolved().reason, 'ConfigMapNotFound');
      assert.match(resolved().message, /ns\/src does not exist/);
    });
  });
});
