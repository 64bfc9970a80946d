// The Migration controller drives one Container's move to another Host.
//
// Checkpoint mode (the process keeps its memory):
//   Pending       create the target Container (annotated to restore, unbound unless spec.targetHost
//                 names a Host: the scheduler places it on another Host that can checkpoint) and the
//                 transfer token; once bound -> Checkpointing
//   Checkpointing the source agent dumps the process and stops it (Checkpointed)  -> Transferring
//   Transferring  the target agent fetches the archive from the source agent (Transferred) -> Restoring
//   Restoring     the target agent restores it (Restored) and it runs -> Succeeded: the source
//                 Container is deleted, downtime = restoredAt - frozenAt
//   Any failure before the freeze: the source never stopped; fallback Restart, or Failed.
//   Any failure after it (or timeoutSeconds / maxDowntimeSeconds passing): the target Container is
//   deleted and, once it is gone (so the process never runs twice), RollingBack: the source agent
//   resumes the process from its own checkpoint -> RolledBack.
// Restart mode (and fallback Restart):
//   a Workload's replica: start the target, wait until Ready, then delete the source (the Workload
//   never loses the replica); a bare Container: delete it, then start it again on the target
//   under the same name. Both pass through Restoring while the target starts.
//
// The Container object is replaced, not moved (nodeName is immutable, as for Pods):
// status.targetContainer names the new one (<name>-m<hash> by checkpoint, <name>-r<hash> by restart).
// The agents report on the Migration's status with their own field managers; the controller reads
// their conditions and writes the phase.
import crypto from 'node:crypto';
import { CoreV1Api } from '@kubernetes/client-node';
import { Counter, Histogram } from 'prom-client';
import {
  avoidHostAnnotation,
  effectiveMode,
  finalMigrationPhases,
  migrationEnded,
  type FinalMigrationPhase,
  migratedFromAnnotation,
  migratedToAnnotation,
  migrationLabel,
  needsCheckpointAnnotation,
  restoreFromAnnotation,
  schedulingGateAnnotation,
  transferSecretName,
  type Container,
  type Host,
  type Migration,
  type MigrationStatus,
  parseSpec,
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
  type Condition,
} from '../kube/conditions.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../kube/controller.js';
import type { CustomResourceClient } from '../kube/customresource.js';
import { isConflict, isNotFound } from '../kube/errors.js';
import type { EventRecorder } from '../kube/events.js';
import { objectKey, splitKey } from '../kube/keys.js';
import { watch } from '../kube/manager.js';
import type { Cache } from '../kube/store.js';
import type { Logger } from '../obs/logger.js';
import { registry } from '../obs/metrics.js';
import { controllingWorkload, sharedCaches } from './caches.js';
import { resourceClient } from '../kube/resources.js';
import { fieldManager, type ControllerContext } from './context.js';

const pollMs = 1000;

const migrationsTotal = new Counter({
  name: 'gantry_migrations_total',
  help: 'Finished migrations, by mode and result',
  labelNames: ['mode', 'result'],
  registers: [registry],
});
for (const mode of ['Checkpoint', 'Restart'])
  for (const result of finalMigrationPhases) migrationsTotal.inc({ mode, result }, 0);
