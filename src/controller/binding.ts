// The scheduler's controller: binds each Container that has no spec.nodeName to a Host chosen by
// scheduler.ts, with a merge patch carrying the resourceVersion it decided on (nodeName is set
// once; the apiserver refuses any later change). A burst of Containers arrives faster than the
// cache shows the bindings, so each binding is first "assumed" in memory, counted on its Host (its
// requests and its host ports) until the cache confirms it, as kube-scheduler's assume cache does:
// two replicas asking for one hostPort never land on one Host. The binding also adds the agent's
// runtime-cleanup finalizer. Scheduled=False (phase Pending with the reason, when nothing
// fits) is the controller's part of the status; Scheduled=True comes with the agent's first report.
// The Workload controller asks the same scheduler for a Host before it creates a replica
// (`placeNew`), as the DaemonSet controller does, so a replica is born bound: one write fewer, and
// the agent sees it with its first watch event. Only replicas nothing fits yet come here unbound.
import { Counter, Histogram } from 'prom-client';
import type { Container, Host, Image, Workload } from '../api/v1alpha1/index.js';
import {
  avoidHostAnnotation,
  containerFinished,
  needsCheckpointAnnotation,
  normalizeImageReference,
  parseSpec,
  runtimeCleanupFinalizer,
  schedulingGateAnnotation,
} from '../api/v1alpha1/index.js';
import { realClock, type Clock } from '../kube/clock.js';
import { getCondition, isTrue, setCondition, setProgress } from '../kube/conditions.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../kube/controller.js';
import type { CustomResourceClient } from '../kube/customresource.js';
import type { EventRecorder } from '../kube/events.js';
import { Expectations } from '../kube/expectations.js';
import { finalizerPatch } from '../kube/finalizers.js';
import { objectKey, splitKey } from '../kube/keys.js';
import type { Manager, Source } from '../kube/manager.js';
import type { Cache } from '../kube/store.js';
import { registry } from '../obs/metrics.js';
import { byHost, byWorkload, controllingWorkload, sharedCaches, type Heartbeats } from './caches.js';
import { resourceClient } from '../kube/resources.js';
import { fieldManager, type ControllerContext } from './context.js';
import {
  allocatableAmounts,
  amounts,
  hostImageKeys,
  hostPorts,
  imageKeys,
  nonZeroDefaults,
  schedule,
  scheduledStatus,
  type Amounts,
  type ContainerRequest,
  type HostInfo,
  type HostPort,
} from './scheduler.js';

const attempts = new Counter({
  name: 'gantry_scheduling_attempts_total',
  help: 'Attempts to bind a Container to a Host, by result (scheduled, unschedulable, error)',
  labelNames: ['result'],
  registers: [registry],
});
for (const result of ['scheduled', 'unschedulable', 'error']) attempts.inc({ result }, 0);
const attemptDuration = new Histogram({
  name: 'gantry_scheduling_attempt_duration_seconds',
  help: 'Time to choose a Host for a Container and bind it',
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [registry],
});

/** Unschedulable Containers are tried again at least this often, whatever the events say. */
const retryUnschedulableMs = 60_000;
/** An assumed binding the cache has not confirmed after this long is dropped. */
const assumeTtlMs = 30_000;

export function setupSchedulingController(ctx: ControllerContext): void {
  const caches = sharedCaches(ctx, realClock);
  const reconciler = sharedScheduler(ctx);
  ctx.manager.controller({
    name: 'scheduler',
    kind: 'Container',
    reconciler,
    workers: 4,
    watches: [schedulingTriggers(caches, reconciler)],
  });
}

const perManager = new WeakMap<Manager, SchedulingReconciler>();

/** The process's one scheduler: every placement must see every other one's assumed bindings. */
export function sharedScheduler(ctx: ControllerContext): SchedulingReconciler {
  const existing = perManager.get(ctx.manager);
  if (existing) return existing;
  const caches = sharedCaches(ctx, realClock);
  const reconciler = new SchedulingReconciler({
    containers: caches.containers.cache,
    hosts: caches.hosts.cache,
    workloads: caches.workloads.cache,
    images: caches.images.cache,
    heartbeats: caches.heartbeats,
    api: resourceClient(ctx.client, 'Container'),
    recorder: ctx.recorder,
  });
  perManager.set(ctx.manager, reconciler);
  return reconciler;
}

