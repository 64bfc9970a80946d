// The controller's part of a Migration's status: the phase and its fields, the Ready and FellBack
// conditions with kstatus' Reconciling or Stalled, the ending (with its metrics), and the event
// of each step. Agents write their own conditions with their own field managers.
import { Counter, Histogram } from 'prom-client';
import {
  effectiveMode,
  finalMigrationPhases,
  type FinalMigrationPhase,
  type Migration,
  type MigrationStatus,
} from '../../api/v1alpha1/index.js';
import type { Clock } from '../../kube/clock.js';
import {
  metaTime,
  progressConditionTypes,
  progressOf,
  setCondition,
  setProgress,
  type Condition,
} from '../../kube/conditions.js';
import { objectKey, splitKey } from '../../kube/keys.js';
import { registry } from '../../obs/metrics.js';
import { fieldManager } from '../context.js';
import type { MigrationReconcilerDeps } from './steps.js';

const migrationsTotal = new Counter({
  name: 'gantry_migrations_total',
  help: 'Finished migrations, by mode and result',
  labelNames: ['mode', 'result'],
  registers: [registry],
});
for (const mode of ['Checkpoint', 'Restart'])
  for (const result of finalMigrationPhases) migrationsTotal.inc({ mode, result }, 0);
const downtime = new Histogram({
  name: 'gantry_migration_downtime_seconds',
  help: 'Seconds a migrated process was not running (frozen until restored on the target)',
  labelNames: ['mode'],
  buckets: [0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120],
  registers: [registry],
});
const duration = new Histogram({
  name: 'gantry_migration_duration_seconds',
  help: 'Seconds from the start of a migration to its end, by mode and result',
  labelNames: ['mode', 'result'],
  buckets: [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
  registers: [registry],
});

type Status = NonNullable<Migration['status']>;

interface StatusEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  note: string;
}

export class MigrationStatusWriter {
  constructor(
    private readonly deps: Pick<MigrationReconcilerDeps, 'api' | 'recorder'>,
    private readonly clock: Clock,
  ) {}

  async advance(m: Migration, phase: 'Transferring' | 'Restoring', message: string): Promise<void> {
    await this.write(m, { phase, message }, { type: 'Normal', reason: phase, note: message });
  }

  async finish(
    m: Migration,
    phase: FinalMigrationPhase,
    reason: string,
    message: string,
    extra: Partial<Status> = {},
  ): Promise<void> {
    const now = this.clock.now();
    await this.write(
      m,
      {
        ...extra,
        phase,
        message,
        completedAt: metaTime(new Date(now)),
        conditions: this.conditions(m, {
          type: 'Ready',
          status: phase === 'Succeeded' ? 'True' : 'False',
          reason,
          message,
        }),
      },
      { type: phase === 'Succeeded' ? 'Normal' : 'Warning', reason: phase, note: message },
    );
    // Counted once the final phase is written: a write refused as stale is not an ending.
    const mode = effectiveMode(m);
    migrationsTotal.inc({ mode, result: phase });
    const started = Date.parse(m.status?.startedAt ?? '');
    if (Number.isFinite(started)) duration.observe({ mode, result: phase }, (now - started) / 1000);
    if (extra.downtimeSeconds !== undefined) downtime.observe({ mode }, extra.downtimeSeconds);
  }

  /**
   * The controller's conditions (Ready, FellBack, and kstatus' Reconciling or Stalled) with `update`
   * applied; the agents own the rest. A Migration that ended other than Succeeded is Stalled.
   */
  conditions(
    m: Migration,
    update: Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>,
  ): Condition[] {
    const generation = m.metadata.generation;
    const mine = (m.status?.conditions ?? []).filter((c) =>
      ['Ready', 'FellBack', ...progressConditionTypes].includes(c.type),
    );
    const next = setCondition(mine, { ...update, observedGeneration: generation });
    if (update.type !== 'Ready') return next;
    const stalled = new Set(update.reason === 'InProgress' ? [] : [update.reason]);
    return setProgress(next, progressOf(update, stalled), generation);
  }

  /**
   * Applies the controller's fields; the ones it set before are carried over (SSA would drop them).
   * Every decision here was made on the cached `m`: the write carries its resourceVersion, so if the
   * cache was behind (this controller's own last write not seen yet, or an agent's report) it is
   * refused with a Conflict and reconcile decides again on the newer object. The event, if any,
   * is recorded only once the write is in.
   */
  async write(m: Migration, fields: Partial<Status>, event?: StatusEvent): Promise<void> {
    const own: (keyof MigrationStatus)[] = [
      'phase',
      'sourceHost',
      'targetHost',
      'targetContainer',
      'targetContainerUID',
      'startedAt',
      'completedAt',
      'downtimeSeconds',
      'message',
    ];
    // In Restart mode the controller times the downtime itself; in Checkpoint mode the source agent does.
    if (effectiveMode(m) === 'Restart') own.push('frozenAt');
    const kept = Object.fromEntries(
      own.filter((k) => m.status?.[k] !== undefined).map((k) => [k, m.status![k]]),
    );
    const conditions =
      fields.conditions ??
      this.conditions(m, { type: 'Ready', status: 'False', reason: 'InProgress', message: '' });
    await this.deps.api.applyStatus(
      splitKey(objectKey(m)),
      { ...kept, ...fields, observedGeneration: m.metadata.generation, conditions },
      { fieldManager, resourceVersion: m.metadata.resourceVersion },
    );
    if (event) this.deps.recorder.event(m, event.type, event.reason, 'Migrate', event.note);
  }
}
