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
import {
  containerStopped,
  needsCheckpointAnnotation,
  restoreFromAnnotation,
  type Container,
  type Migration,
} from '../../api/v1alpha1/index.js';
import type { Clock } from '../../kube/clock.js';
import { getCondition, metaTime } from '../../kube/conditions.js';
import type { ReconcileResult } from '../../kube/controller.js';
import type { Logger } from '../../obs/logger.js';
import type { MigrationStatusWriter } from './status.js';
import type { TransferTokens } from './tokens.js';
import {
  agentCondition,
  pollMs,
  targetName,
  targetNameTaken,
  type MigrationReconcilerDeps,
  type MigrationSteps,
} from './steps.js';

export class CheckpointFlow {
  constructor(
    private readonly deps: MigrationReconcilerDeps,
    private readonly steps: MigrationSteps,
    private readonly status: MigrationStatusWriter,
    private readonly tokens: TransferTokens,
    private readonly clock: Clock,
  ) {}

  async reconcile(m: Migration, phase: string, log: Logger): Promise<ReconcileResult | void> {
    if (phase === 'Pending') return this.start(m);
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
        return this.status.advance(
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
      if (c?.status === 'True')
        return this.status.advance(m, 'Restoring', `Restoring on ${m.status?.targetHost}`);
      if (c?.status === 'False') return this.rollBack(m, `transfer failed: ${c.message}`);
      return wait;
    }
    if (phase === 'Restoring') {
      const c = agentCondition(m, 'Restored');
      if (c?.status === 'False') return this.rollBack(m, `restore failed: ${c.message}`);
      const target = this.steps.target(m);
      if (c?.status === 'True' && target?.status?.phase === 'Running') return this.succeed(m, target);
      return wait;
    }
  }

  /** Pending: checks both Hosts can checkpoint, creates the target and waits until it is bound. */
  private async start(cached: Migration): Promise<ReconcileResult | void> {
    let m = cached;
    const checked = this.steps.checkSource(m);
    if ('failure' in checked) return this.status.finish(m, 'Failed', checked.reason, checked.failure);
    const { source } = checked;
    const sourceHost = source.spec.nodeName!;
    if (containerStopped(source)) {
      return this.beforeFreezeFailure(
        m,
        `Container ${m.spec.container} is stopped: there is no process to checkpoint (mode Restart moves it, stopped)`,
      );
    }
    // An agent probes checkpointing for a few seconds after it starts: no answer yet is no verdict.
    const unprobed = this.steps.probing();
    if (unprobed.includes(sourceHost) || (m.spec.targetHost && unprobed.includes(m.spec.targetHost))) {
      return { requeueAfter: pollMs };
    }
    if (!this.deps.hosts.get(sourceHost)?.status?.checkpoint?.supported) {
      return this.beforeFreezeFailure(m, `Host ${sourceHost} cannot checkpoint (its probe says no)`);
    }
    if (m.spec.targetHost) {
      const host = this.deps.hosts.get(m.spec.targetHost);
      if (!host)
        return this.status.finish(m, 'Failed', 'TargetNotFound', `Host ${m.spec.targetHost} does not exist`);
      if (m.spec.targetHost === sourceHost) {
        return this.status.finish(m, 'Failed', 'SameHost', `the Container already runs on ${sourceHost}`);
      }
      if (!host.status?.checkpoint?.supported) {
        return this.beforeFreezeFailure(
          m,
          `Host ${m.spec.targetHost} cannot restore checkpoints (its probe says no)`,
        );
      }
      const taken = this.steps.hostPortsTaken(m, source, m.spec.targetHost);
      if (taken) return this.status.finish(m, 'Failed', 'HostPortInUse', taken);
    }
    const issued = await this.tokens.issue(m);
    if (!issued) return;
    m = issued;
    const name = targetName(m, 'checkpoint');
    const target = await this.steps.ensureTarget(m, source, name, {
      [restoreFromAnnotation]: m.metadata.name!,
      [needsCheckpointAnnotation]: 'true',
    });
    if (!target) return this.status.finish(m, 'Failed', 'TargetNameTaken', targetNameTaken(name));
    const unschedulable = getCondition(target.status?.conditions, 'Scheduled');
    // Bound, and known by its UID: the only Container the target agent restores into.
    if (!target.spec.nodeName || !target.metadata.uid) {
      if (unschedulable?.status === 'False' && unprobed.length === 0) {
        await this.steps.deleteContainer(m, name);
        return this.beforeFreezeFailure(m, `no Host can take it: ${unschedulable.message}`);
      }
      return { requeueAfter: pollMs };
    }
    await this.status.write(
      m,
      {
        phase: 'Checkpointing',
        sourceHost,
        targetHost: target.spec.nodeName,
        targetContainer: name,
        targetContainerUID: target.metadata.uid,
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
      this.steps.target(m) ??
      this.deps.containers.get(`${m.metadata.namespace}/${targetName(m, 'checkpoint')}`);
    if (target) {
      await this.steps.deleteContainer(m, target.metadata.name!);
      return { requeueAfter: pollMs };
    }
    if (m.spec.fallback !== 'Restart') return this.status.finish(m, 'Failed', 'CheckpointNotPossible', why);
    log?.info('Falling back to a restart', { reason: why });
    await this.status.write(
      m,
      {
        phase: 'Pending',
        message: `${why}; falling back to Restart`,
        conditions: this.status.conditions(m, {
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
      await this.steps.deleteContainer(m, name);
      return { requeueAfter: pollMs };
    }
    const message = `${why}; resuming on ${m.status?.sourceHost}`;
    await this.status.write(
      m,
      { phase: 'RollingBack', message },
      { type: 'Warning', reason: 'RollingBack', note: message },
    );
  }

  private async finishRollback(m: Migration): Promise<ReconcileResult | void> {
    const resumed = agentCondition(m, 'Resumed');
    const why = m.status?.message ?? '';
    if (resumed?.status === 'True') return this.status.finish(m, 'RolledBack', 'RolledBack', why);
    if (resumed?.status === 'False') {
      return this.status.finish(
        m,
        'Failed',
        'ResumeFailed',
        `${why}; resuming failed (${resumed.message}): it restarts from its image`,
      );
    }
    if (!this.deps.containers.get(`${m.metadata.namespace}/${m.spec.container}`)) {
      return this.status.finish(m, 'Failed', 'ContainerNotFound', `${why}; the source Container is gone`);
    }
    return { requeueAfter: pollMs };
  }

  private async succeed(m: Migration, target: Container): Promise<void> {
    await this.steps.handOver(m, target);
    const frozenAt = Date.parse(m.status?.frozenAt ?? '');
    const restoredAt = Date.parse(m.status?.restoredAt ?? '');
    const seconds =
      Number.isFinite(frozenAt) && Number.isFinite(restoredAt)
        ? Math.max(0, (restoredAt - frozenAt) / 1000)
        : undefined;
    await this.status.finish(
      m,
      'Succeeded',
      'Succeeded',
      `Running on ${m.status?.targetHost} as ${target.metadata.name}${seconds !== undefined ? `, down ${seconds.toFixed(3)}s` : ''}`,
      seconds !== undefined ? { downtimeSeconds: Math.round(seconds * 1000) / 1000 } : {},
    );
  }
}
