// What both flows of a migration do with the Containers: check the source, create the target,
// hand over from one to the other, delete; and what they share: the dependencies, the target's
// name, the agents' conditions and the polling interval.
import crypto from 'node:crypto';
import {
  avoidHostAnnotation,
  containerStopped,
  migratedFromAnnotation,
  migratedToAnnotation,
  migrationEnded,
  migrationLabel,
  needsCheckpointAnnotation,
  restoreFromAnnotation,
  schedulingGateAnnotation,
  type Container,
  type Host,
  type Migration,
} from '../../api/v1alpha1/index.js';
import type { Clock } from '../../kube/clock.js';
import { getCondition, isTrue } from '../../kube/conditions.js';
import type { CustomResourceClient } from '../../kube/customresource.js';
import { isConflict } from '../../kube/errors.js';
import type { EventRecorder } from '../../kube/events.js';
import type { Cache } from '../../kube/store.js';
import type { SchedulingReconciler } from '../binding.js';
import { byHost } from '../caches.js';
import { describePorts, hostPorts, portsInUse } from '../scheduler.js';

/** How often a migration waiting on an agent or on the scheduler looks again. */
export const pollMs = 1000;

export interface MigrationReconcilerDeps {
  migrations: Cache<Migration>;
  containers: Cache<Container>;
  hosts: Cache<Host>;
  api: Pick<CustomResourceClient<Migration>, 'applyStatus' | 'get' | 'mergePatch'>;
  containersApi: Pick<CustomResourceClient<Container>, 'create' | 'delete' | 'mergePatch'>;
  recorder: EventRecorder;
  secrets: { ensure(name: string, token: string): Promise<void>; remove(name: string): Promise<void> };
  /** Whether a Restart's copy of a bare Container has somewhere to run before the source stops. */
  placement: Pick<SchedulingReconciler, 'whyUnplaceable'>;
  clock?: Clock;
}

/** A deterministic name for the target, so a retried reconcile finds the one it created. */
export function targetName(m: Migration, flavour: 'checkpoint' | 'restart'): string {
  const hash = crypto.createHash('sha256').update(`${m.metadata.uid}/${flavour}`).digest('hex').slice(0, 5);
  return `${m.spec.container.slice(0, 240)}-${flavour === 'checkpoint' ? 'm' : 'r'}${hash}`;
}

export const targetNameTaken = (name: string) =>
  `a Container named ${name} exists already and is not this Migration's: it was not created for it`;

/** A condition an agent reported on the Migration (Checkpointed, Transferred, Restored, Resumed). */
export const agentCondition = (m: Migration, type: string) => getCondition(m.status?.conditions, type);

export class MigrationSteps {
  constructor(private readonly deps: MigrationReconcilerDeps) {}

  checkSource(m: Migration): { source: Container } | { reason: string; failure: string } {
    const source = this.deps.containers.get(`${m.metadata.namespace}/${m.spec.container}`);
    if (!source)
      return { reason: 'ContainerNotFound', failure: `Container ${m.spec.container} does not exist` };
    if (source.metadata.deletionTimestamp)
      return { reason: 'ContainerDeleting', failure: `Container ${m.spec.container} is being deleted` };
    // A stopped one moves too (by Restart, staying stopped: there is no process to checkpoint).
    if (!source.spec.nodeName || (source.status?.phase !== 'Running' && !containerStopped(source))) {
      return {
        reason: 'ContainerNotRunning',
        failure: `Container ${m.spec.container} is not running (phase ${source.status?.phase ?? 'Pending'})`,
      };
    }
    const busy = this.deps.migrations
      .listByNamespace(m.metadata.namespace ?? 'default')
      .find(
        (o) =>
          o !== m &&
          o.spec.container === m.spec.container &&
          o.status?.phase &&
          !migrationEnded(o) &&
          o.status.phase !== 'Pending',
      );
    if (busy)
      return { reason: 'AlreadyMigrating', failure: `Migration ${busy.metadata.name} is moving it already` };
    return { source };
  }

