// Removing what the runtime holds for a Container: behind the agent's finalizer when the Container
// is deleted (phase Terminating while a graceful stop runs, then the sandbox and its logs go), and
// in the orphan sweep for runtime objects whose Container is gone (deleted while the agent was
// away, or before the finalizer).
import fs from 'node:fs';
import { runtimeCleanupFinalizer, type Container, type ContainerStatus } from '../../api/v1alpha1/index.js';
import type { CustomResourceClient } from '../../kube/customresource.js';
import { setFinalizer } from '../../kube/finalizers.js';
import { objectKey, splitKey } from '../../kube/keys.js';
import type { EventRecorder } from '../../kube/events.js';
import type { Cache } from '../../kube/store.js';
import type { Logger } from '../../obs/logger.js';
import type { CriClient } from '../../cri/client.js';
import type { HealthMonitor } from '../health.js';
import { labels, logDirectory, managedByValue } from '../runtimespec.js';
import { ignoreNotFound, removeSandbox } from './runtime.js';
import type { StatusWriter } from './status.js';
import { BackgroundCalls } from './background.js';

export interface TeardownOptions {
  /** Root of the containers' log directories. */
  logRoot: string;
}

export interface TeardownDeps {
  cri: CriClient;
  cache: Cache<Container>;
  containers: Pick<CustomResourceClient<Container>, 'get' | 'mergePatch'>;
  health: HealthMonitor;
  recorder: EventRecorder;
  status: Pick<StatusWriter, 'write'>;
  /** Asks for another reconcile of a key (a stop ended). */
  enqueue: (key: string) => void;
}

/**
 * The status of a deleted Container while its process stops: Terminating, as kubectl shows a Pod,
 * for as long as the grace period lets the process run; what ran keeps its IDs, IP and restarts.
 */
function terminatingStatus(s: ContainerStatus | undefined, graceSeconds: number): Partial<ContainerStatus> {
  return {
    phase: 'Terminating',
    reason: 'Deleted',
    message: `The Container was deleted: its process gets SIGTERM, and SIGKILL if it still runs after ${graceSeconds}s`,
    containerID: s?.containerID,
    sandboxID: s?.sandboxID,
    ip: s?.ip,
    imageDigest: s?.imageDigest,
    startedAt: s?.startedAt,
    restartCount: s?.restartCount,
  };
}

export class Teardown {
  /** Graceful stops, by runtime container ID (background.ts). */
  private readonly stops: BackgroundCalls<void>;

  constructor(
    private readonly opts: TeardownOptions,
    private readonly deps: TeardownDeps,
  ) {
    this.stops = new BackgroundCalls(deps.enqueue);
  }

  /** Removes everything the runtime holds for a UID: a graceful stop first, then the sandbox. */
  async removeAll(uid: string, graceSeconds: number, log: Logger): Promise<void> {
    const { containers } = await this.deps.cri.listContainers({
      filter: { labelSelector: { [labels.uid]: uid } },
    });
    await Promise.all(
      containers
        .filter((rc) => rc.state === 'CONTAINER_RUNNING')
        .map((rc) => this.deps.cri.stopContainer({ containerId: rc.id, timeout: graceSeconds })),
    );
    for (const rc of containers) await ignoreNotFound(this.deps.cri.removeContainer({ containerId: rc.id }));
    const { items } = await this.deps.cri.listPodSandbox({
      filter: { labelSelector: { [labels.uid]: uid } },
    });
    for (const s of items) {
      await removeSandbox(this.deps.cri, s.id);
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
    for (const uid of orphans) await this.removeAll(uid, 10, log);
    return orphans.length;
  }

  /**
   * A deleted Container: Terminating while its process stops (in the background, see background.ts;
   * the Container is queued again when the stop ends), then everything removed and the finalizer
   * lifted.
   */
  async finalize(key: string, c: Container, log: Logger): Promise<void> {
    this.deps.health.stop(key);
    if (!c.metadata.finalizers?.includes(runtimeCleanupFinalizer)) return;
    const uid = c.metadata.uid ?? '';
    const grace = c.spec?.terminationGracePeriodSeconds ?? 30;
    const { containers } = await this.deps.cri.listContainers({
      filter: { labelSelector: { [labels.uid]: uid } },
    });
    const running = containers.filter((rc) => rc.state === 'CONTAINER_RUNNING');
    if (running.length > 0) {
      const toStop = running.filter((rc) => this.stops.poll(rc.id) !== 'running');
      if (toStop.length === 0) return;
      // Terminating is shown before the process gets SIGTERM.
      this.deps.recorder.event(c, 'Normal', 'Killing', 'Stop', `Stopping container (grace period ${grace}s)`);
      await this.deps.status.write(c, terminatingStatus(c.status, grace));
      for (const rc of toStop)
        this.stops.start(rc.id, key, () =>
          this.deps.cri.stopContainer({ containerId: rc.id, timeout: grace }),
        );
      return;
    }
    // The stops that ended are done with (taking their outcome forgets them).
    for (const rc of containers) this.stops.poll(rc.id);
    // The object as written: its resourceVersion is the one the finalizer's patch is made on.
    const live = await this.deps.status.write(c, terminatingStatus(c.status, grace));
    await this.removeAll(uid, grace, log);
    await this.setFinalizer(live, false);
  }

  /**
   * For a Container bound by the scheduler the finalizer came with the binding; one created on
   * this host by name gets it here, before anything runs.
   */
  async ensureFinalizer(c: Container): Promise<void> {
    await this.setFinalizer(c, true);
  }

  private async setFinalizer(c: Container, present: boolean): Promise<void> {
    await setFinalizer(this.deps.containers, splitKey(objectKey(c)), c, runtimeCleanupFinalizer, present);
  }
}
