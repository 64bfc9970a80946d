// The Workload controller: keeps spec.replicas Containers of the current template, like a
// Deployment and its ReplicaSets in one. Each Container it makes is owned by the Workload
// (controller reference, so deleting the Workload deletes them), named
// <workload>-<template hash>-<5 random characters> and labelled with the template's labels,
// gantry.dev/workload=<workload> and gantry.dev/template-hash=<hash>. A template change rolls
// out as rollout.ts plans; putting an old template back rolls back, since its Containers carry the
// same hash. Creates and deletes are remembered until the cache shows them (expectations), so a
// cache lagging behind our own writes never makes us act twice. A template naming an Image
// (imageFrom) runs its digest: a new digest is a new revision, rolled out once the Hosts hold it
// (workloadimage.ts). The replicas' names, hashes and counting are in workloadreplicas.ts, the
// status computation in workloadstatus.ts.
import { Counter } from 'prom-client';
import {
  parseSpec,
  runtimeCleanupFinalizer,
  type Container,
  type Host,
  type Image,
  type Workload,
  type WorkloadSpec,
} from '../api/v1alpha1/index.js';
import { realClock, type Clock } from '../kube/clock.js';
import { getCondition } from '../kube/conditions.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../kube/controller.js';
import type { CustomResourceClient } from '../kube/customresource.js';
import { errorCode } from '../kube/errors.js';
import type { EventRecorder } from '../kube/events.js';
import { Expectations } from '../kube/expectations.js';
import { joinKey, objectKey, splitKey } from '../kube/keys.js';
import { watch } from '../kube/manager.js';
import type { Cache } from '../kube/store.js';
import { registry } from '../obs/metrics.js';
import { sharedScheduler, type SchedulingReconciler } from './binding.js';
import { byWorkload, controllingWorkload, sharedCaches } from './caches.js';
import { resourceClient } from '../kube/resources.js';
import { fieldManager, type ControllerContext } from './context.js';
import { planRollout, strategyOf } from './rollout.js';
import { concreteTemplate, hostsPulling, type ConcreteTemplate } from './workloadimage.js';
import { countedReplicas, replicaContainer, templateHash, toReplica } from './workloadreplicas.js';
import { invalidWorkloadStatus, workloadStatus, type Waiting } from './workloadstatus.js';

/** Label values are at most 63 characters, and the Workload's name is one (gantry.dev/workload). */
const maxNameLength = 63;
/** Expectations not met after this long are given up (a missed watch event must not block forever). */
const expectationsTtlMs = 120_000;
/**
 * At most this many creates, and as many deletes, per reconcile (the ReplicaSet controller's
 * burstReplicas): a Workload scaled to millions adds 500 Containers a pass, each pass once the
 * cache shows the last one's, instead of asking for all of them at once.
 */
const burstReplicas = 500;
/** While a rollout waits for Hosts to pull its image, look again this often (Image events wake it sooner). */
const pullingRecheckMs = 5_000;

const containerChanges = new Counter({
  name: 'gantry_workload_container_changes_total',
  help: 'Containers the Workload controller created or deleted, by action',
  labelNames: ['action'],
  registers: [registry],
});
for (const action of ['create', 'delete']) containerChanges.inc({ action }, 0);

export function setupWorkloadController(ctx: ControllerContext): void {
  const caches = sharedCaches(ctx, realClock);
  const reconciler = new WorkloadReconciler({
    workloads: caches.workloads.cache,
    containers: caches.containers.cache,
    images: caches.images.cache,
    hosts: caches.hosts.cache,
    workloadsApi: resourceClient(ctx.client, 'Workload'),
    containersApi: resourceClient(ctx.client, 'Container'),
    placement: sharedScheduler(ctx),
    recorder: ctx.recorder,
  });
  caches.containers.addEventHandler({
    onAdd: (c) => reconciler.observe(c),
    onUpdate: (_, c) => reconciler.observe(c),
    onDelete: (c) => reconciler.observe(c, true),
  });
  ctx.manager.controller({
    name: 'workload',
    kind: 'Workload',
    reconciler,
    workers: 4,
    watches: [
      watch(caches.workloads),
      watch(caches.containers, (c) => {
        const owner = controllingWorkload(c);
        return owner ? [owner] : [];
      }),
      // A new digest of an Image, or more Hosts holding it, is work for the Workloads naming it.
      watch(caches.images, (image) =>
        caches.workloads.cache
          .listByNamespace(image.metadata.namespace ?? '')
          .filter((wl) => wl.spec?.template?.spec?.imageFrom?.name === image.metadata.name)
          .map((wl) => objectKey(wl)),
      ),
    ],
  });
}

/** The shortest time between two status writes of one Workload. */
const statusWriteIntervalMs = 1000;

/** A create or delete of a Container made for the Workload `owner` (its key). */
interface Expected {
  owner: string;
  action: 'create' | 'delete';
}

