// The agent's Container reconciler: makes the runtime match the Containers bound to this host.
// The runtime is the only record of what runs: sandboxes and containers carry the Container's UID
// in their labels, and restart counts and back-off steps live in the runtime's metadata, so a
// restarted agent adopts what is running instead of starting it twice. Each step is idempotent.
import fs from 'node:fs';
import {
  parseSpec,
  workloadOwner,
  type Container,
  type ContainerSpec,
  type ContainerStatus,
  type Migration,
} from '../../api/v1alpha1/index.js';
import { metaTime } from '../../kube/conditions.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../kube/controller.js';
import type { CustomResourceClient } from '../../kube/customresource.js';
import { splitKey } from '../../kube/keys.js';
import type { Cache } from '../../kube/store.js';
import type { Logger } from '../../obs/logger.js';
import {
  type Container as RuntimeContainer,
  CriError,
  nanosToDate,
  type PodSandbox,
} from '../../cri/client.js';
import type { HealthMonitor } from '../health.js';
import { containerRestarts, containerStartDuration } from '../metrics.js';
import { type BackoffSettings, decideRestart } from '../restart.js';
import { labels, specHash } from '../runtimespec.js';
import type { MigrationRole, MigrationSupport } from './migration.js';
import {
  backoffStepLabel,
  removeSandbox,
  RuntimeObjects,
  type RuntimeObjectsDeps,
  type RuntimeObjectsOptions,
  type RuntimeState,
} from './runtime.js';
import { StatusWriter } from './status.js';
import { Teardown } from './teardown.js';

export interface ContainerReconcilerOptions extends RuntimeObjectsOptions {
  fieldManager: string;
  backoff: BackoffSettings;
}

export interface ContainerReconcilerDeps extends RuntimeObjectsDeps {
  cache: Cache<Container>;
  containers: Pick<CustomResourceClient<Container>, 'get' | 'apply' | 'applyStatus'>;
  health: HealthMonitor;
  migrations: MigrationSupport;
  /** Up while this host is cut off from the apiserver for longer than --fence-after-seconds (fence.ts). */
  fence: { readonly up: boolean };
}

/** The digest part of a runtime's image reference (repo@sha256:...), or the reference itself. */
function digestOf(imageRef: string): string {
  const at = imageRef.lastIndexOf('@');
  return at >= 0 ? imageRef.slice(at + 1) : imageRef;
}

function timeOf(ns: bigint): string | undefined {
  const d = nanosToDate(ns);
  return d ? metaTime(d) : undefined;
}

export class ContainerReconciler implements Reconciler {
  /** Workload replicas this agent stopped behind its fence, by key: their UIDs. */
  private readonly fenced = new Map<string, string>();
  private readonly runtime: RuntimeObjects;
  private readonly status: StatusWriter;
  private readonly teardown: Teardown;

  constructor(
    private readonly opts: ContainerReconcilerOptions,
    private readonly deps: ContainerReconcilerDeps,
  ) {
    this.runtime = new RuntimeObjects(opts, deps);
    this.status = new StatusWriter(opts.fieldManager, deps.containers);
    this.teardown = new Teardown(opts, deps);
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const c = this.deps.cache.get(key);
    if (!c) {
      // Deleted without our finalizer (we never acted on it): the orphan sweep removes leftovers.
      this.deps.health.stop(key);
      this.fenced.delete(key);
      return;
    }
    if (c.metadata.deletionTimestamp) return this.teardown.finalize(key, c, ctx.log);
    if (workloadOwner(c)) {
      if (this.deps.fence.up) return this.fenceOff(key, c, ctx.log);
      if (this.fenced.has(key) && !(await this.survivedFence(key, c))) return;
    }
    const parsed = parseSpec('Container', c.spec);
    if (!parsed.ok) {
      await this.status.write(c, { phase: 'Failed', reason: 'InvalidSpec', message: parsed.error });
      return;
    }
    await this.teardown.ensureFinalizer(c);
    return this.converge(key, c, parsed.value, ctx.log);
  }

