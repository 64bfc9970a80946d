// The Migration controller drives one Container's move to another Host, by checkpoint
// (checkpoint.ts: the process keeps its memory) or by restart (restart.ts). Both use the steps in
// steps.ts and write the phase through status.ts; setup.ts wires it into the manager.
//
// The Container object is replaced, not moved (nodeName is immutable, as for Pods):
// status.targetContainer names the new one (<name>-m<hash> by checkpoint, <name>-r<hash> by restart).
// The agents report on the Migration's status with their own field managers; the controller reads
// their conditions and writes the phase.
import { effectiveMode, migrationEnded, parseSpec, type Container } from '../../api/v1alpha1/index.js';
import { realClock } from '../../kube/clock.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../kube/controller.js';
import { isConflict } from '../../kube/errors.js';
import { objectKey } from '../../kube/keys.js';
import { CheckpointFlow } from './checkpoint.js';
import { RestartFlow } from './restart.js';
import { MigrationStatusWriter } from './status.js';
import { MigrationSteps, pollMs, type MigrationReconcilerDeps } from './steps.js';
import { TransferTokens } from './tokens.js';

export class MigrationReconciler implements Reconciler {
  private readonly status: MigrationStatusWriter;
  private readonly checkpoint: CheckpointFlow;
  private readonly restart: RestartFlow;
  private readonly tokens: TransferTokens;

  constructor(private readonly deps: MigrationReconcilerDeps) {
    const clock = deps.clock ?? realClock;
    const steps = new MigrationSteps(deps);
    this.status = new MigrationStatusWriter(deps, clock);
    this.tokens = new TransferTokens(deps);
    this.checkpoint = new CheckpointFlow(deps, steps, this.status, this.tokens, clock);
    this.restart = new RestartFlow(deps, steps, this.status, clock);
  }

  /** The keys of the unfinished Migrations concerning a Container (as source or target). */
  migrationsOf(c: Container): string[] {
    const ns = c.metadata.namespace ?? 'default';
    return this.deps.migrations
      .listByNamespace(ns)
      .filter((m) => !migrationEnded(m))
      .filter((m) => m.spec.container === c.metadata.name || m.status?.targetContainer === c.metadata.name)
      .map((m) => objectKey(m));
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const m = this.deps.migrations.get(key);
    if (!m) return;
    if (m.metadata.deletionTimestamp || migrationEnded(m)) return this.tokens.revoke(m);
    const phase = m.status?.phase ?? 'Pending';
    try {
      const parsed = parseSpec('Migration', m.spec);
      if (!parsed.ok) return await this.status.finish(m, 'Failed', 'InvalidSpec', parsed.error);
      if (effectiveMode(m) === 'Restart') return await this.restart.reconcile(m, ctx.log);
      return await this.checkpoint.reconcile(m, phase, ctx.log);
    } catch (e) {
      if (!isConflict(e)) throw e;
      // Our cache was behind (see MigrationStatusWriter.write): the newer Migration's watch event comes next.
      ctx.log.debug('Migration changed since it was read; deciding again', { phase });
      return { requeueAfter: pollMs };
    }
  }
}
