// The EndpointSlice controller of Services that select Gantry Containers (which slices:
// serviceendpoints.ts). It writes each slice by server-side apply when the cache shows it
// differently, then deletes the slices of its own the Service no longer needs, so an address comes
// into a slice before the one it replaces goes. Its slices carry
// endpointslice.kubernetes.io/managed-by=gantry.dev: Kubernetes' EndpointSlice controller, which
// writes the same Service's slice of Pods (an empty one when no Pod matches), leaves them alone,
// and kube-proxy and CoreDNS merge every slice of a Service. Reconciled on a change of the
// Service, of one of its slices (a slice edited or deleted by someone else is put back) and of any
// Container its selector matches, before or after the change (health, address, deletion, labels).
import { DiscoveryV1Api, type V1EndpointSlice, type V1Service } from '@kubernetes/client-node';
import { endpointSliceManager, selectContainersLabel, type Container } from '../api/v1alpha1/index.js';
import { isApplyNoop } from '../kube/apply.js';
import { realClock } from '../kube/clock.js';
import type { ReconcileContext, Reconciler } from '../kube/controller.js';
import { isNotFound } from '../kube/errors.js';
import { joinKey, objectKey, splitKey, type ObjectName } from '../kube/keys.js';
import { watch } from '../kube/manager.js';
import type { Cache } from '../kube/store.js';
import { sharedCaches } from './caches.js';
import { fieldManager, type ControllerContext } from './context.js';
import { endpointSlices, managedByLabel, serviceNameLabel, servicesSelecting } from './serviceendpoints.js';

/** EndpointSlice index: `namespace/name` of its Service. */
export const byService = 'service';

export function serviceOf(slice: V1EndpointSlice): string[] {
  const name = slice.metadata?.labels?.[serviceNameLabel];
  return name ? [joinKey({ namespace: slice.metadata?.namespace, name })] : [];
}

export function setupEndpointSliceController(ctx: ControllerContext): void {
  const caches = sharedCaches(ctx, realClock);
  // Only the Services that ask for Containers, and only our own slices, are cached.
  const services = ctx.manager.informer<V1Service>({
    path: '/api/v1/services',
    labelSelector: `${selectContainersLabel}=true`,
  });
  const slices = ctx.manager.informer<V1EndpointSlice>({
    path: '/apis/discovery.k8s.io/v1/endpointslices',
    labelSelector: `${managedByLabel}=${endpointSliceManager}`,
    indexers: { [byService]: serviceOf },
  });
  const discovery = ctx.client.api(DiscoveryV1Api);
  const reconciler = new EndpointSliceReconciler({
    services: services.cache,
    slices: slices.cache,
    containers: caches.containers.cache,
    api: {
      apply: (slice) => ctx.client.apply(slice, { fieldManager }),
      delete: async ({ namespace, name }) => {
        await discovery.deleteNamespacedEndpointSlice({ namespace: namespace!, name }).catch((e: unknown) => {
          if (!isNotFound(e)) throw e;
        });
      },
    },
  });
  ctx.manager.controller({
    name: 'endpointslice',
    kind: 'Service',
    reconciler,
    workers: 2,
    watches: [
      watch(services),
      watch(slices, serviceOf),
      watch(caches.containers, (c) =>
        servicesSelecting(services.cache.listByNamespace(c.metadata.namespace ?? ''), c).map(objectKey),
      ),
    ],
  });
}

export interface EndpointSliceReconcilerDeps {
  services: Cache<V1Service>;
  /** Our own slices, indexed byService. */
  slices: Cache<V1EndpointSlice>;
  containers: Cache<Container>;
  api: {
    apply(slice: V1EndpointSlice): Promise<unknown>;
    /** Resolves when the slice is gone, or was already. */
    delete(name: ObjectName): Promise<void>;
  };
}

export class EndpointSliceReconciler implements Reconciler {
  constructor(private readonly deps: EndpointSliceReconcilerDeps) {}

  async reconcile(key: string, ctx: ReconcileContext): Promise<void> {
    const svc = this.deps.services.get(key);
    const namespace = splitKey(key).namespace ?? '';
    const wanted = svc ? endpointSlices(svc, this.deps.containers.listByNamespace(namespace)) : [];
    const existing = this.deps.slices.byIndex(byService, key);
    for (const slice of wanted) {
      const live = existing.find((s) => s.metadata?.name === slice.metadata!.name);
      if (isApplyNoop(slice, live, fieldManager)) continue;
      await this.deps.api.apply(slice);
      ctx.log.info('Wrote EndpointSlice', {
        slice: slice.metadata!.name,
        ready: slice.endpoints.filter((e) => e.conditions?.ready).length,
        endpoints: slice.endpoints.length,
      });
    }
    for (const slice of existing) {
      const name = slice.metadata!.name!;
      if (wanted.some((w) => w.metadata!.name === name)) continue;
      await this.deps.api.delete({ namespace, name });
      ctx.log.info('Deleted EndpointSlice', { slice: name });
    }
  }
}