  /** Removes runtime objects whose Container no longer exists (see Teardown.sweepOrphans). */
  sweepOrphans(log: Logger): Promise<number> {
    return this.teardown.sweepOrphans(log);
  }

  /**
   * Behind the fence a Workload replica is removed from the runtime: the controller is about to
   * replace it elsewhere. No status is written (the apiserver is out of reach).
   */
  private async fenceOff(key: string, c: Container, log: Logger): Promise<void> {
    if (this.fenced.get(key) === c.metadata.uid) return;
    this.deps.health.stop(key);
    log.warn('Cut off from the apiserver: stopping a Workload replica before it is replaced elsewhere');
    await this.teardown.removeAll(c.metadata.uid ?? '', c.spec.terminationGracePeriodSeconds ?? 30, log);
    this.fenced.set(key, c.metadata.uid ?? '');
  }

  /**
   * Once the fence is down the cache may still hold replicas the controller deleted meanwhile: the
   * apiserver itself says whether this one still exists before it starts again.
   */
  private async survivedFence(key: string, c: Container): Promise<boolean> {
    const live = await this.deps.containers.get(splitKey(key));
    if (!live || live.metadata.uid !== c.metadata.uid || live.metadata.deletionTimestamp) return false;
    this.fenced.delete(key);
    return true;
  }

  private async converge(
    key: string,
    c: Container,
    spec: ContainerSpec,
    log: Logger,
  ): Promise<ReconcileResult | void> {
    const state = await this.runtime.observe(c.metadata.uid ?? '');
    for (const stale of state.staleSandboxes) await removeSandbox(this.deps.cri, stale.id);
    const latest = state.attempts.at(-1);
    const role = this.deps.migrations.roleOf(c);
    if (role) {
      const handled = await (role.kind === 'source'
        ? this.migrateSource(role.migration, c, spec, state)
        : this.migrateTarget(role, key, c, spec, state));
      if (handled !== 'continue') return handled;
    }

    if (latest?.state === 'CONTAINER_RUNNING' && latest.labels[labels.specHash] === specHash(spec)) {
      return this.reportRunning(key, c, spec, state.sandbox!, latest);
    }
    if (latest?.state === 'CONTAINER_RUNNING') {
      // The spec changed under a running container: replace it once the new image is there.
      return this.startAttempt(key, c, spec, state, (latest.metadata?.attempt ?? 0) + 1, 0, log, latest);
    }
    if (latest?.state === 'CONTAINER_CREATED') {
      await this.deps.cri.startContainer({ containerId: latest.id });
      return this.deps.enqueue(key);
    }
    if (latest && state.sandbox) return this.handleExited(key, c, spec, state, latest, log);
    // Nothing runs for this Container yet (or its sandbox died with the host's network).
    return this.startAttempt(key, c, spec, state, latest ? (latest.metadata?.attempt ?? 0) + 1 : 0, 0, log);
  }

  private async handleExited(
    key: string,
    c: Container,
    spec: ContainerSpec,
    state: RuntimeState,
    latest: RuntimeContainer,
    log: Logger,
  ): Promise<ReconcileResult | void> {
    this.deps.health.stop(key);
    const { status: rs } = await this.deps.cri.containerStatus({ containerId: latest.id });
    const attempt = latest.metadata?.attempt ?? 0;
    const exitCode = rs?.exitCode ?? -1;
    const exited = {
      containerID: latest.id,
      sandboxID: state.sandbox?.id,
      exitCode,
      startedAt: timeOf(rs?.startedAt ?? 0n),
      finishedAt: timeOf(rs?.finishedAt ?? 0n),
      restartCount: attempt,
      imageDigest: rs ? digestOf(rs.imageRef) : undefined,
    };
    const decision = decideRestart(
      spec.restartPolicy,
      {
        exitCode,
        startedAt: nanosToDate(rs?.startedAt ?? 0n),
        finishedAt: nanosToDate(rs?.finishedAt ?? 0n),
        backoffStep: Number(latest.labels[backoffStepLabel] ?? 0),
      },
      this.opts.backoff,
    );
    const why = `exit code ${exitCode}${rs?.reason ? ` (${rs.reason})` : ''}`;
    if (!decision.restart) {
      await this.status.write(c, {
        ...exited,
        phase: decision.phase,
        reason: rs?.reason || (decision.phase === 'Succeeded' ? 'Completed' : 'Error'),
        message: `The process exited with ${why}; restartPolicy is ${spec.restartPolicy}`,
      });
      return;
    }
    const waitMs = decision.at.getTime() - Date.now();
    if (waitMs > 0) {
      this.deps.recorder.event(
        c,
        'Warning',
        'BackOff',
        'Restart',
        `Back-off restarting the container after ${why}`,
      );
      await this.status.write(c, {
        ...exited,
        phase: 'Restarting',
        reason: 'CrashLoopBackOff',
        message: `The process exited with ${why}; restarting in ${Math.ceil(waitMs / 1000)}s`,
        nextRestartAt: metaTime(decision.at),
      });
      return { requeueAfter: waitMs };
    }
    containerRestarts.inc({ namespace: c.metadata.namespace, name: c.metadata.name });
    return this.startAttempt(key, c, spec, state, attempt + 1, decision.backoffStep, log);
  }

