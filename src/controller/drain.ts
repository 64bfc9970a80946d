// Draining a Host: `spec.drain: true` (which also keeps it unschedulable) moves every Container
// off it, at most spec.maxConcurrentMigrations at a time. A Workload's replica follows its
// migrationPolicy (a Migration in its mode, or, with onDrain false, deletion so the Workload
// starts it elsewhere), never more of one Workload at once than its maxUnavailable; a bare
// Container is migrated by checkpoint, falling back to a restart. A move that fails is tried
// again, up to three times. Progress is in Host.status.drain and in `kubectl get migrations`.
import { Counter } from 'prom-client';
import {
  containerFinished,
  drainContainerLabel,
  migrationEnded,
  drainHostLabel,
  migrationLabel,
  type Container,
  type Host,
  type Migration,
  parseSpec,
  type Workload,
} from '../api/v1alpha1/index.js';
import { realClock, type Clock } from '../kube/clock.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../kube/controller.js';
import type { CustomResourceClient } from '../kube/customresource.js';
import { isConflict } from '../kube/errors.js';
import type { EventRecorder } from '../kube/events.js';
import { Expectations } from '../kube/expectations.js';
import { objectKey } from '../kube/keys.js';
import { watch } from '../kube/manager.js';
import type { Cache } from '../kube/store.js';
import { registry } from '../obs/metrics.js';
import { byHost, controllingWorkload, sharedCaches } from './caches.js';
import { resourceClient } from '../kube/resources.js';
import type { ControllerContext } from './context.js';
import { maxUnavailable, strategyOf } from './rollout.js';

/** Host status is shared with the agent and the host-lifecycle controller: the drain writes as its own manager. */
const drainFieldManager = 'gantry-controller/drain';
const maxAttempts = 3;
const pollMs = 2000;

const drainMoves = new Counter({
  name: 'gantry_drain_moves_total',
  help: 'Containers a drain started to move off their Host, by how (migration or deletion)',
  labelNames: ['how'],
  registers: [registry],
});
for (const how of ['migration', 'deletion']) drainMoves.inc({ how }, 0);

export function setupDrainController(ctx: ControllerContext): void {
  const caches = sharedCaches(ctx, realClock);
  const migrationsApi = resourceClient(ctx.client, 'Migration');
  const migrations = ctx.manager.informer<Migration>({ path: migrationsApi.collectionPath() });
  const reconciler = new DrainReconciler({
    hosts: caches.hosts.cache,
    containers: caches.containers.cache,
    workloads: caches.workloads.cache,
    migrations: migrations.cache,
    hostsApi: resourceClient(ctx.client, 'Host'),
    containersApi: resourceClient(ctx.client, 'Container'),
    migrationsApi,
    recorder: ctx.recorder,
  });
  ctx.manager.controller({
    name: 'drain',
    kind: 'Host',
    reconciler,
    watches: [
      watch(caches.hosts),
      watch(caches.containers, (c) => (c.spec?.nodeName ? [c.spec.nodeName] : [])),
      watch(migrations, (m) => {
        const host = m.metadata.labels?.[drainHostLabel];
        return host ? [host] : [];
      }),
    ],
  });
}

export interface DrainReconcilerDeps {
  hosts: Cache<Host>;
  containers: Cache<Container>;
  workloads: Cache<Workload>;
  migrations: Cache<Migration>;
  hostsApi: Pick<CustomResourceClient<Host>, 'applyStatus'>;
  containersApi: Pick<CustomResourceClient<Container>, 'delete'>;
  migrationsApi: Pick<CustomResourceClient<Migration>, 'create'>;
  recorder: EventRecorder;
  clock?: Clock;
}

type Plan =
  { how: 'migration'; mode: 'Checkpoint' | 'Restart'; fallback: 'Restart' | 'None' } | { how: 'deletion' };

/** How long a created Migration counts while the cache has not shown it (then the cache decides). */
const unseenTtlMs = 60_000;

export class DrainReconciler implements Reconciler {
  /**
   * Migrations this reconciler created that its cache has not shown yet: they count as in flight
   * meanwhile, or a reconcile woken by something else could start more than the limit.
   */
  private readonly unseen: Expectations<Migration>;

  constructor(private readonly deps: DrainReconcilerDeps) {
    this.unseen = new Expectations(deps.clock ?? realClock, unseenTtlMs);
  }