/**
 * A Container is queued when it needs binding or its Scheduled condition; every unbound one is
 * queued again when something that may make room happens: a Container goes away, a Host changes
 * what the filters look at, or a lost Host sends heartbeats again.
 */
function schedulingTriggers(
  caches: ReturnType<typeof sharedCaches>,
  reconciler: SchedulingReconciler,
): Source {
  return {
    connect(enqueue) {
      const pending = (): void => {
        for (const c of caches.containers.cache.byIndex(byHost, '')) enqueue(objectKey(c));
      };
      const own = (c: Container): void => {
        if (!c.metadata.deletionTimestamp && !isTrue(c.status?.conditions, 'Scheduled'))
          enqueue(objectKey(c));
      };
      caches.containers.addEventHandler({
        onAdd: own,
        onUpdate: (_, c) => own(c),
        onDelete: (c) => {
          reconciler.assumed.cancel(objectKey(c));
          if (c.spec?.nodeName) pending();
        },
      });
      caches.hosts.addEventHandler({
        onAdd: pending,
        onUpdate: (before, after) => {
          if (filterView(before) !== filterView(after)) pending();
        },
      });
      caches.heartbeats.onRenewed((_, wasLost) => {
        if (wasLost) pending();
      });
    },
  };
}

/** What of a Host the filters read (not the heartbeat fields that change every report). */
function filterView(h: Host): string {
  const cond = (type: string) => getCondition(h.status?.conditions, type)?.status;
  return JSON.stringify([
    h.metadata.labels,
    h.spec?.unschedulable,
    cond('Ready'),
    cond('Schedulable'),
    h.status?.allocatable,
  ]);
}

/** A binding made but not yet seen in the cache: counted on its Host meanwhile. */
interface Assumed {
  /** Undefined for a Container placed before its create (`placeNew`). */
  uid?: string;
  host: string;
  requests: Amounts;
  hostPorts: readonly HostPort[];
  workload?: string;
}

export interface SchedulingReconcilerDeps {
  containers: Cache<Container>;
  hosts: Cache<Host>;
  workloads: Cache<Workload>;
  images: Cache<Image>;
  heartbeats: Pick<Heartbeats, 'fresh'>;
  api: Pick<CustomResourceClient<Container>, 'mergePatch' | 'applyStatus'>;
  recorder: EventRecorder;
  clock?: Clock;
}

export class SchedulingReconciler implements Reconciler {
  /** Bindings made but not yet seen in the cache, by Container key. */
  readonly assumed: Expectations<Assumed>;
  private readonly clock: Clock;
  // Derived from cached objects, which are replaced (never changed) on update.
  private readonly requestsOf = new WeakMap<Container, Amounts>();
  private readonly hostPortsOf = new WeakMap<Container, HostPort[]>();
  private readonly imagesOf = new WeakMap<Host, Set<string>>();

