// The EndpointSlice reconciler against in-memory caches: it writes what serviceendpoints.ts
// computes only when the cache shows something else, adds before it removes, and cleans up.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { Container } from '../../../src/api/v1alpha1/index.js';
import { objectKey } from '../../../src/kube/keys.js';
import { Store } from '../../../src/kube/store.js';
import { byService, EndpointSliceReconciler, serviceOf } from '../../../src/controller/endpointslice.js';
import { ctx } from './fakes.js';

const svc: V1Service = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web', namespace: 'shop', uid: 's1', labels: { 'gantry.dev/select-containers': 'true' } },
  spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 'http', protocol: 'TCP' }] },
};

function container(name: string, ip: string, containerPort = 8080): Container {
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Container',
    metadata: { name, namespace: 'shop', uid: `uid-${name}`, labels: { app: 'web' } },
    spec: {
      image: 'gantry/web:1',
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      nodeName: 'host-1',
      ports: [{ name: 'http', containerPort, protocol: 'TCP' }],
    },
    status: {
      phase: 'Running',
      ip,
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'Running',
          message: '',
          lastTransitionTime: '2026-01-01T00:00:00Z',
        },
      ],
    },
  };
}

/** A reconciler whose writes land in `apiserver`; the cache shows them only after `sync()`, as a lagging informer. */
function setup() {
  const services = new Store<V1Service>();
  const containers = new Store<Container>();
  const cache = new Store<V1EndpointSlice>({ [byService]: serviceOf });
  const apiserver = new Map<string, V1EndpointSlice>();
  const calls: string[] = [];
  const reconciler = new EndpointSliceReconciler({
    services,
    slices: cache,
    containers,
    api: {
      apply: async (slice) => {
        calls.push(`apply ${slice.endpoints.map((e) => e.addresses[0]).join(',')}`);
        apiserver.set(objectKey(slice), structuredClone(slice));
      },
      delete: async (name) => {
        calls.push(
          `delete ${apiserver.get(`${name.namespace}/${name.name}`)?.endpoints.map((e) => e.addresses[0])}`,
        );
        apiserver.delete(`${name.namespace}/${name.name}`);
      },
    },
  });
  const sync = () => {
    for (const key of cache.keys()) cache.delete(key);
    for (const s of apiserver.values()) cache.set(s);
  };
  return { services, containers, cache, apiserver, calls, reconciler, sync };
}

describe('EndpointSliceReconciler', () => {
  it('writes a slice once, and nothing more while the cache shows it', async () => {
    const { services, containers, calls, reconciler, sync } = setup();
    services.set(svc);
    containers.set(container('a', '10.88.101.2'));
    await reconciler.reconcile('shop/web', ctx);
    assert.deepEqual(calls, ['apply 10.88.101.2']);
    // Before the cache catches up, the same write again (the apiserver changes nothing).
    await reconciler.reconcile('shop/web', ctx);
    sync();
    await reconciler.reconcile('shop/web', ctx);
    assert.deepEqual(calls, ['apply 10.88.101.2', 'apply 10.88.101.2']);
  });

  it('puts the new address in before it removes the slice of the old one', async () => {
    const { services, containers, calls, reconciler, sync } = setup();
    services.set(svc);
    containers.set(container('old', '10.88.101.2', 8080));
    await reconciler.reconcile('shop/web', ctx);
    sync();
    calls.length = 0;
    // The replacement serves its named port elsewhere: another group of ports, another slice.
    containers.set(container('new', '10.88.102.3', 9090));
    containers.delete('shop/old');
    await reconciler.reconcile('shop/web', ctx);
    assert.deepEqual(calls, ['apply 10.88.102.3', 'delete 10.88.101.2']);
  });

  it('deletes its slices when the Service stops asking for Containers, or goes', async () => {
    const { services, containers, apiserver, calls, reconciler, sync } = setup();
    services.set(svc);
    containers.set(container('a', '10.88.101.2'));
    await reconciler.reconcile('shop/web', ctx);
    sync();
    services.set({ ...svc, metadata: { ...svc.metadata, labels: {} } });
    await reconciler.reconcile('shop/web', ctx);
    assert.equal(apiserver.size, 0);
    // Gone from the apiserver, still in the lagging cache: asked again, harmlessly.
    services.delete('shop/web');
    await reconciler.reconcile('shop/web', ctx);
    sync();
    calls.length = 0;
    await reconciler.reconcile('shop/web', ctx);
    assert.deepEqual(calls, []);
  });
});
