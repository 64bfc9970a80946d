// The Workload controller: keeps spec.replicas Containers of the current template, like a
// Deployment and its ReplicaSets in one. Each Container it makes is owned by the Workload
// (controller reference, so deleting the Workload deletes them), named
// <workload>-<template hash>-<5 random characters> and labelled with the template's labels,
// gantry.dev/workload=<workload> and gantry.dev/template-hash=<hash>. A template change rolls
// out as rollout.ts plans; putting an old template back rolls back, since its Containers carry the
// same hash. Creates and deletes are remembered until the cache shows them (expectations), so a
// cache lagging behind our own writes never makes us act twice.
import crypto from 'node:crypto';
import { Counter } from 'prom-client';
import {
  containerFinished,
  migratedToAnnotation,
  migrationLabel,
  templateHashLabel,
  workloadLabel,
  formatLabelSelector,
  parseSpec,
  type Container,
  type Workload,
  type WorkloadSpec,
  type WorkloadStatus,
} from '../api/v1alpha1/index.js';
import { realClock, type Clock } from '../kube/clock.js';
import {
  getCondition,
  isTrue,
  metaTime,
  progressConditionTypes,
  progressOf,
  setCondition,
  setProgress,
} from '../kube/conditions.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../kube/controller.js';
import type { CustomResourceClient } from '../kube/customresource.js';
import { errorCode } from '../kube/errors.js';
import type { EventRecorder } from '../kube/events.js';
import { joinKey, objectKey, splitKey } from '../kube/keys.js';
import { watch } from '../kube/manager.js';
import type { Cache } from '../kube/store.js';
import { registry } from '../obs/metrics.js';
import { byWorkload, controllingWorkload, sharedCaches } from './caches.js';
import { resourceClient } from '../kube/resources.js';
import { fieldManager, type ControllerContext } from './context.js';
import { maxUnavailable, planRollout, strategyOf, type Replica } from './rollout.js';

/** Label values are at most 63 characters, and the Workload's name is one (gantry.dev/workload). */
const maxNameLength = 63;
/** Expectations not met after this long are given up (a missed watch event must not block forever). */
const expectationsTtlMs = 120_000;

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
    workloadsApi: resourceClient(ctx.client, 'Workload'),
    containersApi: resourceClient(ctx.client, 'Container'),
    recorder: ctx.recorder,
  });
  caches.containers.addEventHandler({
    onAdd: (c) => reconciler.expectations.observe(c),
    onUpdate: (_, c) => reconciler.expectations.observe(c),
    onDelete: (c) => reconciler.expectations.observe(c, true),
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
    ],
  });
}

/** The template's hash: the same template (defaults applied) always gives the same 10 hex digits. */
export function templateHash(template: WorkloadSpec['template']): string {
  return crypto.createHash('sha256').update(canonicalJSON(template)).digest('hex').slice(0, 10);
}