  constructor(private readonly deps: SchedulingReconcilerDeps) {
    this.clock = deps.clock ?? realClock;
    this.assumed = new Expectations(this.clock, assumeTtlMs);
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const c = this.deps.containers.get(key);
    if (!c || c.metadata.deletionTimestamp) return this.assumed.cancel(key);
    if (c.spec?.nodeName) {
      // The agent reports Scheduled=True with its first status; only a Scheduled=False the
      // scheduler wrote before the binding is corrected here, in case no agent ever reports.
      if (getCondition(c.status?.conditions, 'Scheduled')?.status === 'False')
        await this.writeStatus(c, scheduledStatus(c));
      return;
    }
    const gate = c.metadata.annotations?.[schedulingGateAnnotation];
    if (gate) {
      await this.unschedulable(c, 'SchedulingGated', `Waiting for the ${gate} gate to be lifted`, false);
      return;
    }
    const parsed = parseSpec('Container', c.spec);
    if (!parsed.ok) {
      await this.unschedulable(c, 'InvalidSpec', parsed.error);
      return;
    }
    const started = this.clock.now();
    const request = this.request(c);
    const result = schedule(request, this.hostInfos());
    if (result.host === undefined) {
      attempts.inc({ result: 'unschedulable' });
      ctx.log.info('No Host fits the Container', { reasons: result.reasons });
      await this.unschedulable(c, 'Unschedulable', result.message);
      return { requeueAfter: retryUnschedulableMs };
    }
    // Assumed before the first await, so concurrent workers already count it.
    this.assumed.expect(key, {
      uid: c.metadata.uid!,
      host: result.host,
      requests: request.requests,
      hostPorts: request.hostPorts ?? [],
      workload: controllingWorkload(c),
    });
    try {
      // The agent's finalizer comes with the binding: one write instead of two.
      await this.deps.api.mergePatch(splitKey(key), {
        metadata: {
          resourceVersion: c.metadata.resourceVersion,
          ...finalizerPatch(c, runtimeCleanupFinalizer, true),
        },
        spec: { nodeName: result.host },
      });
    } catch (err) {
      this.assumed.cancel(key);
      attempts.inc({ result: 'error' });
      throw err;
    }
    attempts.inc({ result: 'scheduled' });
    attemptDuration.observe((this.clock.now() - started) / 1000);
    // No Normal event: at scale Events are most of the writes, and the agent's status says
    // Scheduled=True (with the host) with its first report.
    ctx.log.debug('Bound Container', { host: result.host, feasible: result.feasible });
  }

  /**
   * Why no Host could take `c` now (the scheduler's message), or undefined when one could. Reserves
   * nothing: for deciding whether to stop something before its copy is placed.
   */
  whyUnplaceable(c: Container): string | undefined {
    const result = schedule(this.request(c), this.hostInfos());
    return result.host === undefined ? result.message : undefined;
  }

  /**
   * Chooses the Host of a Container about to be created, and counts it there until the cache shows
   * the Container. The creator reports the create's outcome (`createSettled`). Undefined leaves
   * the Container to be created unbound, for reconcile to explain: nothing fits, or a scheduling
   * gate is set.
   */
  placeNew(c: Container): string | undefined {
    if (c.metadata.annotations?.[schedulingGateAnnotation]) return undefined;
    const request = this.request(c);
    const result = schedule(request, this.hostInfos());
    if (result.host === undefined) return undefined;
    this.assumed.expect(objectKey(c), {
      host: result.host,
      requests: request.requests,
      hostPorts: request.hostPorts ?? [],
      workload: controllingWorkload(c),
    });
    return result.host;
  }

  /** The create of a Container `placeNew` placed: bound if it was made, its room given back if not. */
  createSettled(key: string, created: boolean): void {
    attempts.inc({ result: created ? 'scheduled' : 'error' });
    if (!created) this.assumed.cancel(key);
  }

  private async unschedulable(c: Container, reason: string, message: string, warn = true): Promise<void> {
    const generation = c.metadata.generation;
    let conditions = setCondition(c.status?.conditions, {
      type: 'Scheduled',
      status: 'False',
      reason,
      message,
      observedGeneration: generation,
    });
    // Until an agent runs it, the scheduler says how far along it is (kstatus); the agent takes over.
    const state = reason === 'InvalidSpec' ? 'Stalled' : 'Reconciling';
    conditions = setProgress(conditions, { state, reason, message }, generation).filter((cond) =>
      ['Scheduled', state].includes(cond.type),
    );
    await this.writeStatus(c, {
      observedGeneration: generation,
      phase: 'Pending',
      reason,
      message,
      conditions,
    });
    if (warn) this.deps.recorder.event(c, 'Warning', 'FailedScheduling', 'Scheduling', message);
  }

  /** Applies the controller's part of the status, skipped when the cached `c` already shows it. */
  private async writeStatus(c: Container, status: NonNullable<Container['status']>): Promise<void> {
    await this.deps.api.applyStatus(splitKey(objectKey(c)), status, { fieldManager, live: c });
  }