  /**
   * The source of a migration: checkpoint and stop the process when asked, then hold it (no
   * restart) until the migration ends; resume it from its own checkpoint on a rollback.
   * 'continue' hands the Container back to the usual lifecycle.
   */
  private async migrateSource(
    m: Migration,
    c: Container,
    spec: ContainerSpec,
    state: RuntimeState,
  ): Promise<ReconcileResult | void | 'continue'> {
    const { migrations, cri, recorder } = this.deps;
    const latest = state.attempts.at(-1);
    const running = latest?.state === 'CONTAINER_RUNNING';
    const archive = migrations.archivePath(m);
    const target = m.status?.targetHost ?? 'the target';
    if (m.status?.phase === 'RollingBack') {
      if (running) {
        if (migrations.reported(m, 'Resumed')?.status !== 'True') {
          await migrations.report(m, { type: 'Resumed', status: 'True', reason: 'Resumed', message: '' });
        }
        return 'continue';
      }
      if (migrations.reported(m, 'Resumed')?.status === 'False') return this.hold(c, 'ResumeFailed', latest);
      try {
        if (!fs.existsSync(archive)) throw new Error('the checkpoint archive is not on this host any more');
        const attempt = (latest?.metadata?.attempt ?? 0) + 1;
        await this.runtime.createAndStart(c, spec, state, archive, attempt, 0);
        recorder.event(
          c,
          'Normal',
          'Resumed',
          'Restore',
          `Resumed from the checkpoint of Migration ${m.metadata.name}`,
        );
        await migrations.report(m, { type: 'Resumed', status: 'True', reason: 'Resumed', message: '' });
      } catch (e) {
        await this.migrationStepFailed(c, m, 'Resume', e);
      }
      return this.deps.enqueue(`${c.metadata.namespace}/${c.metadata.name}`);
    }
    const checkpointed = migrations.reported(m, 'Checkpointed');
    if (m.status?.phase === 'Checkpointing' && checkpointed?.status !== 'True') {
      if (checkpointed?.status === 'False') return 'continue'; // still running; the controller decides
      if (running) {
        const frozenAt = new Date();
        try {
          await cri.checkpointContainer({
            containerId: latest.id,
            location: archive,
            timeout: m.spec.timeoutSeconds,
          });
        } catch (e) {
          await this.migrationStepFailed(c, m, 'Checkpoint', e);
          return 'continue';
        }
        // The dump leaves the process running; whatever it did from now on would be lost on the
        // target, so it stops at once (the window is the time this call takes).
        await cri.stopContainer({ containerId: latest.id, timeout: 0 });
        recorder.event(
          c,
          'Normal',
          'Checkpointed',
          'Checkpoint',
          `Checkpointed for Migration ${m.metadata.name}`,
        );
        await migrations.report(
          m,
          { type: 'Checkpointed', status: 'True', reason: 'Checkpointed', message: '' },
          { frozenAt: frozenAt.toISOString(), checkpointSizeBytes: fs.statSync(archive).size },
        );
      } else if (fs.existsSync(archive)) {
        // Stopped after a dump whose report was lost (an agent restart): report it again.
        await migrations.report(
          m,
          { type: 'Checkpointed', status: 'True', reason: 'Checkpointed', message: '' },
          { frozenAt: new Date().toISOString(), checkpointSizeBytes: fs.statSync(archive).size },
        );
      } else {
        await migrations.report(m, {
          type: 'Checkpointed',
          status: 'False',
          reason: 'NotRunning',
          message: 'the container was not running when the checkpoint was due',
        });
        return 'continue';
      }
    }
    return this.hold(
      c,
      'Migrating',
      latest,
      `Frozen for Migration ${m.metadata.name}: its checkpoint moves to ${target}`,
    );
  }