const downtime = new Histogram({
  name: 'gantry_migration_downtime_seconds',
  help: 'Seconds a migrated process was not running (frozen until restored on the target)',
  labelNames: ['mode'],
  buckets: [0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120],
  registers: [registry],
});
const duration = new Histogram({
  name: 'gantry_migration_duration_seconds',
  help: 'Seconds from the start of a migration to its end, by mode and result',
  labelNames: ['mode', 'result'],
  buckets: [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
  registers: [registry],
});

export function setupMigrationController(ctx: ControllerContext): void {
  const caches = sharedCaches(ctx, realClock);
  const api = resourceClient(ctx.client, 'Migration');
  const migrations = ctx.manager.informer<Migration>({ path: api.collectionPath() });
  const core = ctx.client.api(CoreV1Api);
  const secretNamespace = ctx.options.transferSecretNamespace ?? ctx.options.leaderElectionNamespace;
  const reconciler = new MigrationReconciler({
    migrations: migrations.cache,
    containers: caches.containers.cache,
    hosts: caches.hosts.cache,
    api,
    containersApi: resourceClient(ctx.client, 'Container'),
    recorder: ctx.recorder,
    secrets: {
      ensure: async (name, token) => {
        try {
          await core.createNamespacedSecret({
            namespace: secretNamespace,
            body: {
              metadata: { name, labels: { 'app.kubernetes.io/part-of': 'gantry' } },
              stringData: { token },
            },
          });
        } catch (e) {
          if (!isConflict(e)) throw e;
        }
      },
      remove: async (name) => {
        await core.deleteNamespacedSecret({ namespace: secretNamespace, name }).catch((e: unknown) => {
          if (!isNotFound(e)) throw e;
        });
      },
    },
  });
  ctx.manager.controller({
    name: 'migration',
    kind: 'Migration',
    reconciler,
    workers: 4,
    watches: [
      watch(migrations),
      // A migration waits on its Containers (bound, running, gone): their changes wake it.
      watch(caches.containers, (c) => reconciler.migrationsOf(c)),
    ],
  });
}

export interface MigrationReconcilerDeps {
  migrations: Cache<Migration>;
  containers: Cache<Container>;
  hosts: Cache<Host>;
  api: Pick<CustomResourceClient<Migration>, 'applyStatus'>;
  containersApi: Pick<CustomResourceClient<Container>, 'create' | 'delete' | 'mergePatch'>;
  recorder: EventRecorder;
  secrets: { ensure(name: string, token: string): Promise<void>; remove(name: string): Promise<void> };
  clock?: Clock;
}

type Status = NonNullable<Migration['status']>;

/** A deterministic name for the target, so a retried reconcile finds the one it created. */
export function targetName(m: Migration, flavour: 'checkpoint' | 'restart'): string {
  const hash = crypto.createHash('sha256').update(`${m.metadata.uid}/${flavour}`).digest('hex').slice(0, 5);
  return `${m.spec.container.slice(0, 240)}-${flavour === 'checkpoint' ? 'm' : 'r'}${hash}`;
}

const agentCondition = (m: Migration, type: string) => getCondition(m.status?.conditions, type);

export class MigrationReconciler implements Reconciler {
  private readonly clock: Clock;

  constructor(private readonly deps: MigrationReconcilerDeps) {
    this.clock = deps.clock ?? realClock;
  }

  /** The keys of the unfinished Migrations concerning a Container (as source or target). */
  migrationsOf(c: Container): string[] {
    const ns = c.metadata.namespace ?? 'default';
    return this.deps.migrations
      .listByNamespace(ns)
      .filter((m) => !migrationEnded(m))
      .filter((m) => m.spec.container === c.metadata.name || m.status?.targetContainer === c.metadata.name)
      .map((m) => objectKey(m));
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const m = this.deps.migrations.get(key);
    if (!m || m.metadata.deletionTimestamp) return;
    const phase = m.status?.phase ?? 'Pending';
    if (migrationEnded(m)) {
      await this.deps.secrets.remove(transferSecretName(m.metadata.uid!));
      return;
    }
    try {
      const parsed = parseSpec('Migration', m.spec);
      if (!parsed.ok) return await this.finish(m, 'Failed', 'InvalidSpec', parsed.error);
      if (effectiveMode(m) === 'Restart') return await this.restartFlow(m, ctx.log);
      return await this.checkpointFlow(m, phase, ctx.log);
    } catch (e) {
      if (!isConflict(e)) throw e;
      // Our cache was behind (see writeStatus): the newer Migration's watch event comes next.
      ctx.log.debug('Migration changed since it was read; deciding again', { phase });
      return { requeueAfter: pollMs };
    }
  }

  // ---- Checkpoint mode ---------------------------------------------------------------------

  private async checkpointFlow(m: Migration, phase: string, log: Logger): Promise<ReconcileResult | void> {
    if (phase === 'Pending') return this.startCheckpoint(m);
    if (phase === 'RollingBack') return this.finishRollback(m);
    const now = this.clock.now();
    const deadline = Date.parse(m.status?.startedAt ?? '') + m.spec.timeoutSeconds * 1000;
    const frozenAt = m.status?.frozenAt ? Date.parse(m.status.frozenAt) : undefined;
    const downtimeDeadline =
      frozenAt !== undefined && m.spec.maxDowntimeSeconds !== undefined
        ? frozenAt + m.spec.maxDowntimeSeconds * 1000
        : Number.POSITIVE_INFINITY;
    if (now > deadline)
      return this.rollBack(m, `timed out after ${m.spec.timeoutSeconds}s in phase ${phase}`);
    if (now > downtimeDeadline) {
      return this.rollBack(
        m,
        `the process was frozen longer than maxDowntimeSeconds (${m.spec.maxDowntimeSeconds}s)`,
      );
    }
    const wait = {
      requeueAfter: Math.min(Math.max(pollMs, Math.min(deadline, downtimeDeadline) - now), 30_000),
    };
    if (phase === 'Checkpointing') {
      const c = agentCondition(m, 'Checkpointed');
      if (c?.status === 'True')
        return this.advance(
          m,
          'Transferring',
          `Checkpointed on ${m.status?.sourceHost}; copying to ${m.status?.targetHost}`,
        );
      // The dump failed before the process stopped: it still runs on the source.
      if (c?.status === 'False') return this.beforeFreezeFailure(m, `checkpoint failed: ${c.message}`, log);
      return wait;
    }
    if (phase === 'Transferring') {
      const c = agentCondition(m, 'Transferred');
      if (c?.status === 'True') return this.advance(m, 'Restoring', `Restoring on ${m.status?.targetHost}`);
      if (c?.status === 'False') return this.rollBack(m, `transfer failed: ${c.message}`);
      return wait;
    }
    if (phase === 'Restoring') {
      const c = agentCondition(m, 'Restored');
      if (c?.status === 'False') return this.rollBack(m, `restore failed: ${c.message}`);
      const target = this.target(m);
      if (c?.status === 'True' && target?.status?.phase === 'Running') return this.succeed(m, target);
      return wait;
    }
  }

  private async startCheckpoint(m: Migration): Promise<ReconcileResult | void> {
    const checked = this.checkSource(m);
    if ('failure' in checked) return this.finish(m, 'Failed', checked.reason, checked.failure);
    const { source } = checked;
    const sourceHost = source.spec.nodeName!;
    // An agent probes checkpointing for a few seconds after it starts: no answer yet is no verdict.
    const unprobed = this.probing();
    if (unprobed.includes(sourceHost) || (m.spec.targetHost && unprobed.includes(m.spec.targetHost))) {
      return { requeueAfter: pollMs };
    }
    if (!this.deps.hosts.get(sourceHost)?.status?.checkpoint?.supported) {
      return this.beforeFreezeFailure(m, `Host ${sourceHost} cannot checkpoint (its probe says no)`);
    }
    if (m.spec.targetHost) {
      const host = this.deps.hosts.get(m.spec.targetHost);
      if (!host)
        return this.finish(m, 'Failed', 'TargetNotFound', `Host ${m.spec.targetHost} does not exist`);
      if (m.spec.targetHost === sourceHost) {
        return this.finish(m, 'Failed', 'SameHost', `the Container already runs on ${sourceHost}`);
      }
      if (!host.status?.checkpoint?.supported) {
        return this.beforeFreezeFailure(
          m,
          `Host ${m.spec.targetHost} cannot restore checkpoints (its probe says no)`,
        );
      }
    }
    await this.deps.secrets.ensure(
      transferSecretName(m.metadata.uid!),
      crypto.randomBytes(32).toString('hex'),
    );
    const name = targetName(m, 'checkpoint');
    const target = await this.ensureTarget(m, source, name, {
      [restoreFromAnnotation]: m.metadata.name!,
      [needsCheckpointAnnotation]: 'true',
    });
    const unschedulable = getCondition(target.status?.conditions, 'Scheduled');
    if (!target.spec.nodeName) {
      if (unschedulable?.status === 'False' && unprobed.length === 0) {
        await this.deleteContainer(m, name);
        return this.beforeFreezeFailure(m, `no Host can take it: ${unschedulable.message}`);
      }
      return { requeueAfter: pollMs };
    }
    await this.writeStatus(
      m,
      {
        phase: 'Checkpointing',
        sourceHost,
        targetHost: target.spec.nodeName,
        targetContainer: name,
        startedAt: metaTime(new Date(this.clock.now())),
        message: `Checkpointing on ${sourceHost} for ${target.spec.nodeName}`,
      },
      { type: 'Normal', reason: 'Checkpointing', note: `Checkpointing ${m.spec.container} on ${sourceHost}` },
    );
  }

  /** Nothing was frozen: the source runs on. Fallback Restart moves it anyway; otherwise Failed. */
  private async beforeFreezeFailure(
    m: Migration,
    why: string,
    log?: Logger,
  ): Promise<ReconcileResult | void> {
    const target =
      this.target(m) ?? this.deps.containers.get(`${m.metadata.namespace}/${targetName(m, 'checkpoint')}`);
    if (target) {
      await this.deleteContainer(m, target.metadata.name!);
      return { requeueAfter: pollMs };
    }
    if (m.spec.fallback !== 'Restart') return this.finish(m, 'Failed', 'CheckpointNotPossible', why);
    log?.info('Falling back to a restart', { reason: why });
    await this.writeStatus(
      m,
      {
        phase: 'Pending',
        message: `${why}; falling back to Restart`,
        conditions: this.conditions(m, {
          type: 'FellBack',
          status: 'True',
          reason: 'CheckpointNotPossible',
          message: why,
        }),
      },
      { type: 'Warning', reason: 'FallingBack', note: `${why}; falling back to Restart` },
    );
  }

  /** After the freeze: remove the target first (so the process never runs twice), then resume the source. */
  private async rollBack(m: Migration, why: string): Promise<ReconcileResult | void> {
    const name = m.status?.targetContainer;
    if (name && this.deps.containers.get(`${m.metadata.namespace}/${name}`)) {
      await this.deleteContainer(m, name);
      return { requeueAfter: pollMs };
    }
    const message = `${why}; resuming on ${m.status?.sourceHost}`;
    await this.writeStatus(
      m,
      { phase: 'RollingBack', message },
      { type: 'Warning', reason: 'RollingBack', note: message },
    );
  }

  private async finishRollback(m: Migration): Promise<ReconcileResult | void> {
    const resumed = agentCondition(m, 'Resumed');
    const why = m.status?.message ?? '';
    if (resumed?.status === 'True') return this.finish(m, 'RolledBack', 'RolledBack', why);
    if (resumed?.status === 'False') {
      return this.finish(
        m,
        'Failed',
        'ResumeFailed',
        `${why}; resuming failed (${resumed.message}): it restarts from its image`,
      );
    }
    if (!this.deps.containers.get(`${m.metadata.namespace}/${m.spec.container}`)) {
      return this.finish(m, 'Failed', 'ContainerNotFound', `${why}; the source Container is gone`);
    }
    return { requeueAfter: pollMs };
  }

  private async succeed(m: Migration, target: Container): Promise<void> {
    await this.handOver(m, target);
    const frozenAt = Date.parse(m.status?.frozenAt ?? '');
    const restoredAt = Date.parse(m.status?.restoredAt ?? '');
    const seconds =
      Number.isFinite(frozenAt) && Number.isFinite(restoredAt)
        ? Math.max(0, (restoredAt - frozenAt) / 1000)
        : undefined;
    await this.finish(
      m,
      'Succeeded',
      'Succeeded',
      `Running on ${m.status?.targetHost} as ${target.metadata.name}${seconds !== undefined ? `, down ${seconds.toFixed(3)}s` : ''}`,
      seconds !== undefined ? { downtimeSeconds: Math.round(seconds * 1000) / 1000 } : {},
    );
  }

  // ---- Restart mode ------------------------------------------------------------------------

  private async restartFlow(m: Migration, log: Logger): Promise<ReconcileResult | void> {
    const ns = m.metadata.namespace;
    const phase = m.status?.phase ?? 'Pending';
    const now = this.clock.now();
    const started = m.status?.startedAt ? Date.parse(m.status.startedAt) : now;
    const name = targetName(m, 'restart');
    if (now > started + m.spec.timeoutSeconds * 1000) return this.restartTimedOut(m, name, phase);
    if (phase === 'Pending') {
      const checked = this.checkSource(m);
      if ('failure' in checked) return this.finish(m, 'Failed', checked.reason, checked.failure);
      const { source } = checked;
      const sourceHost = source.spec.nodeName!;
      if (m.spec.targetHost === sourceHost) {
        return this.finish(m, 'Failed', 'SameHost', `the Container already runs on ${sourceHost}`);
      }
      // A bare Container stops before its copy starts: the copy waits behind a scheduling gate,
      // and is also the record of what to start once the source is gone.
      const bare = !controllingWorkload(source);
      await this.ensureTarget(m, source, name, bare ? { [schedulingGateAnnotation]: 'migration' } : {});
      await this.writeStatus(
        m,
        {
          phase: 'Restoring',
          sourceHost,
          targetContainer: name,
          startedAt: m.status?.startedAt ?? metaTime(new Date(now)),
          message: bare
            ? 'Stopping the source, then starting it on another Host'
            : 'Starting the replacement',
        },
        { type: 'Normal', reason: 'Restarting', note: `Restarting ${m.spec.container} off ${sourceHost}` },
      );
      return { requeueAfter: pollMs };
    }
    const target = this.deps.containers.get(`${ns}/${name}`);
    if (!target) return this.finish(m, 'Failed', 'TargetDeleted', `the new Container ${name} was deleted`);
    const source = this.deps.containers.get(`${ns}/${m.spec.container}`);
    if (target.metadata.annotations?.[schedulingGateAnnotation]) {
      if (source) {
        await this.deleteContainer(m, m.spec.container);
        if (!m.status?.frozenAt) await this.writeStatus(m, { frozenAt: new Date(now).toISOString() });
        return { requeueAfter: pollMs };
      }
      await this.deps.containersApi.mergePatch(
        { namespace: ns, name },
        { metadata: { annotations: { [schedulingGateAnnotation]: null } } },
      );
      return { requeueAfter: pollMs };
    }
    if (!isTrue(target.status?.conditions, 'Ready')) {
      if (target.spec.nodeName && m.status?.targetHost !== target.spec.nodeName) {
        await this.writeStatus(m, { targetHost: target.spec.nodeName });
      }
      return { requeueAfter: pollMs };
    }
    await this.handOver(m, target);
    const frozenAt = Date.parse(m.status?.frozenAt ?? '');
    const seconds = Number.isFinite(frozenAt) ? Math.max(0, (now - frozenAt) / 1000) : 0;
    log.info('Restart migration done', { target: name, host: target.spec.nodeName });
    return this.finish(m, 'Succeeded', 'Succeeded', `Running on ${target.spec.nodeName} as ${name}`, {
      targetHost: target.spec.nodeName,
      downtimeSeconds: Math.round(seconds * 1000) / 1000,
    });
  }

  /**
   * A restart that did not finish in time leaves one copy: while the source exists the target is
   * deleted; once the source is gone (a bare Container) the target is all there is, and is
   * released to run wherever the scheduler finds room.
   */
  private async restartTimedOut(m: Migration, name: string, phase: string): Promise<void> {
    const ns = m.metadata.namespace;
    const why = `timed out after ${m.spec.timeoutSeconds}s in phase ${phase}`;
    const target = this.deps.containers.get(`${ns}/${name}`);
    if (target?.metadata.labels?.[migrationLabel]) {
      if (this.deps.containers.get(`${ns}/${m.spec.container}`)) {
        await this.deleteContainer(m, name);
        return this.finish(m, 'Failed', 'Timeout', `${why}; it stays on ${m.status?.sourceHost}`);
      }
      await this.handOver(m, target);
      return this.finish(m, 'Failed', 'Timeout', `${why}; ${name} runs wherever it can be scheduled`);
    }
    return this.finish(m, 'Failed', 'Timeout', why);
  }

  // ---- Shared steps ------------------------------------------------------------------------

  private checkSource(m: Migration): { source: Container } | { reason: string; failure: string } {
    const source = this.deps.containers.get(`${m.metadata.namespace}/${m.spec.container}`);
    if (!source)
      return { reason: 'ContainerNotFound', failure: `Container ${m.spec.container} does not exist` };
    if (source.metadata.deletionTimestamp)
      return { reason: 'ContainerDeleting', failure: `Container ${m.spec.container} is being deleted` };
    if (!source.spec.nodeName || source.status?.phase !== 'Running') {
      return {
        reason: 'ContainerNotRunning',
        failure: `Container ${m.spec.container} is not running (phase ${source.status?.phase ?? 'Pending'})`,
      };
    }
    const busy = this.deps.migrations
      .listByNamespace(m.metadata.namespace ?? 'default')
      .find(
        (o) =>
          o !== m &&
          o.spec.container === m.spec.container &&
          o.status?.phase &&
          !migrationEnded(o) &&
          o.status.phase !== 'Pending',
      );
    if (busy)
      return { reason: 'AlreadyMigrating', failure: `Migration ${busy.metadata.name} is moving it already` };
    return { source };
  }

  /** Creates the target Container (copy of the source's spec, labels and owners) unless it exists. */
  private async ensureTarget(
    m: Migration,
    source: Container,
    name: string,
    annotations: Record<string, string>,
  ): Promise<Container> {
    const ns = m.metadata.namespace;
    const existing = this.deps.containers.get(`${ns}/${name}`);
    if (existing) return existing;
    const { nodeName: _bound, ...spec } = source.spec;
    const body = {
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Container',
      metadata: {
        name,
        namespace: ns,
        labels: { ...(source.metadata.labels ?? {}), [migrationLabel]: m.metadata.name! },
        annotations: {
          ...annotations,
          [avoidHostAnnotation]: source.spec.nodeName!,
          [migratedFromAnnotation]: source.metadata.name!,
        },
        ownerReferences: source.metadata.ownerReferences,
      },
      spec: { ...spec, ...(m.spec.targetHost ? { nodeName: m.spec.targetHost } : {}) },
    } as Container;
    try {
      return await this.deps.containersApi.create(body);
    } catch (e) {
      if (!isConflict(e)) throw e;
      return this.deps.containers.get(`${ns}/${name}`) ?? body;
    }
  }

  /**
   * The target takes the source's place, in an order that keeps the Workload's count right at every
   * step (see countedReplicas): mark the source as replaced, make the target an ordinary Container,
   * delete the source. Each step is idempotent, so a retried reconcile just repeats them.
   */
  private async handOver(m: Migration, target: Container): Promise<void> {
    const ns = m.metadata.namespace;
    const source = this.deps.containers.get(`${ns}/${m.spec.container}`);
    if (source && source.metadata.annotations?.[migratedToAnnotation] !== target.metadata.name) {
      await this.deps.containersApi.mergePatch(
        { namespace: ns, name: m.spec.container },
        { metadata: { annotations: { [migratedToAnnotation]: target.metadata.name! } } },
      );
    }
    await this.deps.containersApi.mergePatch(
      { namespace: m.metadata.namespace, name: target.metadata.name! },
      {
        metadata: {
          labels: { [migrationLabel]: null },
          annotations: {
            [restoreFromAnnotation]: null,
            [avoidHostAnnotation]: null,
            [needsCheckpointAnnotation]: null,
            [schedulingGateAnnotation]: null,
          },
        },
      },
    );
    if (source) await this.deleteContainer(m, m.spec.container);
  }

  /** Ready Hosts whose agent has not reported its checkpoint probe yet. */
  private probing(): string[] {
    return this.deps.hosts
      .list()
      .filter((h) => isTrue(h.status?.conditions, 'Ready') && h.status?.checkpoint === undefined)
      .map((h) => h.metadata.name!);
  }

  private target(m: Migration): Container | undefined {
    const name = m.status?.targetContainer;
    return name ? this.deps.containers.get(`${m.metadata.namespace}/${name}`) : undefined;
  }

  private async deleteContainer(m: Migration, name: string): Promise<void> {
    await this.deps.containersApi.delete({ namespace: m.metadata.namespace, name });
  }

  private async advance(m: Migration, phase: 'Transferring' | 'Restoring', message: string): Promise<void> {
    await this.writeStatus(m, { phase, message }, { type: 'Normal', reason: phase, note: message });
  }

  private async finish(
    m: Migration,
    phase: FinalMigrationPhase,
    reason: string,
    message: string,
    extra: Partial<Status> = {},
  ): Promise<void> {
    const now = this.clock.now();
    await this.writeStatus(
      m,
      {
        ...extra,
        phase,
        message,
        completedAt: metaTime(new Date(now)),
        conditions: this.conditions(m, {
          type: 'Ready',
          status: phase === 'Succeeded' ? 'True' : 'False',
          reason,
          message,
        }),
      },
      { type: phase === 'Succeeded' ? 'Normal' : 'Warning', reason: phase, note: message },
    );
    // Counted once the final phase is written: a write refused as stale is not an ending.
    const mode = effectiveMode(m);
    migrationsTotal.inc({ mode, result: phase });
    const started = Date.parse(m.status?.startedAt ?? '');
    if (Number.isFinite(started)) duration.observe({ mode, result: phase }, (now - started) / 1000);
    if (extra.downtimeSeconds !== undefined) downtime.observe({ mode }, extra.downtimeSeconds);
    await this.deps.secrets.remove(transferSecretName(m.metadata.uid!));
  }

  /**
   * The controller's conditions (Ready, FellBack, and kstatus' Reconciling or Stalled) with `update`
   * applied; the agents own the rest. A Migration that ended other than Succeeded is Stalled.
   */
  private conditions(
    m: Migration,
    update: Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>,
  ): Condition[] {
    const generation = m.metadata.generation;
    const mine = (m.status?.conditions ?? []).filter((c) =>
      ['Ready', 'FellBack', ...progressConditionTypes].includes(c.type),
    );
    const next = setCondition(mine, { ...update, observedGeneration: generation });
    if (update.type !== 'Ready') return next;
    const stalled = new Set(update.reason === 'InProgress' ? [] : [update.reason]);
    return setProgress(next, progressOf(update, stalled), generation);
  }

  /**
   * Applies the controller's fields; the ones it set before are carried over (SSA would drop them).
   * Every decision here was made on the cached `m`: the write carries its resourceVersion, so if the
   * cache was behind (this controller's own last write not seen yet, or an agent's report) it is
   * refused with a Conflict and reconcile decides again on the newer object. The event, if any,
   * is recorded only once the write is in.
   */
  private async writeStatus(
    m: Migration,
    fields: Partial<Status>,
    event?: { type: 'Normal' | 'Warning'; reason: string; note: string },
  ): Promise<void> {
    const own: (keyof MigrationStatus)[] = [
      'phase',
      'sourceHost',
      'targetHost',
      'targetContainer',
      'startedAt',
      'completedAt',
      'downtimeSeconds',
      'message',
    ];
    // In Restart mode the controller times the downtime itself; in Checkpoint mode the source agent does.
    if (effectiveMode(m) === 'Restart') own.push('frozenAt');
    const kept = Object.fromEntries(
      own.filter((k) => m.status?.[k] !== undefined).map((k) => [k, m.status![k]]),
    );
    const conditions =
      fields.conditions ??
      this.conditions(m, { type: 'Ready', status: 'False', reason: 'InProgress', message: '' });
    await this.deps.api.applyStatus(
      splitKey(objectKey(m)),
      { ...kept, ...fields, observedGeneration: m.metadata.generation, conditions },
      { fieldManager, resourceVersion: m.metadata.resourceVersion },
    );
    if (event) this.deps.recorder.event(m, event.type, event.reason, 'Migrate', event.note);
  }
}
