// A Container's status as its agent writes it: what the runtime shows, Scheduled=True (the agent
// runs it, so it is bound; one write fewer for the scheduler), a Ready condition that follows
// phase and health, and kstatus' Reconciling / Stalled derived from Ready.
import { scheduledCondition, type Container, type ContainerStatus } from '../../api/v1alpha1/index.js';
import { progressConditionTypes, setCondition, setProgress, type Progress } from '../../kube/conditions.js';
import type { CustomResourceClient } from '../../kube/customresource.js';
import { splitKey } from '../../kube/keys.js';

export class StatusWriter {
  /**
   * What the last write of each Container returned, by key. The cache can lag behind it (a watch
   * event from before the write queues the key again), and a status compared with that stale copy
   * would be written a second time: the newer of the two is compared (client-go's mutation cache).
   */
  private readonly written = new Map<string, Container>();

  constructor(
    private readonly fieldManager: string,
    private readonly containers: Pick<CustomResourceClient<Container>, 'applyStatus'>,
  ) {}

  /** The Container is gone. */
  forget(key: string): void {
    this.written.delete(key);
  }

  /** Writes the agent's part of the status; Ready follows phase and health. Resolves with the object written. */
  async write(c: Container, fields: Partial<ContainerStatus>, healthMessage?: string): Promise<Container> {
    const generation = c.metadata.generation;
    const ready = readyCondition(fields, healthMessage);
    const mine = (c.status?.conditions ?? []).filter((x) =>
      ['Scheduled', 'Ready', ...progressConditionTypes].includes(x.type),
    );
    const scheduled = setCondition(mine, scheduledCondition(c.spec.nodeName, generation));
    const conditions = setProgress(
      setCondition(scheduled, { ...ready, observedGeneration: generation }),
      containerProgress(fields, ready),
      generation,
    );
    const status: Partial<ContainerStatus> = {
      observedGeneration: generation,
      ...fields,
      conditions,
    };
    const key = `${c.metadata.namespace}/${c.metadata.name}`;
    const last = this.written.get(key);
    const live = last && last.metadata.uid === c.metadata.uid && isNewer(last, c) ? last : c;
    const result = await this.containers.applyStatus(splitKey(key), prune(status), {
      fieldManager: this.fieldManager,
      live,
    });
    if (result !== live) this.written.set(key, result);
    return result;
  }
}

/**
 * `a` is a later version of the object than `b`. Resource versions are opaque to clients, but
 * etcd's are integers that grow, which client-go's mutation cache relies on too; anything else
 * counts as not newer, and the cache's copy is used.
 */
function isNewer(a: Container, b: Container): boolean {
  const [x, y] = [a.metadata.resourceVersion, b.metadata.resourceVersion];
  return !!x && !!y && /^\d+$/.test(x) && /^\d+$/.test(y) && BigInt(x) > BigInt(y);
}

export function readyCondition(
  s: Partial<ContainerStatus>,
  healthMessage: string | undefined,
): { type: string; status: 'True' | 'False'; reason: string; message: string } {
  if (s.phase !== 'Running') {
    return {
      type: 'Ready',
      status: 'False',
      reason: s.reason ?? s.phase ?? 'NotRunning',
      message: s.message ?? '',
    };
  }
  if (s.health === 'Unhealthy') {
    return {
      type: 'Ready',
      status: 'False',
      reason: 'Unhealthy',
      message: healthMessage ?? 'The health check fails',
    };
  }
  if (s.health === 'Starting') {
    return {
      type: 'Ready',
      status: 'False',
      reason: 'HealthCheckStarting',
      message: 'Waiting for the first healthy check',
    };
  }
  return { type: 'Ready', status: 'True', reason: 'Running', message: '' };
}

/**
 * Progress for kstatus: done when ready, completed or stopped as asked; stuck when failed,
 * crash-looping or refused.
 */
export function containerProgress(
  s: Partial<ContainerStatus>,
  ready: { status: string; reason: string; message: string },
): Progress {
  if (ready.status === 'True' || s.phase === 'Succeeded' || s.phase === 'Stopped')
    return { state: 'Current' };
  const { reason, message } = ready;
  const refused = s.phase === 'Creating' && !['ContainerCreating', 'Pulling'].includes(reason);
  if (s.phase === 'Failed' || s.phase === 'Restarting' || refused)
    return { state: 'Stalled', reason, message };
  return { state: 'Reconciling', reason, message };
}

/** Drops undefined fields, so an unchanged status compares equal to the live one (no write). */
function prune<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
