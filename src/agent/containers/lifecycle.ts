// A Container's process through its life on this host, once the reconciler knows what the runtime
// holds for it: start it, report it running, restart it after an exit (after a back-off that
// doubles with each quick crash, as the kubelet's CrashLoopBackOff) or leave it exited as its
// restartPolicy says, replace it when its spec changes, and stop it and run it again as
// spec.stopped says (stop.ts).
import {
  workloadOwner,
  type Container,
  type ContainerSpec,
  type ContainerStatus,
} from '../../api/v1alpha1/index.js';
import { metaTime } from '../../kube/conditions.js';
import type { ReconcileResult } from '../../kube/controller.js';
import type { EventRecorder } from '../../kube/events.js';
import type { Logger } from '../../obs/logger.js';
import {
  type Container as RuntimeContainer,
  type CriClient,
  CriError,
  nanosToDate,
  type PodSandbox,
} from '../../cri/client.js';
import type { HealthMonitor } from '../health.js';
import { containerRestarts, containerStartDuration } from '../metrics.js';
import { type BackoffSettings, decideRestart } from '../restart.js';
import { labels, specHash } from '../runtimespec.js';
import { stopGraceSeconds, stopStep } from '../stop.js';
import { BackgroundCalls } from './background.js';
import { backoffStepLabel, ignoreNotFound, type RuntimeObjects, type RuntimeState } from './runtime.js';
import type { StatusWriter } from './status.js';

export interface LifecycleDeps {
  cri: CriClient;
  health: HealthMonitor;
  recorder: EventRecorder;
  enqueue: (key: string) => void;
  runtime: RuntimeObjects;
  status: StatusWriter;
}

/** The digest part of a runtime's image reference (repo@sha256:...), or the reference itself. */
function digestOf(imageRef: string): string {
  const at = imageRef.lastIndexOf('@');
  return at >= 0 ? imageRef.slice(at + 1) : imageRef;
}

/**
 * The attempt to start for a Container of which the runtime holds no container: 0 for the first
 * start; after that, one more than the last attempt the agent reported in status, whatever removed
 * it (a kubelet sharing the runtime, a host reboot, the fence), so every start after the first is
 * a restart. A reported attempt without a containerID (still pulling or creating) was never
 * created: it is still the one to start.
 */
export function nextAttempt(status: ContainerStatus | undefined): number {
  const reported = status?.restartCount;
  if (reported === undefined) return 0;
  return status?.containerID ? reported + 1 : reported;
}

function timeOf(ns: bigint): string | undefined {
  const d = nanosToDate(ns);
  return d ? metaTime(d) : undefined;
}

/** What a Workload's replica says when asked to stop: its Workload decides how many run. */
function stopIgnoredMessage(workload: string): string {
  return (
    `spec.stopped is ignored: this Container is a replica of Workload ${workload}, which decides how ` +
    `many run; scale the Workload instead (kubectl scale workload/${workload} --replicas=N)`
  );
}

export class ContainerLifecycle {
  /** Stops that spec.stopped asked for, by runtime container ID (background.ts). */
  private readonly stops: BackgroundCalls<void>;

  constructor(
    private readonly backoff: BackoffSettings,
    private readonly deps: LifecycleDeps,
  ) {
    this.stops = new BackgroundCalls(deps.enqueue);
  }