export interface WorkloadReconcilerDeps {
  workloads: Cache<Workload>;
  containers: Cache<Container>;
  images: Cache<Image>;
  hosts: Cache<Host>;
  workloadsApi: Pick<CustomResourceClient<Workload>, 'applyStatus'>;
  containersApi: Pick<CustomResourceClient<Container>, 'create' | 'delete'>;
  /** The scheduler, asked for each new replica's Host before its create. */
  placement: Pick<SchedulingReconciler, 'placeNew' | 'createSettled'>;
  recorder: EventRecorder;
  clock?: Clock;
}

export class WorkloadReconciler implements Reconciler {
  /** Creates and deletes made that the cache has not shown yet, by Container key. */
  private readonly expectations: Expectations<Expected>;
  /** When each Workload's status was last written (clock ms): writes are coalesced. */
  private readonly statusWrittenAt = new Map<string, number>();
  private readonly clock: Clock;

  constructor(private readonly deps: WorkloadReconcilerDeps) {
    this.clock = deps.clock ?? realClock;
    this.expectations = new Expectations(this.clock, expectationsTtlMs);
  }

  /** Called for every Container event the informer delivers: a delete is met once it is going. */
  observe(c: Container, deleted = false): void {
    const going = deleted || !!c.metadata.deletionTimestamp;
    this.expectations.observe(objectKey(c), (e) => e.action === 'create' || going);
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const wl = this.deps.workloads.get(key);
    if (!wl) {
      this.expectations.cancelAll((e) => e.owner === key);
      this.statusWrittenAt.delete(key);
      return;
    }
    if (wl.metadata.deletionTimestamp) return;
    const parsed = parseSpec('Workload', wl.spec);
    const name = wl.metadata.name!;
    if (!parsed.ok) return this.invalid(wl, parsed.error);
    if (name.length > maxNameLength)
      return this.invalid(wl, `metadata.name: at most ${maxNameLength} characters (it is a label value)`);
    const spec = parsed.value;
    const pendingMs = this.expectations.pendingMs((e) => e.owner === key);
    if (pendingMs > 0) return { requeueAfter: pendingMs };

    const owned = countedReplicas(
      this.deps.containers
        .byIndex(byWorkload, key)
        .filter((c) => c.metadata.ownerReferences?.some((r) => r.controller && r.uid === wl.metadata.uid)),
    );
    const replicas = owned.map(toReplica);
    const resolved = concreteTemplate(spec.template, (image) =>
      this.deps.images.get(joinKey({ namespace: wl.metadata.namespace, name: image })),
    );
    // Without a digest to run, the Workload keeps what runs and changes nothing.
    const revision = resolved.ok ? templateHash(resolved.template) : (wl.status?.currentRevision ?? '');
    let waiting: Waiting | undefined = resolved.ok ? undefined : resolved;
    if (resolved.ok) {
      const plan = planRollout({
        replicas: spec.replicas,
        revision,
        strategy: strategyOf(spec),
        containers: replicas,
      });
      // The rollout (its deletes too, so nothing old stops early) begins once the Hosts hold the digest.
      const rollingOut = plan.create > 0 || replicas.some((r) => r.revision !== revision);
      const pulling =
        rollingOut && resolved.image
          ? hostsPulling(resolved.image, spec.placement.nodeSelector, this.deps.hosts.list(), imageKey(wl))
          : [];
      if (pulling.length > 0) {
        const image = resolved.template.spec.image;
        waiting = { reason: 'PullingImage', message: `${pulling.join(', ')} still pulling ${image}` };
      } else {
        const [create, remove] = [Math.min(plan.create, burstReplicas), plan.delete.slice(0, burstReplicas)];
        if (remove.length > 0) await this.deleteContainers(wl, key, remove, ctx);
        if (create > 0) await this.createContainers(wl, key, spec, resolved.template, revision, create, ctx);
      }
    }

    const now = this.clock.now();
    const pending = owned.find((c) => getCondition(c.status?.conditions, 'Scheduled')?.status === 'False');
    const status = workloadStatus({
      generation: wl.metadata.generation,
      spec,
      revision,
      replicas,
      previous: wl.status,
      now,
      unschedulable: pending && `${pending.metadata.name} is not scheduled: ${pending.status?.message ?? ''}`,
      waiting,
    });
    // During a scale-out every replica's start changes the counts: one write a second at most
    // says the same in the end, for a fraction of the apiserver's work.
    const coalesceMs = (this.statusWrittenAt.get(key) ?? -Infinity) + statusWriteIntervalMs - now;
    if (coalesceMs > 0) return { requeueAfter: coalesceMs };
    const live = await this.deps.workloadsApi.applyStatus(splitKey(key), status, { fieldManager, live: wl });
    if (live !== wl) this.statusWrittenAt.set(key, now);
    if (waiting?.reason === 'PullingImage') return { requeueAfter: pullingRecheckMs };
    if (getCondition(status.conditions, 'Progressing')?.reason !== 'RolloutProgressing') return;
    // Come back when the progress deadline would pass.
    const deadline = Date.parse(status.lastProgressTime!) + spec.progressDeadlineSeconds * 1000;
    return { requeueAfter: deadline - now + 1000 };
  }

