// Migration: move one Container to another Host, by checkpoint/restore (memory kept) or by restart.
// Its spec is a one-shot request and never changes; status records phases and timings.
import { z } from 'zod';
import { conditions, observedGeneration } from './conditions.js';
import { dateTime, defineKind, objectName } from './meta.js';
import { celEqual, int32, int64, withRules, withTransitionRules, type TransitionRule } from './rules.js';

/** Checkpoint keeps memory state (CRIU); Restart stops the container and starts it anew on the target. */
export const MigrationModeSchema = z.enum(['Checkpoint', 'Restart']);
export const MigrationFallbackSchema = z.enum(['Restart', 'None']);

const MigrationSpecBase = z.object({
  container: objectName().describe('Name of the Container to move, in the same namespace.'),
  targetHost: objectName()
    .optional()
    .describe('Host to move it to; unset lets the scheduler pick one (never the current Host).'),
  mode: MigrationModeSchema.default('Checkpoint').describe(
    'Checkpoint freezes the process, copies its memory (CRIU) and restores it on the target; Restart ' +
      'stops it and starts a fresh one there.',
  ),
  fallback: MigrationFallbackSchema.default('None').describe(
    'When a checkpoint migration fails: Restart on the target anyway, or None (roll back and keep it running ' +
      'on the source). Ignored for mode Restart.',
  ),
  timeoutSeconds: int32(10, 3600)
    .default(300)
    .describe('Give up (and roll back or fall back) after this many seconds.'),
  maxDowntimeSeconds: int32(1, 3600)
    .optional()
    .describe(
      'Downtime budget: if the process has been frozen this long without running on the target, abort and ' +
        'resume it on the source. Unset: bounded only by timeoutSeconds.',
    ),
});

const MigrationSpecChecked = withRules(MigrationSpecBase, {
  rule: '!has(self.maxDowntimeSeconds) || self.maxDowntimeSeconds <= self.timeoutSeconds',
  message: 'maxDowntimeSeconds must not exceed timeoutSeconds',
  fieldPath: '.maxDowntimeSeconds',
  check: (s) => s.maxDowntimeSeconds === undefined || s.maxDowntimeSeconds <= s.timeoutSeconds,
});

const specUpdateRules: TransitionRule<z.output<typeof MigrationSpecChecked>>[] = [
  {
    rule: 'self == oldSelf',
    message: 'spec is immutable: a Migration is a one-shot request; create a new Migration instead',
    check: celEqual,
  },
];

export const MigrationSpecSchema = withTransitionRules(MigrationSpecChecked, specUpdateRules).describe(
  'Which Container to move, where and how. Immutable.',
);

export const MigrationPhaseSchema = z.enum([
  'Pending',
  'Checkpointing',
  'Transferring',
  'Restoring',
  'Succeeded',
  'Failed',
  'RollingBack',
  'RolledBack',
]);

