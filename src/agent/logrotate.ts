// Container log rotation, the kubelet's way (its container log manager): when a running container's
// current log file has reached the maximum size, the runtime's file is renamed aside with a
// timestamp suffix (<attempt>.log.<yyyymmdd-hhmmss.mmm>), the runtime is asked to reopen its log
// (CRI ReopenContainerLog) so it writes to a fresh file at the same path, and the oldest rotated
// files go so that at most maxFiles remain per container, the current one included.
import fs from 'node:fs';
import path from 'node:path';
import type { Clock } from '../kube/clock.js';
import type { Logger } from '../obs/logger.js';
import { CriError, type CriClient } from '../cri/client.js';
import { labels, managedByValue } from './runtimespec.js';

export interface LogRotationPolicy {
  /** Rotate a current log file of at least this many bytes. */
  maxSizeBytes: number;
  /** Files kept per container, the current one included (at least 2). */
  maxFiles: number;
}

export interface RotationPlan {
  /** Rotated files to remove, oldest first (names in the log's directory). */
  remove: string[];
  /** The name the current file is renamed to. */
  rotateTo: string;
}

/** 20261203-090102.345: sorts as it orders in time, as the kubelet's suffix does (plus milliseconds). */
function rotationSuffix(at: Date): string {
  const iso = at.toISOString(); // 2026-12-03T09:01:02.345Z
  return `${iso.slice(0, 10).replace(/-/g, '')}-${iso.slice(11, 23).replace(/:/g, '')}`;
}

/**
 * What to do with the current log file `current` (a name in its directory, of `size` bytes) given
 * the names in that directory: nothing below the maximum size; else rotate it, and remove the
 * oldest of its rotated files (`<current>.*`) so that, with the one rotated now and the new current
 * file, at most maxFiles remain. Files of other attempts are not this container's.
 */
export function planLogRotation(
  current: { name: string; size: number },
  names: readonly string[],
  policy: LogRotationPolicy,
  now: Date,
): RotationPlan | undefined {
  if (current.size < policy.maxSizeBytes) return undefined;
  const rotated = names.filter((n) => n.startsWith(`${current.name}.`)).sort();
  const keep = Math.max(0, policy.maxFiles - 2);
  return {
    remove: rotated.slice(0, Math.max(0, rotated.length - keep)),
    rotateTo: `${current.name}.${rotationSuffix(now)}`,
  };
}

const ignoreMissing = (e: NodeJS.ErrnoException) => {
  if (e.code !== 'ENOENT') throw e;
};

export interface LogRotatorDeps {
  cri: Pick<CriClient, 'listContainers' | 'containerStatus' | 'reopenContainerLog'>;
  clock: Clock;
  log: Logger;
}

export class LogRotator {
  constructor(
    private readonly policy: LogRotationPolicy,
    private readonly deps: LogRotatorDeps,
  ) {}

  /** One round over the running containers of this agent; one container's failure does not stop the others. */
  async rotateAll(): Promise<void> {
    const { containers } = await this.deps.cri.listContainers({
      filter: {
        state: { state: 'CONTAINER_RUNNING' },
        labelSelector: { [labels.managedBy]: managedByValue },
      },
    });
    for (const c of containers) {
      await this.rotate(c.id).catch((e: unknown) => {
        // Gone meanwhile: nothing to rotate.
        if (e instanceof CriError && e.isNotFound()) return;
        this.deps.log.warn('Container log rotation failed', { container: c.id, err: e });
      });
    }
  }

  private async rotate(containerId: string): Promise<void> {
    const { cri, clock, log } = this.deps;
    // The runtime's own record of where it writes (the sandbox's log directory + the config's logPath).
    const logPath = (await cri.containerStatus({ containerId })).status?.logPath;
    if (!logPath || !path.isAbsolute(logPath)) return;
    const size = await fs.promises.stat(logPath).then(
      (st) => st.size,
      (e: NodeJS.ErrnoException) => ignoreMissing(e),
    );
    if (size === undefined) {
      // Renamed aside by a rotation whose reopen failed: have the runtime create it again.
      await cri.reopenContainerLog({ containerId });
      return;
    }
    const dir = path.dirname(logPath);
    const current = path.basename(logPath);
    const plan = planLogRotation(
      { name: current, size },
      await fs.promises.readdir(dir),
      this.policy,
      new Date(clock.now()),
    );
    if (!plan) return;
    for (const name of plan.remove) await fs.promises.unlink(path.join(dir, name)).catch(ignoreMissing);
    const rotated = path.join(dir, plan.rotateTo);
    await fs.promises.rename(logPath, rotated);
    try {
      await cri.reopenContainerLog({ containerId });
    } catch (e) {
      // The runtime still writes to the renamed file: put it back, as the kubelet does.
      await fs.promises.rename(rotated, logPath).catch(ignoreMissing);
      throw e;
    }
    log.info('Rotated container log', {
      container: containerId,
      file: rotated,
      bytes: size,
      removed: plan.remove.length,
    });
  }
}
