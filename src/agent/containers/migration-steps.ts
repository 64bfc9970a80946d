// The agent's steps in a checkpoint migration, taken by the Container reconciler (one worker per
// key, so every runtime call for a Container stays in one place). The source checkpoints and
// stops its process when asked, holds it until the migration ends and resumes it on a rollback;
// the target waits for the checkpoint, fetches it and restores it, never starting from the image
// (that would run the process twice). Each step is reported on the Migration (migration.ts).
// Before the freeze the source drains: it reports itself not Ready, so the Services in front of it
// withdraw its endpoint (the controller's EndpointSlices, then kube-proxy), and only once they
// have had the drain's time to follow, and requests in flight to end, is it frozen. Its address
// dies with the move: a request sent there after the freeze would fail.
import fs from 'node:fs';
import type { Container, ContainerSpec, Migration } from '../../api/v1alpha1/index.js';
import type { ReconcileResult } from '../../kube/controller.js';
import type { EventRecorder } from '../../kube/events.js';
import { type Container as RuntimeContainer, type CriClient, CriError } from '../../cri/client.js';
import { notTargetReason, stepConditions, type MigrationRole, type MigrationSupport } from './migration.js';
import type { RuntimeObjects, RuntimeState } from './runtime.js';
import { BackgroundCalls } from './background.js';
import { fileSha256 } from '../transfer.js';
import type { StatusWriter } from './status.js';

export interface MigrationStepsDeps {
  cri: CriClient;
  recorder: EventRecorder;
  enqueue: (key: string) => void;
  migrations: MigrationSupport;
  runtime: RuntimeObjects;
  status: StatusWriter;
}

/**
 * What the source publishes of its archive with Checkpointed: the target takes no more bytes and
 * restores only what matches. Hashing re-reads the archive while the process is frozen (about 1 s
 * a GiB here, from the page cache) so that the digest reaches the target through the API.
 */
async function archiveFacts(
  archive: string,
): Promise<{ checkpointSizeBytes: number; checkpointSHA256: string }> {
  return { checkpointSizeBytes: fs.statSync(archive).size, checkpointSHA256: await fileSha256(archive) };
}

/** What a step leaves to do: 'continue' hands the Container back to its usual lifecycle. */
export type StepOutcome = ReconcileResult | void | 'continue';

export class MigrationSteps {
  /** Checkpoint fetches, by Migration UID, resolving with the archive's size (background.ts). */
  private readonly fetches: BackgroundCalls<number>;
  /** When each source began draining, by Migration UID (a restarted agent drains again). */
  private readonly drains = new Map<string, number>();

  constructor(
    private readonly deps: MigrationStepsDeps,
    private readonly opts: { drainMs: number },
  ) {
    this.fetches = new BackgroundCalls(deps.enqueue);
  }

  /**
   * The source of a migration: checkpoint and stop the process when asked, then hold it (no
   * restart) until the migration ends; resume it from its own checkpoint on a rollback.
   */
  async migrateSource(
    m: Migration,
    c: Container,
    spec: ContainerSpec,
    state: RuntimeState,
  ): Promise<StepOutcome> {
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
        await this.deps.runtime.createAndStart(c, spec, state, archive, attempt, 0);
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
        const draining = await this.drain(m, c, latest);
        if (draining) return draining;
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
        this.drains.delete(m.metadata.uid!);
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
          { frozenAt: frozenAt.toISOString(), ...(await archiveFacts(archive)) },
        );
      } else if (fs.existsSync(archive)) {
        // Stopped after a dump whose report was lost (an agent restart): report it again.
        await migrations.report(
          m,
          { type: 'Checkpointed', status: 'True', reason: 'Checkpointed', message: '' },
          { frozenAt: new Date().toISOString(), ...(await archiveFacts(archive)) },
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
   * Takes the source out of its Services before the freeze: not Ready (phase Migrating, reason
   * Draining) for the drain's time, while it runs and serves what still reaches it. Resolves with
   * when to look again, or undefined once drained.
   */
  private async drain(
    m: Migration,
    c: Container,
    latest: RuntimeContainer,
  ): Promise<ReconcileResult | undefined> {
    if (this.opts.drainMs <= 0) return undefined;
    const uid = m.metadata.uid!;
    const since = this.drains.get(uid) ?? Date.now();
    this.drains.set(uid, since);
    if (c.status?.reason !== 'Draining') {
      await this.hold(
        c,
        'Draining',
        latest,
        `Leaving its Services' endpoints before the checkpoint of Migration ${m.metadata.name}`,
      );
    }
    const left = since + this.opts.drainMs - Date.now();
    return left > 0 ? { requeueAfter: left } : undefined;
  }

  /**
   * The target of a migration: wait for the checkpoint, fetch it from the source agent, restore
   * it. Never starts from the image: that would run the process twice.
   */
  async migrateTarget(
    role: Extract<MigrationRole, { kind: 'target' }>,
    key: string,
    c: Container,
    spec: ContainerSpec,
    state: RuntimeState,
  ): Promise<StepOutcome> {
    const { migrations, recorder } = this.deps;
    const m = role.migration;
    const latest = state.attempts.at(-1);
    const phase = m?.status?.phase;
    if (!m)
      return latest
        ? 'continue'
        : this.hold(c, 'MigrationNotFound', latest, `Migration ${role.name} does not exist`);
    if (role.held) {
      const { reason, message } = role.held;
      if (reason === notTargetReason && c.status?.reason !== notTargetReason) {
        recorder.event(c, 'Warning', reason, 'Restore', message);
      }
      return this.hold(c, reason, latest, message);
    }
    if (phase === 'Succeeded') return 'continue';
    if (phase === 'Transferring') {
      if (migrations.reported(m, 'Transferred')?.status === 'True')
        return this.hold(c, 'WaitingForRestore', latest);
      // The restore needs the image's layers here too.
      const image = await this.deps.runtime.imageFor(key, c, spec);
      if ('waiting' in image) {
        await this.deps.status.write(c, { ...image.waiting, phase: 'Migrating' });
        return image.requeueAfter ? { requeueAfter: image.requeueAfter } : undefined;
      }
      try {
        const fetch = this.fetches.poll(m.metadata.uid!);
        if (fetch === undefined) this.fetches.start(m.metadata.uid!, key, () => migrations.fetch(m));
        if (fetch === undefined || fetch === 'running') return this.hold(c, 'Transferring', latest);
        await migrations.report(m, {
          type: 'Transferred',
          status: 'True',
          reason: 'Transferred',
          message: `${fetch.result} bytes`,
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
        await this.deps.runtime.createAndStart(c, spec, state, migrations.archivePath(m), 0, 0);
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
    step: keyof typeof stepConditions,
    e: unknown,
  ): Promise<void> {
    const type = stepConditions[step];
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
    await this.deps.status.write(c, {
      phase: 'Migrating',
      reason,
      message,
      ...(latest ? { containerID: latest.id, restartCount: latest.metadata?.attempt ?? 0 } : {}),
    });
  }
}

function errorText(e: unknown): string {
  return e instanceof CriError ? e.details : e instanceof Error ? e.message : String(e);
}
