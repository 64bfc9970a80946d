// Graceful stops run beside the reconciler's workers, not in them. A stop lasts until the process
// exits, up to its grace period: one that ignores SIGTERM holds it for all of it. Held in a
// worker, a dozen such stops kept every other Container on the host waiting (measured: 12 replicas
// with a 30 s grace took 62 s to scale to 0, and nothing started meanwhile). The reconcile starts
// the stop and returns; the Container is queued again when the stop ends, and finds the runtime
// container exited.
import type { CriClient } from '../../cri/client.js';

/** A stop in progress, or the error of one that failed. */
type Stop = 'running' | { failed: unknown };

export class GracefulStops {
  /** By runtime container ID. */
  private readonly stops = new Map<string, Stop>();

  constructor(
    private readonly cri: Pick<CriClient, 'stopContainer'>,
    private readonly enqueue: (key: string) => void,
  ) {}

  /**
   * True while a stop of runtime container `containerId` runs. A stop that failed is thrown here
   * (once), so the reconcile fails and is retried with back-off.
   */
  stopping(containerId: string): boolean {
    const known = this.stops.get(containerId);
    if (!known) return false;
    if (known === 'running') return true;
    this.stops.delete(containerId);
    throw known.failed;
  }

  /** Starts stopping runtime container `containerId` of the Container `key`, which is queued when it ends. */
  start(key: string, containerId: string, graceSeconds: number): void {
    this.stops.set(containerId, 'running');
    void this.cri
      .stopContainer({ containerId, timeout: graceSeconds })
      .then(
        () => void this.stops.delete(containerId),
        (failed: unknown) => void this.stops.set(containerId, { failed }),
      )
      .finally(() => this.enqueue(key));
  }
}