  /** The next step for a Container from what the runtime holds for it. */
  async converge(
    key: string,
    c: Container,
    spec: ContainerSpec,
    state: RuntimeState,
    log: Logger,
  ): Promise<ReconcileResult | void> {
    const latest = state.attempts.at(-1);
    const stop = latest && this.stops.poll(latest.id);
    // A stop under way queues the Container again when it ends; one that just ended is acted on
    // from a fresh look at the runtime.
    if (stop === 'running') return;
    if (stop) return this.deps.enqueue(key);
    const stopped = spec.stopped === true && !workloadOwner(c);
    switch (stopStep({ stopped, latest: latest?.state, phase: c.status?.phase })) {
      case 'stop':
        return this.stop(key, c, spec, state, latest!);
      case 'report':
        return this.reportStopped(key, c, state, latest);
      case 'start':
        // The stopped attempts go (their logs stay): it starts as when the runtime holds nothing,
        // which a restarted agent also finds if it stopped between the two.
        for (const rc of state.attempts)
          await ignoreNotFound(this.deps.cri.removeContainer({ containerId: rc.id }));
        return this.startAttempt(
          key,
          c,
          spec,
          { ...state, attempts: [] },
          (latest!.metadata?.attempt ?? 0) + 1,
          0,
          log,
          { afterStop: true },
        );
    }
    if (latest?.state === 'CONTAINER_RUNNING' && latest.labels[labels.specHash] === specHash(spec)) {
      return this.reportRunning(key, c, spec, state.sandbox!, latest);
    }
    if (latest?.state === 'CONTAINER_RUNNING') {
      // The spec changed under a running container: replace it once the new image is there.
      return this.startAttempt(key, c, spec, state, (latest.metadata?.attempt ?? 0) + 1, 0, log, {
        replacing: latest,
      });
    }
    if (latest?.state === 'CONTAINER_CREATED') {
      await this.deps.cri.startContainer({ containerId: latest.id });
      return this.deps.enqueue(key);
    }
    if (latest && state.sandbox) return this.handleExited(key, c, spec, state, latest, log);
    // The runtime holds nothing for this Container: not started yet, or its sandbox went (with the
    // host's network, or removed behind the agent's back).
    return this.startAttempt(key, c, spec, state, nextAttempt(c.status), 0, log);
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
    const { exited, rs, why } = await this.exitedRun(state, latest);
    const { exitCode, restartCount: attempt } = exited;
    const decision = decideRestart(
      spec.restartPolicy,
      {
        exitCode,
        startedAt: nanosToDate(rs?.startedAt ?? 0n),
        finishedAt: nanosToDate(rs?.finishedAt ?? 0n),
        backoffStep: Number(latest.labels[backoffStepLabel] ?? 0),
      },
      this.backoff,
    );
    if (!decision.restart) {
      await this.deps.status.write(c, {
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
      await this.deps.status.write(c, {
        ...exited,
        phase: 'Restarting',
        reason: 'CrashLoopBackOff',
        message: `The process exited with ${why}; restarting in ${Math.ceil(waitMs / 1000)}s`,
        nextRestartAt: metaTime(decision.at),
      });
      return { requeueAfter: waitMs };
    }
    return this.startAttempt(key, c, spec, state, attempt + 1, decision.backoffStep, log);
  }

  /** What the runtime recorded of an exited attempt, as status fields, and its exit in words. */
  private async exitedRun(state: RuntimeState, latest: RuntimeContainer) {
    const { status: rs } = await this.deps.cri.containerStatus({ containerId: latest.id });
    const exitCode = rs?.exitCode ?? -1;
    const exited = {
      containerID: latest.id,
      sandboxID: state.sandbox?.id,
      exitCode,
      startedAt: timeOf(rs?.startedAt ?? 0n),
      finishedAt: timeOf(rs?.finishedAt ?? 0n),
      restartCount: latest.metadata?.attempt ?? 0,
      imageDigest: rs ? digestOf(rs.imageRef) : undefined,
    };
    return { exited, rs, why: `exit code ${exitCode}${rs?.reason ? ` (${rs.reason})` : ''}` };
  }

  /**
   * spec.stopped on a running process: Stopping is reported before it gets SIGTERM (it is also the
   * record that this exit is a stop), then the stop runs beside the workers, as a deletion's does.
   */
  private async stop(
    key: string,
    c: Container,
    spec: ContainerSpec,
    state: RuntimeState,
    running: RuntimeContainer,
  ): Promise<void> {
    const grace = stopGraceSeconds(spec);
    this.deps.health.stop(key);
    const s = c.status;
    await this.deps.status.write(c, {
      phase: 'Stopping',
      reason: 'Stopping',
      message: `spec.stopped is true: the process gets SIGTERM, and SIGKILL if it still runs after ${grace}s`,
      containerID: running.id,
      sandboxID: state.sandbox?.id,
      ip: s?.ip,
      imageDigest: s?.imageDigest,
      startedAt: s?.startedAt,
      restartCount: running.metadata?.attempt ?? 0,
    });
    this.deps.recorder.event(c, 'Normal', 'Killing', 'Stop', `Stopping container (grace period ${grace}s)`);
    this.stops.start(running.id, key, () =>
      this.deps.cri.stopContainer({ containerId: running.id, timeout: grace }),
    );
  }

  /**
   * spec.stopped and nothing runs: Stopped, with the exit of the last run. Without one in the
   * runtime (never started, or removed behind the agent's back) the last status's account stays.
   */
  private async reportStopped(
    key: string,
    c: Container,
    state: RuntimeState,
    latest: RuntimeContainer | undefined,
  ): Promise<void> {
    this.deps.health.stop(key);
    if (latest && latest.state !== 'CONTAINER_CREATED') {
      const { exited, why } = await this.exitedRun(state, latest);
      await this.deps.status.write(c, {
        ...exited,
        phase: 'Stopped',
        reason: 'Stopped',
        message: `spec.stopped is true: the process exited with ${why} and is not restarted`,
      });
      return;
    }
    const s = c.status;
    await this.deps.status.write(c, {
      phase: 'Stopped',
      reason: 'Stopped',
      message: s?.startedAt
        ? 'spec.stopped is true: the process is not restarted'
        : 'spec.stopped is true: the process is not started',
      containerID: s?.containerID,
      sandboxID: s?.sandboxID,
      exitCode: s?.exitCode,
      startedAt: s?.startedAt,
      finishedAt: s?.finishedAt,
      restartCount: s?.restartCount,
      imageDigest: s?.imageDigest,
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
    how: { replacing?: RuntimeContainer; afterStop?: boolean } = {},
  ): Promise<ReconcileResult | void> {
    const { replacing, afterStop } = how;
    const image = await this.deps.runtime.imageFor(key, c, spec);
    if ('waiting' in image) {
      if (!replacing) await this.deps.status.write(c, { ...image.waiting, restartCount: attempt });
      return image.requeueAfter ? { requeueAfter: image.requeueAfter } : undefined;
    }
    const refusal = await this.rootRefusal(spec, image.image);
    if (refusal) {
      const message = `securityContext.runAsNonRoot is set, but ${refusal}`;
      return this.cannotCreate(c, 'CreateContainerConfigError', message, attempt);
    }
    if (replacing) {
      this.deps.recorder.event(c, 'Normal', 'Killing', 'Stop', 'The spec changed: replacing the container');
      this.deps.health.stop(key);
      await this.deps.cri.stopContainer({
        containerId: replacing.id,
        timeout: spec.terminationGracePeriodSeconds,
      });
    }
    // The first start writes status once, when it runs (or fails); a restart that has to make a
    // new sandbox says so, since its last status still shows the exited attempt.
    if (!state.sandbox && attempt > 0) {
      await this.deps.status.write(c, {
        phase: 'Creating',
        reason: 'ContainerCreating',
        message: 'Creating the sandbox',
        restartCount: attempt,
      });
    }
    let containerId: string | undefined;
    try {
      containerId = await this.deps.runtime.createAndStart(c, spec, state, image.image, attempt, backoffStep);
    } catch (e) {
      if (!(e instanceof CriError)) throw e;
      const message = `The runtime could not create or start the container: ${e.details}`;
      await this.cannotCreate(c, 'CreateContainerError', message, attempt);
      throw e;
    }
    if (containerId === undefined) return this.deps.enqueue(key);
    // Counted once made, however many reconciles the restart took (a pull, a lost sandbox); a
    // start after a stop is the user's, not a restart.
    if (attempt > 0 && !replacing && !afterStop)
      containerRestarts.inc({ namespace: c.metadata.namespace, name: c.metadata.name });
    // Events are for what a user must see: a restart, not each first start (status says that).
    if (attempt > 0)
      this.deps.recorder.event(
        c,
        'Normal',
        'Started',
        'Start',
        `Started attempt ${attempt} from ${spec.image}${afterStop ? ': spec.stopped is false again' : ''}`,
      );
    log.info('Started container', { containerID: containerId, attempt });
    if (attempt === 0 && c.metadata.creationTimestamp) {
      // Raw JSON from the informer: a string at run time, whatever client-node's type says.
      containerStartDuration.observe((Date.now() - new Date(c.metadata.creationTimestamp).getTime()) / 1000);
    }
    // Reported at once: re-queued, the report would wait behind every other start in the queue
    // (measured: seconds in a burst).
    const started = await this.deps.runtime.observe(c.metadata.uid ?? '');
    const latest = started.attempts.at(-1);
    if (started.sandbox && latest?.id === containerId && latest.state === 'CONTAINER_RUNNING')
      return this.reportRunning(key, c, spec, started.sandbox, latest);
    this.deps.enqueue(key);
  }

  /** A start that failed before anything ran: a Warning and the status say why (kstatus Stalled). */
  private async cannotCreate(c: Container, reason: string, message: string, attempt: number): Promise<void> {
    this.deps.recorder.event(c, 'Warning', reason, 'Create', message);
    await this.deps.status.write(c, { phase: 'Creating', reason, message, restartCount: attempt });
  }

  /**
   * Why a Container that must not run as root would (the kubelet's check): undefined when it may
   * start. Without runAsUser the image's USER decides, and only a numeric one can be verified.
   */
  private async rootRefusal(spec: ContainerSpec, image: string): Promise<string | undefined> {
    const sc = spec.securityContext;
    if (!sc?.runAsNonRoot || sc.runAsUser !== undefined) return undefined;
    const { image: status } = await this.deps.cri.imageStatus({ image: { image } });
    const fix = 'set securityContext.runAsUser to a non-zero user ID';
    if (status?.username)
      return `the image's user "${status.username}" is not numeric, so it cannot be verified not to be root: ${fix}`;
    if (!status?.uid || status.uid.value === 0n) return `the image runs as root (no USER, or USER 0): ${fix}`;
    return undefined;
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
    const owner = spec.stopped ? workloadOwner(c) : undefined;
    const message = owner ? stopIgnoredMessage(owner.name) : '';
    if (owner && c.status?.message !== message)
      this.deps.recorder.event(c, 'Warning', 'StopIgnored', 'Stop', message);
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
    await this.deps.status.write(
      c,
      {
        phase: 'Running',
        reason: 'Started',
        message,
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
