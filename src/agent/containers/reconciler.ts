// The agent's Container reconciler: makes the runtime match the Containers bound to this host.
// The runtime is the only record of what runs: sandboxes and containers carry the Container's UID
// in their labels, and restart counts and back-off steps live in the runtime's metadata, so a
// restarted agent adopts what is running instead of starting it twice. Each step is idempotent.
import fs from 'node:fs';
import type { Container, ContainerSpec, ContainerStatus, Migration } from '../../api/v1alpha1/index.js';
import {
  defaultPullPolicy,
  parseSpec,
  runtimeCleanupFinalizer,
  workloadOwner,
} from '../../api/v1alpha1/index.js';
import { metaTime } from '../../kube/conditions.js';
import type { CustomResourceClient } from '../../kube/customresource.js';
import { isConflict, isNotFound } from '../../kube/errors.js';
import type { EventRecorder } from '../../kube/events.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../kube/controller.js';
import { splitKey } from '../../kube/keys.js';
import type { Cache } from '../../kube/store.js';
import type { Logger } from '../../obs/logger.js';
import {
  type Container as RuntimeContainer,
  type CriClient,
  CriError,
  nanosToDate,
  type PodSandbox,
} from '../../cri/client.js';
import type { HealthMonitor } from '../health.js';
import type { MigrationRole, MigrationSupport } from './migration.js';
import { containerRestarts, containerStartDuration } from '../metrics.js';
import { type ImagePuller, PullError } from '../pull.js';
import type { PullAuth } from '../pullsecrets.js';
import { type BackoffSettings, decideRestart } from '../restart.js';
import {
  type ContainerIdentity,
  containerConfig,
  labels,
  logDirectory,
  managedByValue,
  sandboxConfig,
  specHash,
} from '../runtimespec.js';
import { StatusWriter } from './status.js';

/** Label on a runtime container: the restart back-off step it was started with. */
const backoffStepLabel = 'gantry.dev/backoff-step';

export interface ContainerReconcilerOptions {
  host: string;
  fieldManager: string;
  /** Root of the containers' log directories. */
  logRoot: string;
  cgroupParent?: string;
  backoff: BackoffSettings;
}

export interface ContainerReconcilerDeps {
  cri: CriClient;
  cache: Cache<Container>;
  containers: Pick<CustomResourceClient<Container>, 'get' | 'apply' | 'applyStatus'>;
  puller: ImagePuller;
  health: HealthMonitor;
  recorder: EventRecorder;
  /** Registry credentials for a Container's image from its imagePullSecrets. */
  pullAuth: (c: Container, image: string) => Promise<PullAuth>;
  /** The digest-pinned reference of the image when an Image object resolved it. */
  pinnedImage: (namespace: string, image: string) => string | undefined;
  /** Asks for another reconcile of a key (a pull finished...). */
  enqueue: (key: string) => void;
  migrations: MigrationSupport;
  /** Up while this host is cut off from the apiserver for longer than --fence-after-seconds (fence.ts). */
  fence: { readonly up: boolean };
}

/** What the runtime holds for one Container UID. */
interface RuntimeState {
  sandbox?: PodSandbox;
  /** Sandboxes to remove: not ready, or duplicates. */
  staleSandboxes: PodSandbox[];
  /** The sandbox's containers, newest attempt last. */
  attempts: RuntimeContainer[];
  nextSandboxAttempt: number;
}