  /**
   * The target of a migration: wait for the checkpoint, fetch it from the source agent, restore
   * it. Never starts from the image: that would run the process twice.
   */
  private async migrateTarget(
    role: Extract<MigrationRole, { kind: 'target' }>,
    key: string,
    c: Container,
    spec: ContainerSpec,
    state: RuntimeState,
  ): Promise<ReconcileResult | void | 'continue'> {
    const { migrations, recorder } = this.deps;
    const m = role.migration;
    const latest = state.attempts.at(-1);
    const phase = m?.status?.phase;
    if (!m)
      return latest
        ? 'continue'
        : this.hold(c, 'MigrationNotFound', latest, `Migration ${role.name} does not exist`);
    if (phase === 'Succeeded') return 'continue';
    if (phase === 'Transferring') {
      if (migrations.reported(m, 'Transferred')?.status === 'True')
        return this.hold(c, 'WaitingForRestore', latest);
      // The restore needs the image's layers here too.
      const image = await this.runtime.imageFor(key, c, spec);
      if ('waiting' in image) {
        await this.status.write(c, { ...image.waiting, phase: 'Migrating' });
        return image.requeueAfter ? { requeueAfter: image.requeueAfter } : undefined;
      }
      try {
        const size = await migrations.fetch(m);
        await migrations.report(m, {
          type: 'Transferred',
          status: 'True',
          reason: 'Transferred',
          message: `${size} bytes`,
        });
      } catch (e) {
        await this.migrationStepFailed(c, m, 'Transfer', e);
      }
      return this.hold(c, 'WaitingForRestore', latest);
    }
    if (phase === 'Restoring') {
      if (latest?.state === 'CONTAINER_RUNNING') {
        if (migrations.reported(m, 'Restored')?.status !== 'True') {
          await migrations.report(
            m,
            { type: 'Restored', status: 'True', reason: 'Restored', message: '' },
            { restoredAt: new Date().toISOString() },
          );
        }
        return 'continue';
      }
      if (latest || migrations.reported(m, 'Restored')?.status === 'False')
        return this.hold(c, 'RestoreFailed', latest);
      try {
        await this.runtime.createAndStart(c, spec, state, migrations.archivePath(m), 0, 0);
        const restoredAt = new Date().toISOString();
        recorder.event(
          c,
          'Normal',
          'Restored',
          'Restore',
          `Restored from the checkpoint of Migration ${m.metadata.name}`,
        );
        await migrations.report(
          m,
          { type: 'Restored', status: 'True', reason: 'Restored', message: '' },
          { restoredAt },
        );
      } catch (e) {
        await this.migrationStepFailed(c, m, 'Restore', e);
      }
      return this.deps.enqueue(key);
    }
    const reason =
      phase === 'Pending' || phase === 'Checkpointing' ? 'WaitingForCheckpoint' : 'MigrationFailed';
    return this.hold(c, reason, latest, `Migration ${m.metadata.name} is ${phase ?? 'starting'}`);
  }

  /** A migration step failed here: an event on the Container, and this agent's condition on the Migration. */
  private async migrationStepFailed(
    c: Container,
    m: Migration,
    step: keyof typeof migrationSteps,
    e: unknown,
  ): Promise<void> {
    const type = migrationSteps[step];
    const reason = `${step}Failed`;
    this.deps.recorder.event(c, 'Warning', reason, step, errorText(e));
    await this.deps.migrations.report(m, { type, status: 'False', reason, message: errorText(e) });
  }

