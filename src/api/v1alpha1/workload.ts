// Workload: replicas of one container template (Docker's `docker service`), with placement, rolling
// updates, migration policy and optional autoscaling; has /scale so `kubectl scale` and an HPA work.
import { z } from 'zod';
import { conditions, observedGeneration } from './conditions.js';
import { annotationMap, dateTime, defineKind, labelMap } from './meta.js';
import { MigrationFallbackSchema, MigrationModeSchema } from './migration.js';
import { LabelSelectorSchema, selectorMatches } from './selector.js';
import { ContainerTemplateSpecSchema } from './template.js';
import { celEqual, int32, withRules, withTransitionRules, type TransitionRule } from './rules.js';

/** An absolute number or a percentage of replicas, as Deployment's maxUnavailable and maxSurge. */
const IntOrPercentSchema = z.union([
  int32(0),
  z
    .string()
    .max(16)
    .regex(/^\d+%$/, 'must be a whole percentage such as 25%'),
]);

function isZero(v: number | string): boolean {
  return typeof v === 'number' ? v === 0 : /^0+%$/.test(v);
}

/** Used when strategy.type is RollingUpdate and rollingUpdate is omitted. */
export const DEFAULT_ROLLING_UPDATE = { maxUnavailable: '25%', maxSurge: '25%' } as const;

const RollingUpdateSchema = withRules(
  z.object({
    maxUnavailable: IntOrPercentSchema.default(DEFAULT_ROLLING_UPDATE.maxUnavailable).describe(
      'Replicas (number, or percentage of replicas rounded down) that may be unavailable during the update.',
    ),
    maxSurge: IntOrPercentSchema.default(DEFAULT_ROLLING_UPDATE.maxSurge).describe(
      'Replicas (number, or percentage of replicas rounded up) created above the desired count during the update.',
    ),
  }),
  {
    rule: "!(string(self.maxUnavailable).matches('^0+%?$') && string(self.maxSurge).matches('^0+%?$'))",
    message: 'maxUnavailable and maxSurge cannot both be zero',
    check: (r) => !(isZero(r.maxUnavailable) && isZero(r.maxSurge)),
  },
).describe('Pace of a rolling update.');

const StrategySchema = withRules(
  z.object({
    type: z
      .enum(['RollingUpdate', 'Recreate'])
      .default('RollingUpdate')
      .describe(
        'RollingUpdate replaces containers gradually; Recreate removes all old ones before creating new ones.',
      ),
    rollingUpdate: RollingUpdateSchema.optional(),
  }),
  {
    rule: "self.type == 'RollingUpdate' || !has(self.rollingUpdate)",
    message: 'rollingUpdate may only be set when type is RollingUpdate',
    reason: 'FieldValueForbidden',
    fieldPath: '.rollingUpdate',
    check: (s) => s.type === 'RollingUpdate' || s.rollingUpdate === undefined,
  },
);

const AutoscaleSchema = withRules(
  z.object({
    minReplicas: int32(1).default(1).describe('Fewest replicas the autoscaler keeps.'),
    maxReplicas: int32(1).describe('Most replicas the autoscaler creates.'),
    targetCPUUtilizationPercent: int32(1, 1000)
      .default(80)
      .describe('Target mean CPU use, as a percentage of template.spec.resources.requests.cpu.'),
    scaleUpStabilizationSeconds: int32(0, 3600)
      .default(0)
      .describe('Scale up to the lowest recommendation of this window (0: at once).'),
    scaleDownStabilizationSeconds: int32(0, 3600)
      .default(300)
      .describe('Scale down to the highest recommendation of this window, to avoid flapping.'),
  }),
  {
    rule: 'self.minReplicas <= self.maxReplicas',
    message: 'minReplicas must be less than or equal to maxReplicas',
    fieldPath: '.minReplicas',
    check: (a) => a.minReplicas <= a.maxReplicas,
  },
);

const TemplateSchema = z.object({
  metadata: z
    .object({
      labels: labelMap().optional().describe('Labels of each Container; must match spec.selector.'),
      annotations: annotationMap().optional().describe('Annotations of each Container.'),
    })
    .optional()
    .describe('Labels and annotations given to each Container.'),
  spec: ContainerTemplateSpecSchema,
});

const LABELS = 'self.template.metadata.labels';
const HAS_LABELS = 'has(self.template.metadata) && has(self.template.metadata.labels)';
const EXPRESSION_HOLDS =
  `e.operator == 'In' ? e.key in ${LABELS} && has(e.values) && ${LABELS}[e.key] in e.values : ` +
  `e.operator == 'NotIn' ? !(e.key in ${LABELS}) || !has(e.values) || !(${LABELS}[e.key] in e.values) : ` +
  `e.operator == 'Exists' ? e.key in ${LABELS} : !(e.key in ${LABELS})`;