function canonicalJSON(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJSON).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJSON(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Creates and deletes this process made that its cache has not shown yet, per Container key. */
export class Expectations {
  private readonly creates = new Map<string, { owner: string; expiresAt: number }>();
  private readonly deletes = new Map<string, { owner: string; expiresAt: number }>();

  constructor(private readonly clock: Clock) {}

  expectCreate(owner: string, key: string): void {
    this.creates.set(key, { owner, expiresAt: this.clock.now() + expectationsTtlMs });
  }

  expectDelete(owner: string, key: string): void {
    this.deletes.set(key, { owner, expiresAt: this.clock.now() + expectationsTtlMs });
  }

  /** A create or delete that failed will never be observed. */
  cancel(key: string): void {
    this.creates.delete(key);
    this.deletes.delete(key);
  }

  /** Called for every Container event the informer delivers. */
  observe(c: Container, deleted = false): void {
    const key = objectKey(c);
    this.creates.delete(key);
    if (deleted || c.metadata.deletionTimestamp) this.deletes.delete(key);
  }

  /** Milliseconds until the owner's pending expectations expire; 0 when none are pending. */
  pendingMs(owner: string): number {
    const now = this.clock.now();
    let latest = 0;
    for (const map of [this.creates, this.deletes]) {
      for (const [key, e] of map) {
        if (e.owner !== owner) continue;
        if (e.expiresAt <= now) map.delete(key);
        else latest = Math.max(latest, e.expiresAt - now);
      }
    }
    return latest;
  }

  forget(owner: string): void {
    for (const map of [this.creates, this.deletes])
      for (const [key, e] of map) if (e.owner === owner) map.delete(key);
  }
}

export function toReplica(c: Container): Replica {
  const phase = c.status?.phase;
  return {
    name: c.metadata.name!,
    revision: c.metadata.labels?.[templateHashLabel] ?? '',
    ready: phase === 'Running' && isTrue(c.status?.conditions, 'Ready'),
    nodeName: c.spec?.nodeName,
    createdAt: Date.parse(String(c.metadata.creationTimestamp ?? '')) || 0,
    deleting: !!c.metadata.deletionTimestamp,
    finished: containerFinished(c),
  };
}

export interface StatusInput {
  generation: number | undefined;
  spec: WorkloadSpec;
  revision: string;
  replicas: readonly Replica[];
  previous: WorkloadStatus | undefined;
  now: number;
  /** A pending Container's reason for not being scheduled, if any. */
  unschedulable?: string;
}

/**
 * The Workload's status. lastProgressTime moves when this observation is progress (Deployment's
 * rules: more updated, ready or available replicas, fewer old ones, or a new revision or
 * generation), and the progress deadline counts from it. Once a rollout completed, Progressing
 * stays True until the next one: a completed rollout never times out.
 */
export function workloadStatus(input: StatusInput): WorkloadStatus {
  const { spec, revision, previous, generation } = input;
  const desired = spec.replicas;
  const live = input.replicas.filter((r) => !r.deleting && !r.finished);
  const ready = live.filter((r) => r.ready).length;
  const updated = live.filter((r) => r.revision === revision).length;
  const old = live.length - updated;
  const complete = updated === desired && live.length === desired && ready === desired;
  const progressed =
    !previous ||
    previous.currentRevision !== revision ||
    previous.observedGeneration !== generation ||
    updated > (previous.updatedReplicas ?? 0) ||
    ready > (previous.readyReplicas ?? 0) ||
    old < (previous.replicas ?? 0) - (previous.updatedReplicas ?? 0);
  const recorded = Date.parse(previous?.lastProgressTime ?? '');
  // A status written before lastProgressTime existed starts the count now.
  const lastProgressAt = progressed || !Number.isFinite(recorded) ? input.now : recorded;
  const before = getCondition(previous?.conditions, 'Progressing');
  const settled = before?.reason === 'NewRevisionAvailable' && !progressed;
  const deadlineMs = spec.progressDeadlineSeconds * 1000;
  const timedOut = !complete && !settled && input.now - lastProgressAt > deadlineMs;
  const floor = desired - maxUnavailable(strategyOf(spec), desired);
  const now = new Date(input.now);
  let conditions = previous?.conditions ?? [];
  const set = (type: string, status: 'True' | 'False', reason: string, message: string): void => {
    conditions = setCondition(
      conditions,
      { type, status, reason, message, observedGeneration: generation },
      now,
    );
  };
  set(
    'Available',
    ready >= floor ? 'True' : 'False',
    ready >= floor ? 'MinimumReplicasAvailable' : 'MinimumReplicasUnavailable',
    `${ready} of ${desired} replicas available; at least ${floor} needed`,
  );
  if (complete || settled) {
    set('Progressing', 'True', 'NewRevisionAvailable', `Revision ${revision} is available`);
  } else if (timedOut) {
    set(
      'Progressing',
      'False',
      'ProgressDeadlineExceeded',
      `Revision ${revision} made no progress for ${spec.progressDeadlineSeconds}s`,
    );
  } else {
    set(
      'Progressing',
      'True',
      'RolloutProgressing',
      `Revision ${revision}: ${updated} of ${desired} updated`,
    );
  }
  const notReady = timedOut
    ? 'ProgressDeadlineExceeded'
    : old > 0
      ? spec.strategy.type === 'Recreate'
        ? 'Recreating'
        : 'RollingUpdate'
      : live.length < desired
        ? 'ScalingUp'
        : live.length > desired
          ? 'ScalingDown'
          : 'WaitingForReady';
  const counts = `${ready} of ${desired} replicas ready, ${updated} updated to revision ${revision}`;
  if (complete) set('Ready', 'True', 'Ready', counts);
  else set('Ready', 'False', notReady, input.unschedulable ? `${counts}; ${input.unschedulable}` : counts);
  conditions = setProgress(
    conditions,
    progressOf(getCondition(conditions, 'Ready'), workloadStalledReasons),
    generation,
    now,
  );
  return {
    observedGeneration: generation,
    replicas: live.length,
    readyReplicas: ready,
    updatedReplicas: updated,
    availableReplicas: ready,
    selector: formatLabelSelector(spec.selector),
    currentRevision: revision,
    lastProgressTime: metaTime(new Date(lastProgressAt)),
    conditions: conditions.filter((c) => workloadConditionTypes.includes(c.type)),
  };
}

const workloadConditionTypes = ['Available', 'Progressing', 'Ready', ...progressConditionTypes];
/** Ready reasons that need a change from someone (kstatus Stalled); the others are still working. */
const workloadStalledReasons = new Set(['InvalidSpec', 'ProgressDeadlineExceeded']);

export interface WorkloadReconcilerDeps {
  workloads: Cache<Workload>;
  containers: Cache<Container>;
  workloadsApi: Pick<CustomResourceClient<Workload>, 'applyStatus'>;
  containersApi: Pick<CustomResourceClient<Container>, 'create' | 'delete'>;
  recorder: EventRecorder;
  clock?: Clock;
}

export class WorkloadReconciler implements Reconciler {
  readonly expectations: Expectations;
  private readonly clock: Clock;

  constructor(private readonly deps: WorkloadReconcilerDeps) {
    this.clock = deps.clock ?? realClock;
    this.expectations = new Expectations(this.clock);
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const wl = this.deps.workloads.get(key);
    if (!wl) {
      this.expectations.forget(key);
      return;
    }
    if (wl.metadata.deletionTimestamp) return;
    const parsed = parseSpec('Workload', wl.spec);
    const name = wl.metadata.name!;
    if (!parsed.ok) return this.invalid(wl, parsed.error);
    if (name.length > maxNameLength)
      return this.invalid(wl, `metadata.name: at most ${maxNameLength} characters (it is a label value)`);
    const spec = parsed.value;
    const pendingMs = this.expectations.pendingMs(key);
    if (pendingMs > 0) return { requeueAfter: pendingMs };

    const owned = countedReplicas(
      this.deps.containers
        .byIndex(byWorkload, key)
        .filter((c) => c.metadata.ownerReferences?.some((r) => r.controller && r.uid === wl.metadata.uid)),
    );
    const replicas = owned.map(toReplica);
    const revision = templateHash(spec.template);
    const plan = planRollout({
      replicas: spec.replicas,
      revision,
      strategy: strategyOf(spec),
      containers: replicas,
    });
    if (plan.delete.length > 0) await this.deleteContainers(wl, key, plan.delete, ctx);
    if (plan.create > 0) await this.createContainers(wl, key, spec, revision, plan.create, ctx);

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
    });
    await this.deps.workloadsApi.applyStatus(splitKey(key), status, { fieldManager, live: wl });
    if (getCondition(status.conditions, 'Progressing')?.reason !== 'RolloutProgressing') return;
    // Come back when the progress deadline would pass.
    const deadline = Date.parse(status.lastProgressTime!) + spec.progressDeadlineSeconds * 1000;
    return { requeueAfter: deadline - now + 1000 };
  }

  private async invalid(wl: Workload, error: string): Promise<void> {
    const now = new Date(this.clock.now());
    const generation = wl.metadata.generation;
    let conditions = wl.status?.conditions ?? [];
    for (const type of ['Ready', 'Progressing']) {
      conditions = setCondition(
        conditions,
        { type, status: 'False', reason: 'InvalidSpec', message: error, observedGeneration: generation },
        now,
      );
    }
    conditions = setProgress(
      conditions,
      { state: 'Stalled', reason: 'InvalidSpec', message: error },
      generation,
      now,
    );
    const status = {
      observedGeneration: generation,
      conditions: conditions.filter((c) => c.type !== 'Available'),
    };
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
    revision: string,
    count: number,
    ctx: ReconcileContext,
  ): Promise<void> {
    let created = 0;
    for (let batch = 1; created < count; batch *= 2) {
      const bodies = Array.from({ length: Math.min(batch, count - created) }, () =>
        this.container(wl, spec, revision),
      );
      for (const body of bodies) this.expectations.expectCreate(key, objectKey(body));
      const results = await Promise.allSettled(bodies.map((body) => this.deps.containersApi.create(body)));
      const failed = results.flatMap((r, i) =>
        r.status === 'rejected' ? [{ body: bodies[i]!, err: r.reason }] : [],
      );
      for (const f of failed) this.expectations.cancel(objectKey(f.body));
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

  private async deleteContainers(
    wl: Workload,
    key: string,
    names: string[],
    ctx: ReconcileContext,
  ): Promise<void> {
    const namespace = wl.metadata.namespace;
    const results = await Promise.allSettled(
      names.map((name) => {
        this.expectations.expectDelete(key, joinKey({ namespace, name }));
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

  private container(wl: Workload, spec: WorkloadSpec, revision: string): Container {
    const name = wl.metadata.name!;
    const template = spec.template;
    return {
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Container',
      metadata: {
        name: `${name}-${revision}-${randomSuffix()}`,
        namespace: wl.metadata.namespace,
        labels: { ...template.metadata?.labels, [workloadLabel]: name, [templateHashLabel]: revision },
        ...(template.metadata?.annotations ? { annotations: template.metadata.annotations } : {}),
        ownerReferences: [
          {
            apiVersion: wl.apiVersion,
            kind: 'Workload',
            name,
            uid: wl.metadata.uid!,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: {
        ...template.spec,
        ...(spec.placement.nodeSelector ? { nodeSelector: spec.placement.nodeSelector } : {}),
      },
    };
  }
}

/**
 * The Containers that count as replicas. A migration's target and source are one replica: the
 * source counts until the Migration hands over (it sets migrated-to on the source, then removes the
 * migration label from the target), the target from then on. So the Workload neither replaces a
 * replica that is moving nor deletes one because a move briefly shows two.
 */
export function countedReplicas(containers: Container[]): Container[] {
  const names = new Map(containers.map((c) => [c.metadata.name, c]));
  return containers.filter((c) => {
    if (c.metadata.labels?.[migrationLabel]) return false;
    const to = c.metadata.annotations?.[migratedToAnnotation];
    const target = to ? names.get(to) : undefined;
    return !target || !!target.metadata.labels?.[migrationLabel];
  });
}

/** The apiserver refused a create because the namespace is being deleted (cause NamespaceTerminating). */
function isNamespaceTerminating(err: unknown): boolean {
  const body = (err as { body?: unknown } | null)?.body;
  return errorCode(err) === 403 && typeof body === 'string' && body.includes('NamespaceTerminating');
}

/** Five characters from Kubernetes' name-suffix alphabet (no vowels, no look-alikes). */
function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  return Array.from({ length: 5 }, () => alphabet[crypto.randomInt(alphabet.length)]).join('');
}