  async reconcile(name: string, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const host = this.deps.hosts.get(name);
    if (!host) return;
    if (!host.spec.drain) {
      if (host.status?.drain) await this.writeStatus(host, undefined);
      return;
    }
    // Containers still to move: running here, not a migration's copy in the making.
    const here = this.deps.containers
      .byIndex(byHost, name)
      .filter((c) => !containerFinished(c) && !c.metadata.labels?.[migrationLabel]);
    const unseen = this.unseen.pending((key) => !!this.deps.migrations.get(key));
    const ours = [...this.deps.migrations.list(), ...unseen].filter(
      (m) => m.metadata.labels?.[drainHostLabel] === name,
    );
    const active = ours.filter((m) => !migrationEnded(m));
    const deleting = here.filter((c) => c.metadata.deletionTimestamp);
    let inFlight = active.length + deleting.length;
    const limit = host.spec.maxConcurrentMigrations;
    const busyWorkloads = new Map<string, number>();
    const busy = (c: Container | undefined) => {
      const w = c && controllingWorkload(c);
      if (w) busyWorkloads.set(w, (busyWorkloads.get(w) ?? 0) + 1);
    };
    for (const m of active) busy(this.deps.containers.get(`${m.metadata.namespace}/${m.spec.container}`));
    deleting.forEach(busy);

    let failed = 0;
    for (const c of here) {
      if (c.metadata.deletionTimestamp) continue;
      const mine = ours.filter((m) => m.metadata.labels?.[drainContainerLabel] === c.metadata.uid);
      if (mine.some((m) => !migrationEnded(m))) continue;
      const attempts = mine.filter(
        (m) => m.status?.phase === 'Failed' || m.status?.phase === 'RolledBack',
      ).length;
      if (attempts >= maxAttempts) {
        failed++;
        continue;
      }
      if (inFlight >= limit) continue;
      const plan = this.plan(c);
      const workload = controllingWorkload(c);
      if (workload && (busyWorkloads.get(workload) ?? 0) >= this.maxUnavailable(workload)) continue;
      // A deletion is idempotent; a Migration's name is fixed per attempt, so one our cache missed
      // is found (a conflict) rather than made twice.
      const started =
        plan.how === 'deletion'
          ? await this.deps.containersApi.delete({ namespace: c.metadata.namespace, name: c.metadata.name! })
          : await this.createMigration(host, c, plan, attempts + 1);
      if (started) {
        drainMoves.inc({ how: plan.how });
        ctx.log.info('Moving a Container off a draining Host', { container: objectKey(c), how: plan.how });
      }
      inFlight++;
      busy(c);
    }
    const completed = ours.filter((m) => m.status?.phase === 'Succeeded').length;
    const remaining = here.length;
    // Drained once nothing is left and every move has ended: a Migration deletes its source a
    // moment before it records Succeeded, and users read the two together.
    const drained = remaining === 0 && inFlight === 0;
    await this.writeStatus(host, {
      phase: drained ? 'Drained' : 'Draining',
      pending: Math.max(0, remaining - inFlight - failed),
      migrating: inFlight,
      completed,
      failed,
    });
    if (drained) {
      if (host.status?.drain?.phase !== 'Drained') {
        this.deps.recorder.event(host, 'Normal', 'Drained', 'Drain', `No Containers left on ${name}`);
      }
      return;
    }
    return { requeueAfter: pollMs };
  }

  /** How a Container leaves: its Workload's migration policy, or checkpoint falling back to restart. */
  private plan(c: Container): Plan {
    const key = controllingWorkload(c);
    const workload = key ? this.deps.workloads.get(key) : undefined;
    if (!workload) return { how: 'migration', mode: 'Checkpoint', fallback: 'Restart' };
    const parsed = parseSpec('Workload', workload.spec);
    const policy = parsed.ok ? parsed.value.migrationPolicy : undefined;
    if (policy && !policy.onDrain) return { how: 'deletion' };
    return { how: 'migration', mode: policy?.mode ?? 'Checkpoint', fallback: policy?.fallback ?? 'Restart' };
  }

  /** How many replicas of a Workload may be on the move at once: its maxUnavailable, at least 1. */
  private maxUnavailable(key: string): number {
    const workload = this.deps.workloads.get(key);
    const parsed = workload ? parseSpec('Workload', workload.spec) : undefined;
    if (!parsed?.ok) return 1;
    return Math.max(1, maxUnavailable(strategyOf(parsed.value), parsed.value.replicas));
  }

  private async createMigration(
    host: Host,
    c: Container,
    plan: Extract<Plan, { how: 'migration' }>,
    attempt: number,
  ): Promise<boolean> {
    const base = c.metadata.name!.slice(0, 230);
    const m = {
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Migration',
      metadata: {
        name: `${base}-drain-${attempt}`,
        namespace: c.metadata.namespace,
        labels: { [drainHostLabel]: host.metadata.name!, [drainContainerLabel]: c.metadata.uid! },
      },
      spec: { container: c.metadata.name!, mode: plan.mode, fallback: plan.fallback, timeoutSeconds: 300 },
    } as Migration;
    let created = true;
    try {
      await this.deps.migrationsApi.create(m);
      this.deps.recorder.event(
        host,
        'Normal',
        'Migrating',
        'Drain',
        `Moving ${objectKey(c)} (${plan.mode}, attempt ${attempt})`,
      );
    } catch (e) {
      if (!isConflict(e)) throw e;
      created = false; // made before; our cache has not shown it yet either
    }
    this.unseen.expect(objectKey(m), m);
    return created;
  }

  private async writeStatus(host: Host, drain: NonNullable<Host['status']>['drain']): Promise<void> {
    await this.deps.hostsApi.applyStatus({ name: host.metadata.name! }, drain ? { drain } : {}, {
      fieldManager: drainFieldManager,
      live: host,
    });
  }
}