export const MigrationStatusSchema = z
  .object({
    observedGeneration: observedGeneration(),
    phase: MigrationPhaseSchema.optional().describe(
      'Pending, Checkpointing (freezing and dumping), Transferring (copying the checkpoint), Restoring, ' +
        'then Succeeded; on a failure after the freeze, RollingBack (resuming it on the source) and ' +
        'RolledBack (it runs on the source again); Failed when it could not be moved nor resumed.',
    ),
    sourceHost: objectName().optional().describe('Host the Container ran on.'),
    targetHost: objectName().optional().describe('Host chosen for it.'),
    targetContainer: objectName().optional().describe('Name of the Container created on the target Host.'),
    targetContainerUID: z
      .string()
      .max(128)
      .optional()
      .describe(
        'UID of that Container: the target agent restores the checkpoint only into this very object.',
      ),
    startedAt: dateTime().optional().describe('When the controller started the migration.'),
    frozenAt: dateTime()
      .optional()
      .describe('When the process was frozen for the checkpoint (downtime starts).'),
    restoredAt: dateTime().optional().describe('When the process ran again on the target (downtime ends).'),
    completedAt: dateTime().optional().describe('When the migration reached a final phase.'),
    downtimeSeconds: z
      .number()
      .min(0)
      .optional()
      .describe('Seconds the process was not running: restoredAt minus frozenAt.'),
    checkpointSizeBytes: int64().optional().describe('Size of the checkpoint archive that was copied.'),
    checkpointSHA256: z
      .string()
      .regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 in lowercase hex')
      .optional()
      .describe(
        'SHA-256 of the checkpoint archive, published by the source agent: the target restores only an ' +
          'archive that matches it.',
      ),
    message: z.string().max(32768).optional().describe('Details of the current phase, or of the failure.'),
    conditions: conditions(
      'Ready: finished (True when Succeeded, False when Failed or RolledBack); reported by the agents: ' +
        'Checkpointed (source), Transferred and Restored (target), Resumed (source, after a rollback)',
    ),
  })
  .describe(
    'Progress and timings: phases by the controller; frozenAt, checkpointSizeBytes, checkpointSHA256, restoredAt and the ' +
      "agents' conditions by the source and target agents.",
  );

export const MigrationKind = defineKind({
  kind: 'Migration',
  plural: 'migrations',
  singular: 'migration',
  shortNames: ['mig'],
  scope: 'Namespaced',
  description:
    'Migration moves one Container to another Host, live by checkpoint/restore (CRIU) or by restart, with ' +
    'fallback and rollback; status records phases and downtime.',
  spec: MigrationSpecSchema,
  status: MigrationStatusSchema,
  specUpdateRules,
  printerColumns: [
    { name: 'Container', type: 'string', jsonPath: '.spec.container', description: 'Container being moved.' },
    { name: 'From', type: 'string', jsonPath: '.status.sourceHost', description: 'Source Host.' },
    { name: 'To', type: 'string', jsonPath: '.status.targetHost', description: 'Target Host.' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Phase.' },
    {
      name: 'Downtime',
      type: 'number',
      jsonPath: '.status.downtimeSeconds',
      description: 'Downtime in seconds.',
    },
    {
      name: 'Age',
      type: 'date',
      jsonPath: '.metadata.creationTimestamp',
      description: 'Time since creation.',
    },
  ],
});

export const MigrationSchema = MigrationKind.schema;
export type Migration = z.output<typeof MigrationSchema>;
export type MigrationInput = z.input<typeof MigrationSchema>;
export type MigrationSpec = z.output<typeof MigrationSpecSchema>;
export type MigrationSpecInput = z.input<typeof MigrationSpecSchema>;
export type MigrationStatus = z.output<typeof MigrationStatusSchema>;
export type MigrationPhase = z.output<typeof MigrationPhaseSchema>;
export type MigrationMode = z.output<typeof MigrationModeSchema>;
export type MigrationFallback = z.output<typeof MigrationFallbackSchema>;

/** The phases a Migration ends in: nothing moves any more. */
export const finalMigrationPhases = ['Succeeded', 'Failed', 'RolledBack'] as const;
export type FinalMigrationPhase = (typeof finalMigrationPhases)[number];

/** The Migration has ended (Succeeded, Failed or RolledBack). */
export function migrationEnded(m: Migration): boolean {
  return (finalMigrationPhases as readonly string[]).includes(m.status?.phase ?? '');
}

/**
 * How a Migration moves its Container: its spec.mode, or Restart once the checkpoint proved
 * impossible and fallback Restart took over (the FellBack condition).
 */
export function effectiveMode(m: Migration): 'Checkpoint' | 'Restart' {
  const fellBack = m.status?.conditions?.some((c) => c.type === 'FellBack' && c.status === 'True');
  return m.spec.mode === 'Restart' || fellBack ? 'Restart' : 'Checkpoint';
}