  private request(c: Container): ContainerRequest {
    const requests = this.requests(c);
    const namespace = c.metadata.namespace ?? '';
    const wanted = normalizeImageReference(c.spec.image);
    const resolved = this.deps.images
      .listByNamespace(namespace)
      .find((i) => i.status?.digest && normalizeImageReference(i.spec.image) === wanted)?.status?.digest;
    const avoidHost = c.metadata.annotations?.[avoidHostAnnotation];
    const request: ContainerRequest = {
      nodeSelector: c.spec.nodeSelector,
      requests,
      hostPorts: this.hostPorts(c),
      imageKeys: imageKeys(c.spec.image, resolved),
      ...(avoidHost
        ? {
            migration: {
              avoidHost,
              needsCheckpoint: c.metadata.annotations?.[needsCheckpointAnnotation] === 'true',
            },
          }
        : {}),
    };
    const workloadKey = controllingWorkload(c);
    const workload = workloadKey && this.deps.workloads.get(workloadKey);
    if (!workloadKey || !workload) return request;
    const parsed = parseSpec('Workload', workload.spec);
    const placement = parsed.ok ? parsed.value.placement : { maxSkew: 1, maxPerHost: undefined };
    const replicas = new Map<string, number>();
    const add = (host: string) => replicas.set(host, (replicas.get(host) ?? 0) + 1);
    for (const sibling of this.deps.containers.byIndex(byWorkload, workloadKey)) {
      const host = sibling.spec?.nodeName;
      if (host && !sibling.metadata.deletionTimestamp && !containerFinished(sibling)) add(host);
    }
    for (const a of this.pendingBindings()) if (a.workload === workloadKey) add(a.host);
    return { ...request, spread: { maxSkew: placement.maxSkew, maxPerHost: placement.maxPerHost, replicas } };
  }

  /** The assumed bindings the cache does not show yet; confirmed and vanished ones are dropped. */
  private pendingBindings(): Assumed[] {
    return this.assumed.pending((key, a) => {
      const cached = this.deps.containers.get(key);
      // One created bound is counted under its own nodeName once the cache has it.
      if (a.uid === undefined) return !!cached;
      return !cached || cached.metadata.uid !== a.uid || !!cached.spec?.nodeName;
    });
  }

  private hostInfos(): HostInfo[] {
    const assumed = this.pendingBindings();
    return this.deps.hosts.list().map((h) => {
      const name = h.metadata.name!;
      const requested = { cpuMilli: 0, memoryBytes: 0 };
      const scoringRequested = { cpuMilli: 0, memoryBytes: 0 };
      const add = (r: Amounts): void => {
        requested.cpuMilli += r.cpuMilli;
        requested.memoryBytes += r.memoryBytes;
        scoringRequested.cpuMilli += r.cpuMilli || nonZeroDefaults.cpuMilli;
        scoringRequested.memoryBytes += r.memoryBytes || nonZeroDefaults.memoryBytes;
      };
      const ports: HostPort[] = [];
      for (const c of this.deps.containers.byIndex(byHost, name)) {
        if (!containerFinished(c)) add(this.requests(c));
        // Finished ones too: the agent keeps a finished Container's sandbox, and with it the
        // runtime's port mapping, until the Container is gone. So do Containers being deleted.
        ports.push(...this.hostPorts(c));
      }
      for (const a of assumed) {
        if (a.host !== name) continue;
        add(a.requests);
        ports.push(...a.hostPorts);
      }
      let images = this.imagesOf.get(h);
      if (!images) this.imagesOf.set(h, (images = hostImageKeys(h.status?.images)));
      return {
        name,
        labels: h.metadata.labels ?? {},
        ready: isTrue(h.status?.conditions, 'Ready'),
        heartbeatFresh: this.deps.heartbeats.fresh(name),
        cordoned:
          !!h.spec?.unschedulable ||
          !!h.spec?.drain ||
          getCondition(h.status?.conditions, 'Schedulable')?.status === 'False',
        checkpoint: !!h.status?.checkpoint?.supported,
        allocatable: allocatableAmounts(h.status?.allocatable),
        requested,
        scoringRequested,
        hostPorts: ports,
        images,
      } satisfies HostInfo;
    });
  }

  private requests(c: Container): Amounts {
    let r = this.requestsOf.get(c);
    if (!r) this.requestsOf.set(c, (r = amounts(c.spec?.resources?.requests)));
    return r;
  }

  private hostPorts(c: Container): HostPort[] {
    let p = this.hostPortsOf.get(c);
    if (!p) this.hostPortsOf.set(c, (p = hostPorts(c.spec)));
    return p;
  }
}