const WorkloadSpecBase = withRules(
  z.object({
    replicas: int32(0)
      .default(1)
      .describe('Desired number of Containers; the autoscaler sets it when enabled.'),
    selector: LabelSelectorSchema.describe(
      'Labels that identify this Workload Containers; must match template.metadata.labels. Immutable.',
    ),
    template: TemplateSchema.describe('The Container each replica is made from.'),
    placement: z
      .object({
        nodeSelector: labelMap().optional().describe('Labels a Host must carry to receive replicas.'),
        maxSkew: int32(1)
          .default(1)
          .describe('Keep replica counts of any two eligible Hosts within this difference where possible.'),
        maxPerHost: int32(1).optional().describe('Never put more than this many replicas on one Host.'),
      })
      .prefault({})
      .describe('Where replicas may run and how they spread over Hosts.'),
    strategy: StrategySchema.prefault({}).describe('How Containers are replaced when the template changes.'),
    migrationPolicy: z
      .object({
        mode: MigrationModeSchema.default('Checkpoint').describe(
          'Checkpoint moves a running container with its memory (CRIU); Restart starts it anew on the target.',
        ),
        fallback: MigrationFallbackSchema.default('Restart').describe(
          'What to do when a checkpoint migration fails: Restart on the target, or None (leave it). ' +
            'Ignored for mode Restart.',
        ),
        onDrain: z.boolean().default(true).describe('Migrate replicas off a Host being drained.'),
      })
      .prefault({})
      .describe('How replicas move between Hosts.'),
    autoscale: AutoscaleSchema.optional().describe(
      'Scale replicas on CPU use, as a HorizontalPodAutoscaler would; needs template.spec.resources.requests.cpu.',
    ),
    progressDeadlineSeconds: int32(1)
      .default(600)
      .describe('Seconds a rollout may make no progress before Progressing turns False.'),
  }),
  {
    rule:
      `${HAS_LABELS} ? ` +
      `(!has(self.selector.matchLabels) || self.selector.matchLabels.all(k, k in ${LABELS} && ${LABELS}[k] == self.selector.matchLabels[k])) && ` +
      `(!has(self.selector.matchExpressions) || self.selector.matchExpressions.all(e, ${EXPRESSION_HOLDS})) : ` +
      `(!has(self.selector.matchLabels) || size(self.selector.matchLabels) == 0) && ` +
      `(!has(self.selector.matchExpressions) || self.selector.matchExpressions.all(e, e.operator in ['NotIn', 'DoesNotExist']))`,
    message: 'selector does not match template.metadata.labels',
    fieldPath: '.selector',
    check: (s) => selectorMatches(s.selector, s.template.metadata?.labels ?? {}),
  },
  {
    rule:
      '!has(self.autoscale) || (has(self.template.spec.resources) && has(self.template.spec.resources.requests) && ' +
      'has(self.template.spec.resources.requests.cpu))',
    message: 'autoscale needs template.spec.resources.requests.cpu: utilization is relative to it',
    reason: 'FieldValueRequired',
    fieldPath: '.template.spec.resources.requests.cpu',
    check: (s) => s.autoscale === undefined || s.template.spec.resources?.requests?.cpu !== undefined,
  },
);

const specUpdateRules: TransitionRule<z.output<typeof WorkloadSpecBase>>[] = [
  {
    rule: 'self.selector == oldSelf.selector',
    message: 'selector is immutable',
    fieldPath: '.selector',
    check: (self, oldSelf) => celEqual(self.selector, oldSelf.selector),
  },
];

export const WorkloadSpecSchema = withTransitionRules(WorkloadSpecBase, specUpdateRules).describe(
  'Desired replicas of a container template, and how to place, update, migrate and scale them.',
);

const replicaCount = (what: string) => int32(0).optional().describe(what);

export const WorkloadStatusSchema = z
  .object({
    observedGeneration: observedGeneration(),
    replicas: replicaCount('Containers of this Workload, of any revision.'),
    readyReplicas: replicaCount('Containers whose Ready condition is True.'),
    updatedReplicas: replicaCount('Containers of the current template revision.'),
    availableReplicas: replicaCount('Ready Containers of any revision (they serve).'),
    selector: z
      .string()
      .max(8192)
      .optional()
      .describe('spec.selector as a string (app=web), for the /scale subresource.'),
    currentRevision: z
      .string()
      .max(64)
      .optional()
      .describe('Hash of the current template, also a label on its Containers.'),
    lastProgressTime: dateTime()
      .optional()
      .describe(
        'When the rollout last made progress; spec.progressDeadlineSeconds counts from here ' +
          '(in status, so a restarted controller keeps counting).',
      ),
    conditions: conditions('Available: enough replicas ready; Progressing: rollout moving or done; Ready'),
  })
  .describe('Replica counts and rollout state, written by the controller.');

export const WorkloadKind = defineKind({
  kind: 'Workload',
  plural: 'workloads',
  singular: 'workload',
  shortNames: ['wl'],
  scope: 'Namespaced',
  description:
    'Workload runs replicas of a container template across Hosts (docker service): placement and spread, ' +
    'rolling updates, migration on drain, optional CPU autoscaling. Supports kubectl scale.',
  spec: WorkloadSpecSchema,
  status: WorkloadStatusSchema,
  specUpdateRules,
  scale: {
    specReplicasPath: '.spec.replicas',
    statusReplicasPath: '.status.replicas',
    labelSelectorPath: '.status.selector',
  },
  printerColumns: [
    { name: 'Desired', type: 'integer', jsonPath: '.spec.replicas', description: 'Desired replicas.' },
    { name: 'Ready', type: 'integer', jsonPath: '.status.readyReplicas', description: 'Ready replicas.' },
    {
      name: 'Up-to-date',
      type: 'integer',
      jsonPath: '.status.updatedReplicas',
      description: 'Updated replicas.',
    },
    {
      name: 'Available',
      type: 'integer',
      jsonPath: '.status.availableReplicas',
      description: 'Available replicas.',
    },
    {
      name: 'Age',
      type: 'date',
      jsonPath: '.metadata.creationTimestamp',
      description: 'Time since creation.',
    },
  ],
});

export const WorkloadSchema = WorkloadKind.schema;
export type Workload = z.output<typeof WorkloadSchema>;
export type WorkloadInput = z.input<typeof WorkloadSchema>;
export type WorkloadSpec = z.output<typeof WorkloadSpecSchema>;
export type WorkloadSpecInput = z.input<typeof WorkloadSpecSchema>;
export type WorkloadStatus = z.output<typeof WorkloadStatusSchema>;
