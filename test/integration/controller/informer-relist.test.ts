// An informer (src/kube, in process) whose watch is answered 410 Gone by the real apiserver
// relists and misses nothing: objects created, changed and deleted while its watch was down all
// reach its cache and its handlers.
//
// How the 410 is made: compacting etcd alone does not do it, because the apiserver's watch
// cache still serves old resource versions. Changing a CRD's spec replaces that resource's
// storage and watch cache, and the new cache answers a watch from any version before it with
// 410 Expired, as after an apiserver restart. The test owns a throwaway CRD for this, so other
// users of the cluster are not disturbed.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { KubernetesObject } from '@kubernetes/client-node';
import { CustomResourceClient } from '../../../src/kube/customresource.js';
import { isGone } from '../../../src/kube/errors.js';
import { Informer, restListWatcher, type ListWatcher, type WatchEvent } from '../../../src/kube/informer.js';
import { createLogger } from '../../../src/obs/logger.js';
import { kubectl, kubectlOk } from '../../support/cluster.js';
import { eventually } from '../../support/wait.js';
import { clients, createNamespace, deleteNamespace, uniqueName } from './harness.js';

const ns = uniqueName('gantry-ctrl-relist');
const group = `${ns}.gantry.dev`;
const crdName = `probes.${group}`;
const { client } = clients();
const probes = new CustomResourceClient<KubernetesObject>(client, {
  group,
  version: 'v1',
  plural: 'probes',
  kind: 'Probe',
  namespaced: true,
});
const path = probes.collectionPath(ns);

function crd(printerColumns: object[]): string {
  return JSON.stringify({
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: crdName },
    spec: {
      group,
      scope: 'Namespaced',
      names: { plural: 'probes', singular: 'probe', kind: 'Probe' },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          additionalPrinterColumns: printerColumns,
          schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
        },
      ],
    },
  });
}

const probe = (name: string, labels: Record<string, string> = {}): KubernetesObject => ({
  apiVersion: `${group}/v1`,
  kind: 'Probe',
  metadata: { name, namespace: ns, labels },
});

/** A ListWatcher whose watches the test can cut and hold back, recording how each one ended. */
class Interruptible<T extends KubernetesObject> implements ListWatcher<T> {
  readonly watchedFrom: string[] = [];
  readonly watchErrors: unknown[] = [];
  held = 0;
  private gate: { promise: Promise<void>; open: () => void } | undefined;
  private current: AbortController | undefined;

  constructor(private readonly inner: ListWatcher<T>) {}

  list(signal: AbortSignal) {
    return this.inner.list(signal);
  }

  async watch(
    opts: { resourceVersion: string; timeoutSeconds: number; signal: AbortSignal },
    onEvent: (event: WatchEvent) => void,
  ): Promise<void> {
    while (this.gate && !opts.signal.aborted) {
      this.held++;
      const stopped = new Promise<void>((r) =>
        opts.signal.addEventListener('abort', () => r(), { once: true }),
      );
      await Promise.race([this.gate.promise, stopped]);
    }
    this.watchedFrom.push(opts.resourceVersion);
    this.current = new AbortController();
    try {
      await this.inner.watch(
        { ...opts, signal: AbortSignal.any([opts.signal, this.current.signal]) },
        onEvent,
      );
    } catch (err) {
      this.watchErrors.push(err);
      throw err;
    }
  }

  /** Ends the current watch and holds back the next one. */
  cut(): void {
    let open!: () => void;
    this.gate = { promise: new Promise((r) => (open = r)), open };
    this.current?.abort();
  }

  resume(): void {
    this.gate?.open();
    this.gate = undefined;
  }
}

/** The first event a watch from `resourceVersion` gets (an ERROR event, or a 410 response, as ERROR). */
async function firstWatchEvent(resourceVersion: string): Promise<WatchEvent | undefined> {
  let first: WatchEvent | undefined;
  const done = new Error('first event seen');
  const signal = AbortSignal.timeout(3000);
  try {
    await restListWatcher(client, { path }).watch({ resourceVersion, timeoutSeconds: 2, signal }, (event) => {
      first = event;
      throw done;
    });
  } catch (err) {
    if (isGone(err)) return { type: 'ERROR', object: { code: 410 } };
    if (err !== done && !signal.aborted) throw err;
  }
  return first;
}