  private async invalid(wl: Workload, error: string): Promise<void> {
    const now = new Date(this.clock.now());
    const status = invalidWorkloadStatus(wl.status, wl.metadata.generation, error, now);
    const live = await this.deps.workloadsApi.applyStatus(splitKey(objectKey(wl)), status, {
      fieldManager,
      live: wl,
    });
    if (live !== wl) this.deps.recorder.event(wl, 'Warning', 'InvalidSpec', 'Reconcile', error);
  }

  /** Creates in batches of 1, 2, 4... (the ReplicaSet's slow start): a failing create stops early. */
  private async createContainers(
    wl: Workload,
    key: string,
    spec: WorkloadSpec,
    template: ConcreteTemplate,
    revision: string,
    count: number,
    ctx: ReconcileContext,
  ): Promise<void> {
    let created = 0;
    for (let batch = 1; created < count; batch *= 2) {
      const bodies = Array.from({ length: Math.min(batch, count - created) }, () =>
        this.bound(replicaContainer(wl, spec, template, revision)),
      );
      for (const body of bodies) this.expectations.expect(objectKey(body), { owner: key, action: 'create' });
      const results = await Promise.allSettled(bodies.map((body) => this.deps.containersApi.create(body)));
      results.forEach((r, i) => {
        const body = bodies[i]!;
        if (r.status === 'rejected') this.expectations.cancel(objectKey(body));
        if (body.spec.nodeName) this.deps.placement.createSettled(objectKey(body), r.status === 'fulfilled');
      });
      const failed = results.flatMap((r, i) =>
        r.status === 'rejected' ? [{ body: bodies[i]!, err: r.reason }] : [],
      );
      created += results.length - failed.length;
      containerChanges.inc({ action: 'create' }, results.length - failed.length);
      if (failed.length > 0) {
        // A namespace being deleted refuses new objects; the Workload goes with it.
        if (failed.every((f) => isNamespaceTerminating(f.err))) return;
        this.deps.recorder.event(wl, 'Warning', 'FailedCreate', 'Create', String(failed[0]!.err));
        throw new Error(`creating Containers: ${failed.length} failed`, { cause: failed[0]!.err });
      }
    }
    ctx.log.info('Created Containers', { count, revision });
    this.deps.recorder.event(
      wl,
      'Normal',
      'SuccessfulCreate',
      'Create',
      `Created ${count} Containers of revision ${revision}`,
    );
  }

  /**
   * The replica with its Host and the agent's finalizer, when the scheduler places it now: the
   * binding is part of the create. Otherwise as it was, for the scheduler to bind or explain.
   */
  private bound(replica: Container): Container {
    const host = this.deps.placement.placeNew(replica);
    if (!host) return replica;
    return {
      ...replica,
      metadata: { ...replica.metadata, finalizers: [runtimeCleanupFinalizer] },
      spec: { ...replica.spec, nodeName: host },
    };
  }

  private async deleteContainers(
    wl: Workload,
    key: string,
    names: string[],
    ctx: ReconcileContext,
  ): Promise<void> {
    const namespace = wl.metadata.namespace;
    const results = await Promise.allSettled(
      names.map((name) => {
        this.expectations.expect(joinKey({ namespace, name }), { owner: key, action: 'delete' });
        return this.deps.containersApi.delete({ namespace, name });
      }),
    );
    const failed = results.flatMap((r, i) =>
      r.status === 'rejected' ? [{ name: names[i]!, err: r.reason }] : [],
    );
    for (const f of failed) this.expectations.cancel(joinKey({ namespace, name: f.name }));
    containerChanges.inc({ action: 'delete' }, names.length - failed.length);
    ctx.log.info('Deleted Containers', { names });
    this.deps.recorder.event(
      wl,
      'Normal',
      'SuccessfulDelete',
      'Delete',
      `Deleted Containers ${names.join(', ')}`,
    );
    if (failed.length > 0)
      throw new Error(`deleting Containers: ${failed.length} failed`, { cause: failed[0]!.err });
  }
}

/** How Hosts name a Workload's Image in status.imagePulls: "<namespace>/<name>". */
function imageKey(wl: Workload): string {
  return joinKey({ namespace: wl.metadata.namespace, name: wl.spec.template.spec.imageFrom?.name ?? '' });
}

/** The apiserver refused a create because the namespace is being deleted (cause NamespaceTerminating). */
function isNamespaceTerminating(err: unknown): boolean {
  const body = (err as { body?: unknown } | null)?.body;
  return errorCode(err) === 403 && typeof body === 'string' && body.includes('NamespaceTerminating');
}
