// Restart mode (and fallback Restart):
//   a Workload's replica: start the target, wait until Ready, then delete the source (the Workload
//   never loses the replica); a bare Container: once a Host has room for its copy, delete it, then
//   start the copy there. Both pass through Restoring while the target starts.
import { migrationLabel, schedulingGateAnnotation, type Migration } from '../../api/v1alpha1/index.js';
import type { Clock } from '../../kube/clock.js';
import { isTrue, metaTime } from '../../kube/conditions.js';
import type { ReconcileResult } from '../../kube/controller.js';
import type { Logger } from '../../obs/logger.js';
import { controllingWorkload } from '../caches.js';
import type { MigrationStatusWriter } from './status.js';
import {
  pollMs,
  targetName,
  targetNameTaken,
  type MigrationReconcilerDeps,
  type MigrationSteps,
} from './steps.js';

/** How often a bare Container's restart looks for room again (Host changes do not wake a Migration). */
const waitForRoomMs = 5_000;

export class RestartFlow {
  constructor(
    private readonly deps: MigrationReconcilerDeps,
    private readonly steps: MigrationSteps,
    private readonly status: MigrationStatusWriter,
    private readonly clock: Clock,
  ) {}

  async reconcile(m: Migration, log: Logger): Promise<ReconcileResult | void> {
    const ns = m.metadata.namespace;
    const phase = m.status?.phase ?? 'Pending';
    const now = this.clock.now();
    const started = m.status?.startedAt ? Date.parse(m.status.startedAt) : now;
    const name = targetName(m, 'restart');
    if (now > started + m.spec.timeoutSeconds * 1000) return this.timedOut(m, name, phase);
    if (phase === 'Pending') return this.start(m, name, now);
    const target = this.deps.containers.get(`${ns}/${name}`);
    if (!target)
      return this.status.finish(m, 'Failed', 'TargetDeleted', `the new Container ${name} was deleted`);
    const source = this.deps.containers.get(`${ns}/${m.spec.container}`);
    if (target.metadata.annotations?.[schedulingGateAnnotation]) {
      if (source) {
        // The source stops only once its copy has somewhere to run: never none running for want of room.
        const nowhere = !target.spec.nodeName && this.deps.placement.whyUnplaceable(target);
        if (nowhere) {
          const message = `Waiting for a Host with room (${nowhere}); it keeps running on ${source.spec.nodeName}`;
          if (m.status?.message !== message) await this.status.write(m, { message });
          return { requeueAfter: waitForRoomMs };
        }
        await this.steps.deleteContainer(m, m.spec.container);
        if (!m.status?.frozenAt) await this.status.write(m, { frozenAt: new Date(now).toISOString() });
        return { requeueAfter: pollMs };
      }
      await this.deps.containersApi.mergePatch(
        { namespace: ns, name },
        { metadata: { annotations: { [schedulingGateAnnotation]: null } } },
      );
      return { requeueAfter: pollMs };
    }
    // A stopped Container's copy is stopped too (its spec says so): there once its agent says Stopped.
    const stoppedThere = target.spec.stopped === true && target.status?.phase === 'Stopped';
    if (!isTrue(target.status?.conditions, 'Ready') && !stoppedThere) {
      if (target.spec.nodeName && m.status?.targetHost !== target.spec.nodeName) {
        await this.status.write(m, { targetHost: target.spec.nodeName });
      }
      return { requeueAfter: pollMs };
    }
    await this.steps.handOver(m, target);
    if (stoppedThere) {
      log.info('Restart migration of a stopped Container done', { target: name, host: target.spec.nodeName });
      return this.status.finish(
        m,
        'Succeeded',
        'Succeeded',
        `Stopped on ${target.spec.nodeName} as ${name}, as it was`,
        { targetHost: target.spec.nodeName },
      );
    }
    const frozenAt = Date.parse(m.status?.frozenAt ?? '');
    const seconds = Number.isFinite(frozenAt) ? Math.max(0, (now - frozenAt) / 1000) : 0;
    log.info('Restart migration done', { target: name, host: target.spec.nodeName });
    return this.status.finish(m, 'Succeeded', 'Succeeded', `Running on ${target.spec.nodeName} as ${name}`, {
      targetHost: target.spec.nodeName,
      downtimeSeconds: Math.round(seconds * 1000) / 1000,
    });
  }

  /** Pending: creates the target (gated, for a bare Container) and moves on to Restoring. */
  private async start(m: Migration, name: string, now: number): Promise<ReconcileResult | void> {
    const checked = this.steps.checkSource(m);
    if ('failure' in checked) return this.status.finish(m, 'Failed', checked.reason, checked.failure);
    const { source } = checked;
    const sourceHost = source.spec.nodeName!;
    if (m.spec.targetHost === sourceHost) {
      return this.status.finish(m, 'Failed', 'SameHost', `the Container already runs on ${sourceHost}`);
    }
    // Checked before anything stops: a bare Container's copy pinned to no Host would never run.
    if (m.spec.targetHost && !this.deps.hosts.get(m.spec.targetHost)) {
      return this.status.finish(m, 'Failed', 'TargetNotFound', `Host ${m.spec.targetHost} does not exist`);
    }
    const taken = m.spec.targetHost && this.steps.hostPortsTaken(m, source, m.spec.targetHost);
    if (taken) return this.status.finish(m, 'Failed', 'HostPortInUse', taken);
    // A bare Container stops before its copy starts: the copy waits behind a scheduling gate,
    // and is also the record of what to start once the source is gone.
    const bare = !controllingWorkload(source);
    const target = await this.steps.ensureTarget(
      m,
      source,
      name,
      bare ? { [schedulingGateAnnotation]: 'migration' } : {},
    );
    if (!target) return this.status.finish(m, 'Failed', 'TargetNameTaken', targetNameTaken(name));
    await this.status.write(
      m,
      {
        phase: 'Restoring',
        sourceHost,
        targetContainer: name,
        targetContainerUID: target.metadata.uid,
        startedAt: m.status?.startedAt ?? metaTime(new Date(now)),
        message: bare ? 'Stopping the source, then starting it on another Host' : 'Starting the replacement',
      },
      { type: 'Normal', reason: 'Restarting', note: `Restarting ${m.spec.container} off ${sourceHost}` },
    );
    return { requeueAfter: pollMs };
  }

  /**
   * A restart that did not finish in time leaves one copy: while the source exists the target is
   * deleted; once the source is gone (a bare Container) the target is all there is, and is
   * released to run wherever the scheduler finds room.
   */
  private async timedOut(m: Migration, name: string, phase: string): Promise<void> {
    const ns = m.metadata.namespace;
    const why = `timed out after ${m.spec.timeoutSeconds}s in phase ${phase}`;
    const target = this.deps.containers.get(`${ns}/${name}`);
    if (target?.metadata.labels?.[migrationLabel]) {
      if (this.deps.containers.get(`${ns}/${m.spec.container}`)) {
        await this.steps.deleteContainer(m, name);
        return this.status.finish(m, 'Failed', 'Timeout', `${why}; it stays on ${m.status?.sourceHost}`);
      }
      await this.steps.handOver(m, target);
      return this.status.finish(m, 'Failed', 'Timeout', `${why}; ${name} runs wherever it can be scheduled`);
    }
    return this.status.finish(m, 'Failed', 'Timeout', why);
  }
}