function identity(c: Container): ContainerIdentity {
  return {
    namespace: c.metadata.namespace ?? 'default',
    name: c.metadata.name ?? '',
    uid: c.metadata.uid ?? '',
    labels: c.metadata.labels,
  };
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
  private readonly status: StatusWriter;

  constructor(
    private readonly opts: ContainerReconcilerOptions,
    private readonly deps: ContainerReconcilerDeps,
  ) {
    this.status = new StatusWriter(opts.fieldManager, deps.containers);
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const c = this.deps.cache.get(key);
    if (!c) {
      // Deleted without our finalizer (we never acted on it): the orphan sweep removes leftovers.
      this.deps.health.stop(key);
      this.fenced.delete(key);
      return;
    }
    if (c.metadata.deletionTimestamp) return this.finalize(key, c, ctx.log);
    if (workloadOwner(c)) {
      if (this.deps.fence.up) return this.fenceOff(key, c, ctx.log);
      if (this.fenced.has(key) && !(await this.survivedFence(key, c))) return;
    }
    const parsed = parseSpec('Container', c.spec);
    if (!parsed.ok) {
      await this.status.write(c, { phase: 'Failed', reason: 'InvalidSpec', message: parsed.error });
      return;
    }
    await this.ensureFinalizer(c);
    return this.converge(key, c, parsed.value, ctx.log);
  }

  /**
   * Behind the fence a Workload replica is removed from the runtime: the controller is about to
   * replace it elsewhere. No status is written (the apiserver is out of reach).
   */
  private async fenceOff(key: string, c: Container, log: Logger): Promise<void> {
    if (this.fenced.get(key) === c.metadata.uid) return;
    this.deps.health.stop(key);
    log.warn('Cut off from the apiserver: stopping a Workload replica before it is replaced elsewhere');
    await this.teardown(c.metadata.uid ?? '', c.spec.terminationGracePeriodSeconds ?? 30, log);
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

  /** Removes everything the runtime holds for a UID: a graceful stop first, then the sandbox. */
  async teardown(uid: string, graceSeconds: number, log: Logger): Promise<void> {
    const { containers } = await this.deps.cri.listContainers({
      filter: { labelSelector: { [labels.uid]: uid } },
    });
    await Promise.all(
      containers
        .filter((rc) => rc.state === 'CONTAINER_RUNNING')
        .map((rc) => this.deps.cri.stopContainer({ containerId: rc.id, timeout: graceSeconds })),
    );
    for (const rc of containers)
      await this.ignoreNotFound(this.deps.cri.removeContainer({ containerId: rc.id }));
    const { items } = await this.deps.cri.listPodSandbox({
      filter: { labelSelector: { [labels.uid]: uid } },
    });
    for (const s of items) {
      await this.ignoreNotFound(this.deps.cri.stopPodSandbox({ podSandboxId: s.id }));
      await this.ignoreNotFound(this.deps.cri.removePodSandbox({ podSandboxId: s.id }));
      const meta = s.metadata;
      if (meta) {
        fs.rmSync(logDirectory(this.opts.logRoot, { namespace: meta.namespace, name: meta.name, uid }), {
          recursive: true,
          force: true,
        });
      }
    }
    log.info('Removed runtime objects', { uid, containers: containers.length, sandboxes: items.length });
  }

  /**
   * Removes runtime objects whose Container no longer exists (deleted while the agent was away,
   * or without our finalizer). Only UIDs absent from the synced cache are touched.
   */
  async sweepOrphans(log: Logger): Promise<number> {
    const known = new Set(this.deps.cache.list().map((c) => c.metadata.uid));
    const { items } = await this.deps.cri.listPodSandbox({
      filter: { labelSelector: { [labels.managedBy]: managedByValue } },
    });
    const orphans = [
      ...new Set(items.map((s) => s.labels[labels.uid]).filter((u): u is string => !!u)),
    ].filter((uid) => !known.has(uid));
    for (const uid of orphans) await this.teardown(uid, 10, log);
    return orphans.length;
  }

  private async ignoreNotFound(p: Promise<unknown>): Promise<void> {
    try {
      await p;
    } catch (e) {
      if (!(e instanceof CriError && e.isNotFound())) throw e;
    }
  }

  private async finalize(key: string, c: Container, log: Logger): Promise<void> {
    this.deps.health.stop(key);
    if (!c.metadata.finalizers?.includes(runtimeCleanupFinalizer)) return;
    const grace = c.spec?.terminationGracePeriodSeconds ?? 30;
    this.deps.recorder.event(c, 'Normal', 'Killing', 'Stop', `Stopping container (grace period ${grace}s)`);
    await this.teardown(c.metadata.uid ?? '', grace, log);
    await this.setFinalizer(c, false);
  }

  private async ensureFinalizer(c: Container): Promise<void> {
    if (!c.metadata.finalizers?.includes(runtimeCleanupFinalizer)) await this.setFinalizer(c, true);
  }

  /**
   * Server-side apply of our finalizer alone: other finalizers are other managers' business. The
   * UID makes it a precondition: if the object is gone (or replaced by a namesake), the apply is
   * refused with a conflict instead of creating it again, and there is nothing left to do.
   */
  private async setFinalizer(c: Container, present: boolean): Promise<void> {
    await this.deps.containers
      .apply(
        {
          apiVersion: 'gantry.dev/v1alpha1',
          kind: 'Container',
          metadata: {
            name: c.metadata.name,
            namespace: c.metadata.namespace,
            uid: c.metadata.uid,
            finalizers: present ? [runtimeCleanupFinalizer] : [],
          },
        },
        { fieldManager: this.opts.fieldManager },
      )
      .catch((e: unknown) => {
        if (!isConflict(e) && !isNotFound(e)) throw e;
      });
  }

  private async observe(uid: string): Promise<RuntimeState> {
    const selector = { [labels.uid]: uid };
    const [{ items }, { containers }] = await Promise.all([
      this.deps.cri.listPodSandbox({ filter: { labelSelector: selector } }),
      this.deps.cri.listContainers({ filter: { labelSelector: selector } }),
    ]);
    const byAge = [...items].sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
    const sandbox = byAge.find((s) => s.state === 'SANDBOX_READY');
    const attempts = containers
      .filter((rc) => rc.podSandboxId === sandbox?.id)
      .sort((a, b) => (a.metadata?.attempt ?? 0) - (b.metadata?.attempt ?? 0));
    return {
      sandbox,
      staleSandboxes: byAge.filter((s) => s !== sandbox),
      attempts,
      nextSandboxAttempt: Math.max(-1, ...items.map((s) => s.metadata?.attempt ?? 0)) + 1,
    };
  }

  private async converge(
    key: string,
    c: Container,
    spec: ContainerSpec,
    log: Logger,
  ): Promise<ReconcileResult | void> {
    const id = identity(c);
    const state = await this.observe(id.uid);
    for (const stale of state.staleSandboxes) {
      await this.ignoreNotFound(this.deps.cri.stopPodSandbox({ podSandboxId: stale.id }));
      await this.ignoreNotFound(this.deps.cri.removePodSandbox({ podSandboxId: stale.id }));
    }
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
        await this.createAndStart(c, spec, state, archive, attempt, 0);
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
      const image = await this.imageFor(key, c, spec);
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
        await this.createAndStart(c, spec, state, migrations.archivePath(m), 0, 0);
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

  /** Pulls the image without holding a worker: a pending pull re-enqueues the key when done. */
  private async imageFor(
    key: string,
    c: Container,
    spec: ContainerSpec,
  ): Promise<{ image: string } | { waiting: Partial<ContainerStatus>; requeueAfter?: number }> {
    const ref = this.deps.pinnedImage(c.metadata.namespace ?? 'default', spec.image) ?? spec.image;
    const policy = spec.imagePullPolicy ?? defaultPullPolicy(spec.image);
    const { puller } = this.deps;
    if (policy !== 'Always') {
      const present = await puller.present(ref);
      if (present) return { image: present };
    }
    const { auth, problems } = await this.deps.pullAuth(c, ref);
    try {
      // Either at once (present, or a quick pull), or in the background. A pull already in
      // flight for another Container is joined, so this one is re-queued when it ends too.
      const pulling = puller.ensure(ref, policy, auth);
      const done = await Promise.race([pulling, new Promise<undefined>((r) => setTimeout(r, 50, undefined))]);
      if (done) return { image: done };
      this.deps.recorder.event(c, 'Normal', 'Pulling', 'Pull', `Pulling image ${ref}`);
      pulling.then(
        () => this.deps.enqueue(key),
        () => this.deps.enqueue(key),
      );
      return { waiting: { phase: 'Creating', reason: 'Pulling', message: `Pulling image ${ref}` } };
    } catch (e) {
      if (!(e instanceof PullError)) throw e;
      // A named pull Secret that is missing or unusable is the likelier cause: say so first.
      const reason = problems.length > 0 ? 'ImagePullSecretMissing' : e.reason;
      const message = [...problems, e.message].join('; ');
      this.deps.recorder.event(c, 'Warning', reason, 'Pull', message);
      return {
        waiting: { phase: 'Creating', reason, message },
        requeueAfter: Math.max(1000, e.retryAt - Date.now()),
      };
    }
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
    const image = await this.imageFor(key, c, spec);
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
    const containerId = await this.createAndStart(c, spec, state, image.image, attempt, backoffStep);
    if (containerId === undefined) return this.deps.enqueue(key);
    this.deps.recorder.event(c, 'Normal', 'Started', 'Start', `Started container from ${spec.image}`);
    log.info('Started container', { containerID: containerId, attempt });
    if (attempt === 0 && c.metadata.creationTimestamp) {
      // Raw JSON from the informer: a string at run time, whatever client-node's type says.
      containerStartDuration.observe((Date.now() - new Date(c.metadata.creationTimestamp).getTime()) / 1000);
    }
    this.deps.enqueue(key);
  }

  /**
   * Creates the runtime container of `attempt` from `image` (an image, or a checkpoint archive to
   * restore) in the Container's sandbox, creating the sandbox first if needed, and starts it.
   * Resolves with its ID, or undefined when an earlier create of ours already holds the name.
   */
  private async createAndStart(
    c: Container,
    spec: ContainerSpec,
    state: RuntimeState,
    image: string,
    attempt: number,
    backoffStep: number,
  ): Promise<string | undefined> {
    const id = identity(c);
    let sandbox = state.sandbox;
    const sbConfig = sandboxConfig(id, spec, {
      logRoot: this.opts.logRoot,
      cgroupParent: this.opts.cgroupParent,
      attempt: sandbox?.metadata?.attempt ?? state.nextSandboxAttempt,
    });
    if (!sandbox) {
      fs.mkdirSync(sbConfig.logDirectory!, { recursive: true });
      const { podSandboxId } = await this.deps.cri.runPodSandbox({ config: sbConfig });
      sandbox = (await this.observe(id.uid)).sandbox;
      if (sandbox?.id !== podSandboxId)
        throw new Error(`sandbox ${podSandboxId} is not ready after creation`);
    }
    // Older attempts only take space; the latest exited one stays until the new one exists.
    const previous = state.attempts.filter((rc) => rc.podSandboxId === sandbox!.id);
    const config = containerConfig(id, spec, { image, attempt });
    config.labels = { ...config.labels, [backoffStepLabel]: String(backoffStep) };
    let containerId: string;
    try {
      ({ containerId } = await this.deps.cri.createContainer({
        podSandboxId: sandbox.id,
        config,
        sandboxConfig: sbConfig,
      }));
    } catch (e) {
      // A create that succeeded before a crash of ours: the name is taken by our own container.
      if (!(e instanceof CriError && /already reserved|already exists/.test(e.details))) throw e;
      return undefined;
    }
    for (const old of previous)
      await this.ignoreNotFound(this.deps.cri.removeContainer({ containerId: old.id }));
    this.deps.recorder.event(c, 'Normal', 'Created', 'Create', `Created container (attempt ${attempt})`);
    await this.deps.cri.startContainer({ containerId });
    return containerId;
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