describe('informer relist after 410 Gone', () => {
  before(async () => {
    await kubectlOk(['apply', '-f', '-'], { input: crd([]) });
    await kubectlOk(['wait', '--for=condition=Established', '--timeout=30s', `crd/${crdName}`]);
    await createNamespace(ns);
  });

  after(async () => {
    await deleteNamespace(ns);
    await kubectl(['delete', 'crd', crdName, '--wait=false']);
  });

  it('relists on 410 and ends with exactly the objects that exist, having told its handlers', async () => {
    // The CRD was just created: its API may take a moment to be served.
    await eventually('the probe API to serve', async () => (await probes.create(probe('p0'))) !== undefined);
    for (const name of ['p1', 'p2', 'p3']) await probes.create(probe(name));

    const listWatcher = new Interruptible(restListWatcher<KubernetesObject>(client, { path }));
    const informer = new Informer<KubernetesObject>({
      name: `probes-${ns}`,
      listWatcher,
      log: createLogger({ level: 'error' }),
      backoff: { initialMs: 50, maxMs: 200 },
    });
    const seen = { added: [] as string[], updated: [] as string[], deleted: [] as string[] };
    informer.addEventHandler({
      onAdd: (o) => seen.added.push(o.metadata!.name!),
      onUpdate: (a, b) => a !== b && seen.updated.push(b.metadata!.name!),
      onDelete: (o) => seen.deleted.push(o.metadata!.name!),
    });
    informer.start();
    try {
      assert.ok(await informer.waitForSync(AbortSignal.timeout(10_000)));
      await eventually('the informer to watch', () => listWatcher.watchedFrom.length > 0);
      const keysBefore = informer.cache.keys().sort();
      assert.deepEqual(
        keysBefore,
        ['p0', 'p1', 'p2', 'p3'].map((n) => `${ns}/${n}`),
      );
      seen.added.length = 0;

      // Watch down: changes it cannot see, then the CRD change that expires its version.
      listWatcher.cut();
      await eventually('the next watch to be held back', () => listWatcher.held > 0);
      for (const name of ['p4', 'p5', 'p6']) await probes.create(probe(name));
      await probes.delete({ namespace: ns, name: 'p0' });
      await probes.delete({ namespace: ns, name: 'p1' });
      await probes.mergePatch({ namespace: ns, name: 'p2' }, { metadata: { labels: { changed: 'yes' } } });
      await kubectlOk(['apply', '-f', '-'], {
        input: crd([{ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }]),
      });
      const staleVersion = listWatcher.watchedFrom.at(-1)!;
      await eventually(
        `the apiserver to answer 410 to a watch from ${staleVersion}`,
        async () => (await firstWatchEvent(staleVersion))?.object.code === 410,
      );

      listWatcher.resume();
      const expected = (await probes.list({ namespace: ns })).map((o) => `${ns}/${o.metadata!.name!}`).sort();
      assert.deepEqual(
        expected,
        ['p2', 'p3', 'p4', 'p5', 'p6'].map((n) => `${ns}/${n}`),
      );
      await eventually(
        'the cache to hold exactly the objects that exist',
        () => JSON.stringify(informer.cache.keys().sort()) === JSON.stringify(expected),
      );
      assert.ok(listWatcher.watchErrors.some(isGone), 'the informer was answered 410 Gone');
      assert.deepEqual(seen.added.sort(), ['p4', 'p5', 'p6']);
      assert.deepEqual(seen.deleted.sort(), ['p0', 'p1']);
      assert.ok(seen.updated.includes('p2'));
      assert.equal(informer.cache.get(`${ns}/p2`)?.metadata?.labels?.changed, 'yes');

      // And it watches again from the fresh list.
      await probes.create(probe('p7'));
      await eventually('a new object to reach the cache', () => informer.cache.get(`${ns}/p7`));
    } finally {
      listWatcher.resume();
      await informer.stop();
    }
  });
});
