// Lost Hosts, as Kubernetes' node lifecycle controller and pod GC handle lost Nodes. A Host whose
// heartbeat Lease has not been renewed for --host-lost-grace is lost:
//  - its Ready condition turns Unknown (reason HeartbeatLost); the agent sets it again when it
//    comes back;
//  - its Workload Containers are deleted, so their Workloads replace them on other Hosts; no agent
//    is there to remove the runtime-cleanup finalizer, so the controller removes it from every
//    Container being deleted on the lost Host (the pod GC's force delete);
//  - bare Containers stay (nodeName cannot change) and show phase Unknown and Ready Unknown;
//  - but when no Host at all renews (Heartbeats.silent), nothing is evicted: every Container is
//    shown Unknown, since a fault between this controller and the apiserver is likelier than
//    every Host failing at once, and there would be nowhere to move the replicas anyway.
// A Host that is deleted, or never existed but is named by a Container's nodeName, is lost a grace
// period after this process first looked for it (unless its agent registers it again): its
// Containers are handled the same way, and bare ones say that the Host does not exist.
// When the Host returns, its agent's orphan sweep removes what still runs for deleted Containers.
// The price is the one Kubernetes pays: a Host that is only cut off from the apiserver keeps
// running its copies until it is back.
import { Counter, Gauge } from 'prom-client';
import { runtimeCleanupFinalizer, type Container, type Host } from '../api/v1alpha1/index.js';
import { setFinalizer } from '../kube/finalizers.js';
import { realClock, type Clock } from '../kube/clock.js';
import { getCondition, setCondition } from '../kube/conditions.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../kube/controller.js';
import type { CustomResourceClient } from '../kube/customresource.js';
import { isNotFound } from '../kube/errors.js';
import type { EventRecorder } from '../kube/events.js';
import { objectKey, splitKey } from '../kube/keys.js';
import { watch, type Source } from '../kube/manager.js';
import type { Cache } from '../kube/store.js';
import { registry } from '../obs/metrics.js';
import { scheduledStatus } from './scheduler.js';
import { byHost, controllingWorkload, sharedCaches, type Heartbeats, type SharedCaches } from './caches.js';
import { resourceClient } from '../kube/resources.js';
import { fieldManager, type ControllerContext } from './context.js';

const lostHosts = new Gauge({
  name: 'gantry_hosts_lost',
  help: 'Hosts whose heartbeat stopped for longer than the grace period',
  registers: [registry],
});
const hostsLostTotal = new Counter({
  name: 'gantry_host_lost_total',
  help: 'Times a Host was declared lost',
  registers: [registry],
});
const evictions = new Counter({
  name: 'gantry_host_lost_evictions_total',
  help: 'Workload Containers deleted because their Host was lost',
  registers: [registry],
});

export function setupHostLifecycleController(ctx: ControllerContext): void {
  const caches = sharedCaches(ctx, realClock);
  ctx.manager.controller({
    name: 'host-lifecycle',
    kind: 'Host',
    reconciler: new HostLifecycleReconciler({
      hosts: caches.hosts.cache,
      containers: caches.containers.cache,
      heartbeats: caches.heartbeats,
      hostsApi: resourceClient(ctx.client, 'Host'),
      containersApi: resourceClient(ctx.client, 'Container'),
      recorder: ctx.recorder,
    }),
    workers: 2,
    watches: [watch(caches.hosts), lostHostContainers(caches)],
  });
}

/** A Container changing on a lost Host (deleted, say) and a lost Host coming back need a reconcile. */
function lostHostContainers(caches: SharedCaches): Source {
  return {
    connect(enqueue) {
      const check = (c: Container): void => {
        const host = c.spec?.nodeName;
        if (host && (!caches.heartbeats.fresh(host) || !caches.hosts.cache.get(host))) enqueue(host);
      };
      caches.containers.addEventHandler({ onAdd: check, onUpdate: (_, c) => check(c) });
      caches.heartbeats.onRenewed((host, wasLost) => {
        if (wasLost) enqueue(host);
      });
    },
  };
}

export interface HostLifecycleDeps {
  hosts: Cache<Host>;
  containers: Cache<Container>;
  heartbeats: Pick<Heartbeats, 'lostAt' | 'graceMs' | 'silent'>;
  hostsApi: Pick<CustomResourceClient<Host>, 'applyStatus'>;
  containersApi: Pick<CustomResourceClient<Container>, 'applyStatus' | 'get' | 'mergePatch' | 'delete'>;
  recorder: EventRecorder;
  clock?: Clock;
}

