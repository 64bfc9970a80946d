// What the Workload, scheduling, host-lifecycle and autoscaling controllers share: one informer per
// resource with the indexes they look things up by, and the Hosts' heartbeats. Created once per
// manager, by whichever of those controllers is set up first.
import type { V1Lease } from '@kubernetes/client-node';
import {
  hostLeaseName,
  workloadOwner,
  type Container,
  type Host,
  type Image,
  type Workload,
} from '../api/v1alpha1/index.js';
import type { Clock } from '../kube/clock.js';
import type { Informer } from '../kube/informer.js';
import { joinKey } from '../kube/keys.js';
import type { Manager } from '../kube/manager.js';
import { resourceClient } from '../kube/resources.js';
import type { ControllerContext } from './context.js';

/** Container index: spec.nodeName, '' for Containers not bound yet. */
export const byHost = 'host';
/** Container index: `namespace/name` of the Workload that controls it. */
export const byWorkload = 'workload';

export interface SharedCaches {
  containers: Informer<Container>;
  workloads: Informer<Workload>;
  hosts: Informer<Host>;
  images: Informer<Image>;
  heartbeats: Heartbeats;
}

/** The Workload that controls a Container (its controller owner reference), as `namespace/name`. */
export function controllingWorkload(c: Container): string | undefined {
  const ref = workloadOwner(c);
  return ref && joinKey({ namespace: c.metadata.namespace, name: ref.name });
}

const perManager = new WeakMap<Manager, SharedCaches>();

export function sharedCaches(ctx: ControllerContext, clock: Clock): SharedCaches {
  const existing = perManager.get(ctx.manager);
  if (existing) return existing;
  const path = (kind: 'Container' | 'Workload' | 'Host' | 'Image') =>
    resourceClient(ctx.client, kind).collectionPath();
  const containers = ctx.manager.informer<Container>({
    path: path('Container'),
    indexers: {
      [byHost]: (c) => [c.spec?.nodeName ?? ''],
      [byWorkload]: (c) => {
        const owner = controllingWorkload(c);
        return owner ? [owner] : [];
      },
    },
  });
  const leaseNamespace = ctx.options.hostLeaseNamespace ?? ctx.options.leaderElectionNamespace;
  const leases = ctx.manager.informer<V1Lease>({
    path: `/apis/coordination.k8s.io/v1/namespaces/${leaseNamespace}/leases`,
  });
  const hosts = ctx.manager.informer<Host>({ path: path('Host') });
  const caches: SharedCaches = {
    containers,
    workloads: ctx.manager.informer<Workload>({ path: path('Workload') }),
    hosts,
    images: ctx.manager.informer<Image>({ path: path('Image') }),
    heartbeats: new Heartbeats(ctx.options.hostLostGraceMs, clock, leases, hosts),
  };
  perManager.set(ctx.manager, caches);
  return caches;
}

/**
 * When each Host was last heard from. As Kubernetes' node lifecycle controller does, the time is
 * this process's own clock at the moment it saw the heartbeat Lease change, not the renewTime the
 * agent wrote, so clock skew between machines does not matter. Hosts count as heard from when this
 * process first sees them: after a restart every Host gets one full grace period.
 *
 * When no Host at all renewed for half a grace period (agents renew far more often), the likelier
 * fault is this process's view of the apiserver, or the apiserver itself, than every Host at once:
 * that is `silent()`. Half, not all of it: Hosts that stopped together stopped renewing up to one
 * renewal interval apart, and the first to run out of grace must already see the others silent.
 * Once renewals resume every Host gets a full grace period again, since the first renewals to
 * arrive say nothing about the others (Kubernetes' "full disruption" rule plays the same part).
 */
export class Heartbeats {
  private readonly leaseSeen = new Map<string, number>();
  private lastRenewal: number;
  private resumedAt = 0;
  private readonly hostSeen = new Map<string, number>();
  /** Names asked about that have no Host and no Lease, since when (see lostAt). */
  private readonly unknownSeen = new Map<string, number>();
  private readonly listeners: ((host: string, wasLost: boolean) => void)[] = [];

  constructor(
    readonly graceMs: number,
    private readonly clock: Clock,
    leases: Informer<V1Lease>,
    hosts: Informer<Host>,
  ) {
    this.lastRenewal = clock.now();
    const renewed = (lease: V1Lease): void => {
      const host = hostOfLease(lease);
      if (!host) return;
      const wasLost = !this.fresh(host);
      const now = this.clock.now();
      if (this.silent()) this.resumedAt = now;
      this.lastRenewal = now;
      this.leaseSeen.set(host, now);
      for (const listener of this.listeners) listener(host, wasLost);
    };
    leases.addEventHandler({
      onAdd: renewed,
      onUpdate: (before, after) => {
        if (String(before.spec?.renewTime) !== String(after.spec?.renewTime)) renewed(after);
      },
      onDelete: (lease) => {
        const host = hostOfLease(lease);
        if (host) this.leaseSeen.delete(host);
      },
    });
    hosts.addEventHandler({
      onAdd: (host) => {
        const name = host.metadata.name!;
        if (!this.hostSeen.has(name)) this.hostSeen.set(name, this.clock.now());
      },
      onDelete: (host) => {
        this.hostSeen.delete(host.metadata.name!);
        this.unknownSeen.delete(host.metadata.name!);
      },
    });
  }

  /** Calls `listener` whenever a Host renews its heartbeat, saying whether it counted as lost until then. */
  onRenewed(listener: (host: string, wasLost: boolean) => void): void {
    this.listeners.push(listener);
  }

  /**
   * When the Host counts as lost unless it renews its Lease first. A name with neither Lease nor
   * Host (a deleted Host, or one a Container's nodeName made up) gets its grace period from the
   * first time it is asked about, so its Containers are handled as a lost Host's.
   */
  lostAt(host: string): number {
    let seen = this.leaseSeen.get(host) ?? this.hostSeen.get(host) ?? this.unknownSeen.get(host);
    if (seen === undefined) this.unknownSeen.set(host, (seen = this.clock.now()));
    return Math.max(seen, this.resumedAt) + this.graceMs;
  }

  /** No Host renewed its heartbeat for half a grace period. */
  silent(): boolean {
    return this.clock.now() - this.lastRenewal > this.graceMs / 2;
  }

  fresh(host: string): boolean {
    return this.clock.now() < this.lostAt(host);
  }
}

/** The Host a heartbeat Lease belongs to: its holder, when the Lease carries that Host's lease name. */
function hostOfLease(lease: V1Lease): string | undefined {
  const holder = lease.spec?.holderIdentity;
  return holder && lease.metadata?.name === hostLeaseName(holder) ? holder : undefined;
}