  /**
   * Creates the target Container (copy of the source's spec, labels and owners) unless it exists.
   * Undefined when a Container of that name exists that this Migration did not create: its name
   * can be foreseen, but only Gantry's controller may set gantry.dev/ annotations (admission policy).
   */
  async ensureTarget(
    m: Migration,
    source: Container,
    name: string,
    annotations: Record<string, string>,
  ): Promise<Container | undefined> {
    const ns = m.metadata.namespace;
    const existing = this.deps.containers.get(`${ns}/${name}`);
    const ours = (c: Container) => c.metadata.annotations?.[migratedFromAnnotation] === source.metadata.name;
    if (existing) return ours(existing) ? existing : undefined;
    const { nodeName: _bound, ...spec } = source.spec;
    const body = {
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Container',
      metadata: {
        name,
        namespace: ns,
        labels: { ...(source.metadata.labels ?? {}), [migrationLabel]: m.metadata.name! },
        annotations: {
          ...annotations,
          [avoidHostAnnotation]: source.spec.nodeName!,
          [migratedFromAnnotation]: source.metadata.name!,
        },
        ownerReferences: source.metadata.ownerReferences,
      },
      spec: { ...spec, ...(m.spec.targetHost ? { nodeName: m.spec.targetHost } : {}) },
    } as Container;
    try {
      return await this.deps.containersApi.create(body);
    } catch (e) {
      if (!isConflict(e)) throw e;
      // Created by an earlier try and not in the cache yet (it has no UID here then), or by someone else.
      const raced = this.deps.containers.get(`${ns}/${name}`);
      return raced && !ours(raced) ? undefined : (raced ?? body);
    }
  }

  /**
   * The target takes the source's place, in an order that keeps the Workload's count right at every
   * step (see countedReplicas): mark the source as replaced, make the target an ordinary Container,
   * delete the source. Each step is idempotent, so a retried reconcile just repeats them.
   */
  async handOver(m: Migration, target: Container): Promise<void> {
    const ns = m.metadata.namespace;
    const source = this.deps.containers.get(`${ns}/${m.spec.container}`);
    if (source && source.metadata.annotations?.[migratedToAnnotation] !== target.metadata.name) {
      await this.deps.containersApi.mergePatch(
        { namespace: ns, name: m.spec.container },
        { metadata: { annotations: { [migratedToAnnotation]: target.metadata.name! } } },
      );
    }
    await this.deps.containersApi.mergePatch(
      { namespace: m.metadata.namespace, name: target.metadata.name! },
      {
        metadata: {
          labels: { [migrationLabel]: null },
          annotations: {
            [restoreFromAnnotation]: null,
            [avoidHostAnnotation]: null,
            [needsCheckpointAnnotation]: null,
            [schedulingGateAnnotation]: null,
          },
        },
      },
    );
    if (source) await this.deleteContainer(m, m.spec.container);
  }

  /**
   * Why the Host the Migration names cannot take the copy of `source`: a Container there holds one
   * of its host ports. (The copy is created bound to that Host: the scheduler never sees it.)
   */
  hostPortsTaken(m: Migration, source: Container, host: string): string | undefined {
    const wanted = hostPorts(source.spec);
    if (wanted.length === 0) return undefined;
    for (const c of this.deps.containers.byIndex(byHost, host)) {
      const ownTarget =
        c.metadata.namespace === m.metadata.namespace &&
        c.metadata.labels?.[migrationLabel] === m.metadata.name;
      const taken = ownTarget ? [] : portsInUse(wanted, hostPorts(c.spec));
      if (taken.length > 0)
        return `Host ${host} has the ${describePorts(taken)} in use (Container ${c.metadata.namespace}/${c.metadata.name})`;
    }
    return undefined;
  }

  /** Ready Hosts whose agent has not reported its checkpoint probe yet. */
  probing(): string[] {
    return this.deps.hosts
      .list()
      .filter((h) => isTrue(h.status?.conditions, 'Ready') && h.status?.checkpoint === undefined)
      .map((h) => h.metadata.name!);
  }

  target(m: Migration): Container | undefined {
    const name = m.status?.targetContainer;
    return name ? this.deps.containers.get(`${m.metadata.namespace}/${name}`) : undefined;
  }

  async deleteContainer(m: Migration, name: string): Promise<void> {
    await this.deps.containersApi.delete({ namespace: m.metadata.namespace, name });
  }
}
