// The agent's Container reconciler: makes the runtime match the Containers bound to this host.
// The runtime is the only record of what runs: sandboxes and containers carry the Container's UID
// in their labels, and restart counts and back-off steps live in the runtime's metadata, so a
// restarted agent adopts what is running instead of starting it twice. Each step is idempotent.
// A deleted Container is torn down (teardown.ts); otherwise the runtime is observed (runtime.ts)
// and the Container's part in a migration (migration-steps.ts) or else its lifecycle
// (lifecycle.ts) takes the next step; status.ts writes what that shows.
import { parseSpec, workloadOwner, type Container, type ContainerSpec } from '../../api/v1alpha1/index.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../kube/controller.js';
import type { CustomResourceClient } from '../../kube/customresource.js';
import { splitKey } from '../../kube/keys.js';
import type { Cache } from '../../kube/store.js';
import type { Logger } from '../../obs/logger.js';
import type { HealthMonitor } from '../health.js';
import type { BackoffSettings } from '../restart.js';
import { ContainerLifecycle } from './lifecycle.js';
import type { MigrationSupport } from './migration.js';
import { MigrationSteps } from './migration-steps.js';
import {
  removeSandbox,
  RuntimeObjects,
  type RuntimeObjectsDeps,
  type RuntimeObjectsOptions,
} from './runtime.js';
import { StatusWriter } from './status.js';
import { Teardown } from './teardown.js';

export interface ContainerReconcilerOptions extends RuntimeObjectsOptions {
  fieldManager: string;
  backoff: BackoffSettings;
  /** How long a checkpoint migration's source is withdrawn from its Services before the freeze (migration-steps.ts). */
  migrationDrainMs?: number;
}

export interface ContainerReconcilerDeps extends RuntimeObjectsDeps {
  cache: Cache<Container>;
  containers: Pick<CustomResourceClient<Container>, 'get' | 'mergePatch' | 'applyStatus'>;
  health: HealthMonitor;
  migrations: MigrationSupport;
  /** Up while this host is cut off from the apiserver for longer than --fence-after-seconds (fence.ts). */
  fence: { readonly up: boolean };
}

export class ContainerReconciler implements Reconciler {
  /** Workload replicas this agent stopped behind its fence, by key: their UIDs. */
  private readonly fenced = new Map<string, string>();
  private readonly runtime: RuntimeObjects;
  private readonly status: StatusWriter;
  private readonly teardown: Teardown;
  private readonly lifecycle: ContainerLifecycle;
  private readonly migrationSteps: MigrationSteps;

  constructor(
    opts: ContainerReconcilerOptions,
    private readonly deps: ContainerReconcilerDeps,
  ) {
    this.runtime = new RuntimeObjects(opts, deps);
    this.status = new StatusWriter(opts.fieldManager, deps.containers);
    this.teardown = new Teardown(opts, { ...deps, status: this.status });
    const shared = { ...deps, runtime: this.runtime, status: this.status };
    this.lifecycle = new ContainerLifecycle(opts.backoff, shared);
    this.migrationSteps = new MigrationSteps(shared, { drainMs: opts.migrationDrainMs ?? 0 });
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const c = this.deps.cache.get(key);
    if (!c) {
      // Deleted without our finalizer (we never acted on it): the orphan sweep removes leftovers.
      this.deps.health.stop(key);
      this.fenced.delete(key);
      this.status.forget(key);
      return;
    }
    if (c.metadata.deletionTimestamp) return this.teardown.finalize(key, c, ctx.log);
    if (workloadOwner(c)) {
      if (this.deps.fence.up) return this.fenceOff(key, c, ctx.log);
      if (this.fenced.has(key) && !(await this.survivedFence(key, c))) return;
    }
    const parsed = parseSpec('Container', c.spec);
    if (!parsed.ok) {
      await this.status.write(c, { phase: 'Failed', reason: 'InvalidSpec', message: parsed.error });
      return;
    }
    await this.teardown.ensureFinalizer(c);
    return this.converge(key, c, parsed.value, ctx.log);
  }

  /** Removes runtime objects whose Container no longer exists (see Teardown.sweepOrphans). */
  sweepOrphans(log: Logger): Promise<number> {
    return this.teardown.sweepOrphans(log);
  }

  /**
   * Behind the fence a Workload replica is removed from the runtime: the controller is about to
   * replace it elsewhere. No status is written (the apiserver is out of reach).
   */
  private async fenceOff(key: string, c: Container, log: Logger): Promise<void> {
    if (this.fenced.get(key) === c.metadata.uid) return;
    this.deps.health.stop(key);
    log.warn('Cut off from the apiserver: stopping a Workload replica before it is replaced elsewhere');
    await this.teardown.removeAll(c.metadata.uid ?? '', c.spec.terminationGracePeriodSeconds ?? 30, log);
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

  private async converge(
    key: string,
    c: Container,
    spec: ContainerSpec,
    log: Logger,
  ): Promise<ReconcileResult | void> {
    const state = await this.runtime.observe(c.metadata.uid ?? '');
    for (const stale of state.staleSandboxes) await removeSandbox(this.deps.cri, stale.id);
    const role = this.deps.migrations.roleOf(c);
    if (role) {
      const handled = await (role.kind === 'source'
        ? this.migrationSteps.migrateSource(role.migration, c, spec, state)
        : this.migrationSteps.migrateTarget(role, key, c, spec, state));
      if (handled !== 'continue') return handled;
    }
    return this.lifecycle.converge(key, c, spec, state, log);
  }
}