export class HostLifecycleReconciler implements Reconciler {
  private readonly clock: Clock;
  private readonly lost = new Set<string>();

  constructor(private readonly deps: HostLifecycleDeps) {
    this.clock = deps.clock ?? realClock;
  }

  async reconcile(name: string, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const host = this.deps.hosts.get(name);
    const bound = this.deps.containers.byIndex(byHost, name);
    const wait = this.deps.heartbeats.lostAt(name) - this.clock.now();
    if (wait > 0 || (!host && bound.length === 0)) {
      this.lost.delete(name);
      lostHosts.set(this.lost.size);
      // Looked at again when the heartbeat would run out (a renewal requeues it sooner).
      return wait > 0 && (host || bound.length > 0) ? { requeueAfter: wait } : undefined;
    }
    const graceSeconds = Math.round(this.deps.heartbeats.graceMs / 1000);
    const silent = this.deps.heartbeats.silent();
    const message = silent
      ? `No Host renewed its heartbeat Lease for ${graceSeconds}s: nothing is evicted`
      : host
        ? `The Host's heartbeat Lease was not renewed for ${graceSeconds}s`
        : `Host ${name} does not exist (deleted, or never registered by an agent)`;
    if (host) await this.markHostUnknown(host, message);
    if (!this.lost.has(name)) {
      this.lost.add(name);
      lostHosts.set(this.lost.size);
      hostsLostTotal.inc();
      ctx.log.info('Host lost', { host: name, graceSeconds, evicting: !silent, exists: !!host });
      if (host) this.deps.recorder.event(host, 'Warning', 'HostLost', 'MarkUnknown', message);
    }
    for (const c of bound) {
      // A Container gone since the cache saw it needs nothing more.
      await ignoreNotFound(
        c.metadata.deletionTimestamp
          ? this.releaseFinalizer(c)
          : controllingWorkload(c) && !silent
            ? this.evict(c, name, ctx)
            : this.markContainerUnknown(c, name, message, !!host),
      );
    }
    // Renewals resuming give every Host a new grace period: look again when it would run out.
    if (silent) return { requeueAfter: this.deps.heartbeats.graceMs };
  }

  /** Ready=Unknown, again if the agent wrote Ready meanwhile without renewing its heartbeat. */
  private async markHostUnknown(host: Host, message: string): Promise<void> {
    const ready = getCondition(host.status?.conditions, 'Ready');
    if (ready?.status === 'Unknown' && ready.reason === 'HeartbeatLost') return;
    const [unknown] = setCondition(
      ready ? [ready] : [],
      { type: 'Ready', status: 'Unknown', reason: 'HeartbeatLost', message },
      new Date(this.clock.now()),
    );
    await this.deps.hostsApi.applyStatus(
      { name: host.metadata.name! },
      { conditions: [unknown] },
      { fieldManager },
    );
  }

  /** The agent that would remove the finalizer is gone: remove it, as pod GC force-deletes. */
  private async releaseFinalizer(c: Container): Promise<void> {
    await setFinalizer(this.deps.containersApi, splitKey(objectKey(c)), c, runtimeCleanupFinalizer, false);
  }

  private async evict(c: Container, host: string, ctx: ReconcileContext): Promise<void> {
    await this.deps.containersApi.delete(splitKey(objectKey(c)));
    evictions.inc();
    ctx.log.info('Deleted a Workload Container of a lost Host', { container: objectKey(c), host });
    this.deps.recorder.event(
      c,
      'Warning',
      'HostLost',
      'Delete',
      `Host ${host} is lost: deleting the Container so its Workload replaces it on another Host`,
    );
  }

  private async markContainerUnknown(
    c: Container,
    host: string,
    message: string,
    hostExists: boolean,
  ): Promise<void> {
    const now = new Date(this.clock.now());
    const reason = hostExists ? 'HostLost' : 'HostNotFound';
    const scheduled = scheduledStatus(c);
    const [ready] = setCondition(
      c.status?.conditions?.filter((cond) => cond.type === 'Ready'),
      {
        type: 'Ready',
        status: 'Unknown',
        reason,
        message,
        observedGeneration: c.metadata.generation,
      },
      now,
    );
    await this.deps.containersApi.applyStatus(
      splitKey(objectKey(c)),
      {
        phase: 'Unknown',
        reason,
        message: hostExists ? `Host ${host} stopped reporting: ${message}` : message,
        conditions: [...(scheduled.conditions ?? []), ready!],
      },
      { fieldManager, live: c },
    );
  }
}

async function ignoreNotFound(work: Promise<void>): Promise<void> {
  try {
    await work;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