  /** Status of a Container kept as it is for a migration: no start, no restart. */
  private async hold(
    c: Container,
    reason: string,
    latest: RuntimeContainer | undefined,
    message = '',
  ): Promise<void> {
    await this.status.write(c, {
      phase: 'Migrating',
      reason,
      message,
      ...(latest ? { containerID: latest.id, restartCount: latest.metadata?.attempt ?? 0 } : {}),
    });
  }

  private async startAttempt(
    key: string,
    c: Container,
    spec: ContainerSpec,
    state: RuntimeState,
    attempt: number,
    backoffStep: number,
    log: Logger,
    replacing?: RuntimeContainer,
  ): Promise<ReconcileResult | void> {
    const image = await this.runtime.imageFor(key, c, spec);
    if ('waiting' in image) {
      if (!replacing) await this.status.write(c, { ...image.waiting, restartCount: attempt });
      return image.requeueAfter ? { requeueAfter: image.requeueAfter } : undefined;
    }
    if (replacing) {
      this.deps.recorder.event(c, 'Normal', 'Killing', 'Stop', 'The spec changed: replacing the container');
      this.deps.health.stop(key);
      await this.deps.cri.stopContainer({
        containerId: replacing.id,
        timeout: spec.terminationGracePeriodSeconds,
      });
    }
    if (!state.sandbox) {
      await this.status.write(c, {
        phase: 'Creating',
        reason: 'ContainerCreating',
        message: 'Creating the sandbox',
      });
    }
    const containerId = await this.runtime.createAndStart(c, spec, state, image.image, attempt, backoffStep);
    if (containerId === undefined) return this.deps.enqueue(key);
    this.deps.recorder.event(c, 'Normal', 'Started', 'Start', `Started container from ${spec.image}`);
    log.info('Started container', { containerID: containerId, attempt });
    if (attempt === 0 && c.metadata.creationTimestamp) {
      // Raw JSON from the informer: a string at run time, whatever client-node's type says.
      containerStartDuration.observe((Date.now() - new Date(c.metadata.creationTimestamp).getTime()) / 1000);
    }
    this.deps.enqueue(key);
  }

  private async reportRunning(
    key: string,
    c: Container,
    spec: ContainerSpec,
    sandbox: PodSandbox,
    rc: RuntimeContainer,
  ): Promise<ReconcileResult | void> {
    const [{ status: rs }, { status: ss }] = await Promise.all([
      this.deps.cri.containerStatus({ containerId: rc.id }),
      this.deps.cri.podSandboxStatus({ podSandboxId: sandbox.id }),
    ]);
    const ip = ss?.network?.ip || undefined;
    let health: ContainerStatus['health'];
    let healthMessage: string | undefined;
    if (spec.healthCheck) {
      this.deps.health.ensure(
        key,
        { containerId: rc.id, ip, startedAt: nanosToDate(rs?.startedAt ?? 0n) },
        spec.healthCheck,
      );
      const h = this.deps.health.get(key);
      health = h?.health ?? 'Starting';
      healthMessage = h?.message;
    } else {
      this.deps.health.stop(key);
    }
    await this.status.write(
      c,
      {
        phase: 'Running',
        reason: 'Started',
        message: '',
        containerID: rc.id,
        sandboxID: sandbox.id,
        ip,
        imageDigest: digestOf(rs?.imageRef ?? rc.imageRef),
        startedAt: timeOf(rs?.startedAt ?? 0n),
        restartCount: rc.metadata?.attempt ?? 0,
        health,
      },
      healthMessage,
    );
  }
}

/** The migration steps an agent takes, and the condition each one reports on the Migration. */
const migrationSteps = {
  Checkpoint: 'Checkpointed',
  Transfer: 'Transferred',
  Restore: 'Restored',
  Resume: 'Resumed',
} as const;

function errorText(e: unknown): string {
  return e instanceof CriError ? e.details : e instanceof Error ? e.message : String(e);
}
