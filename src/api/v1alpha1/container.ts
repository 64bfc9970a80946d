// Container: one container on one host (Docker's `docker run`), bound to a Host by spec.nodeName.
import { z } from 'zod';
import { conditions, observedGeneration } from './conditions.js';
import { dateTime, defineKind, labelMap, objectName } from './meta.js';
import { containerTemplateFields } from './template.js';
import { celEqual, int32, withTransitionRules, type TransitionRule } from './rules.js';

const ContainerSpecBase = z.object({
  ...containerTemplateFields,
  nodeName: objectName()
    .optional()
    .describe(
      'Host the container runs on: set by the scheduler, or by you to pin it. Cannot change once set; ' +
        'a Migration moves a container by creating a new one on the target.',
    ),
  nodeSelector: labelMap().optional().describe('Labels a Host must carry for the scheduler to pick it.'),
  stopped: z
    .boolean()
    .optional()
    .describe(
      'Stop the process and keep the Container (docker stop; false or absent again: docker start). The ' +
        'agent sends SIGTERM (SIGKILL after the grace period), does not restart it whatever restartPolicy ' +
        'says, and reports phase Stopped; the Container keeps its Host, its requests there and its logs. ' +
        'Started again, it runs as a new runtime container from its image: what the process wrote to its ' +
        'filesystem is gone (docker start keeps it). ' +
        "Ignored on a Workload's replica (its Workload decides how many run: scale it instead).",
    ),
  stopGracePeriodSeconds: int32(0, 3600)
    .optional()
    .describe(
      'Seconds between SIGTERM and SIGKILL for the stop that stopped asks for, instead of ' +
        'terminationGracePeriodSeconds (`kubectl gantry stop -t` sets it and `start` removes it). A stop ' +
        'under way keeps the grace period it began with.',
    ),
});

/** The ports a spec publishes on its Host, as "hostPort/protocol/hostIP", sorted. */
function publishedPorts(spec: z.output<typeof ContainerSpecBase>): string[] {
  return (spec.ports ?? [])
    .filter((p) => p.hostPort !== undefined)
    .map((p) => `${p.hostPort}/${p.protocol}/${p.hostIP ?? ''}`)
    .sort();
}

/**
 * CEL: every port spec `a` publishes, spec `b` publishes too (same hostPort, protocol and hostIP).
 * Compared field by field, not as joined strings: the apiserver's cost estimate of a string built
 * from a number has no bound.
 */
function celPublishedIn(a: string, b: string): string {
  const same =
    'q.hostPort == p.hostPort && q.protocol == p.protocol && ' +
    '(has(q.hostIP) ? has(p.hostIP) && q.hostIP == p.hostIP : !has(p.hostIP))';
  return (
    `(!has(${a}.ports) || ${a}.ports.all(p, !has(p.hostPort) || ` +
    `(has(${b}.ports) && ${b}.ports.exists(q, has(q.hostPort) && ${same}))))`
  );
}

const specUpdateRules: TransitionRule<z.output<typeof ContainerSpecBase>>[] = [
  {
    rule: '!has(oldSelf.nodeName) || (has(self.nodeName) && self.nodeName == oldSelf.nodeName)',
    message: 'nodeName cannot be changed once the container is bound to a host; use a Migration to move it',
    fieldPath: '.nodeName',
    check: (self, oldSelf) => oldSelf.nodeName === undefined || self.nodeName === oldSelf.nodeName,
  },
  {
    rule: `!has(oldSelf.nodeName) || (${celPublishedIn('self', 'oldSelf')} && ${celPublishedIn('oldSelf', 'self')})`,
    message:
      'hostPort and hostIP cannot change once the container is bound to a host (its Host published them ' +
      'when it started); create a new Container instead',
    fieldPath: '.ports',
    check: (self, oldSelf) =>
      oldSelf.nodeName === undefined || celEqual(publishedPorts(self), publishedPorts(oldSelf)),
  },
];

export const ContainerSpecSchema = withTransitionRules(ContainerSpecBase, specUpdateRules).describe(
  'The container to run and where: the container fields plus nodeName and nodeSelector, and whether it is stopped.',
);

export const ContainerPhaseSchema = z.enum([
  'Pending',
  'Creating',
  'Running',
  'Restarting',
  'Migrating',
  'Stopping',
  'Stopped',
  'Terminating',
  'Succeeded',
  'Failed',
  'Unknown',
]);

const runtimeId = (what: string) => z.string().max(256).optional().describe(what);

export const ContainerStatusSchema = z
  .object({
    observedGeneration: observedGeneration(),
    phase: ContainerPhaseSchema.optional().describe(
      'Pending (not on a host yet), Creating (pulling, creating the sandbox), Running, Restarting (exited, ' +
        'waiting out the restart back-off), Migrating (frozen for a checkpoint migration, or waiting for its ' +
        'checkpoint on the target), Stopping (spec.stopped: the process was sent SIGTERM and is killed once the ' +
        'grace period passes), Stopped (spec.stopped: the process exited and is not restarted until stopped ' +
        'is false again), Terminating (deleted: the process was sent SIGTERM and is killed once ' +
        'terminationGracePeriodSeconds pass), Succeeded or Failed (exited, not restarted), Unknown (the host ' +
        'stopped reporting).',
    ),
    containerID: runtimeId('Runtime container ID (CRI), once created.'),
    sandboxID: runtimeId('Runtime pod sandbox ID (CRI), once created.'),
    ip: z.string().max(64).optional().describe('IP address of the container on its host network.'),
    imageDigest: z
      .string()
      .max(256)
      .optional()
      .describe('Digest of the image the container runs (sha256:...).'),
    startedAt: dateTime().optional().describe('When the current process started.'),
    finishedAt: dateTime().optional().describe('When the last process exited.'),
    exitCode: int32(-2147483648).optional().describe('Exit code of the last process.'),
    reason: z
      .string()
      .max(1024)
      .optional()
      .describe('CamelCase reason for the phase, e.g. ErrImagePull or OOMKilled.'),
    message: z.string().max(32768).optional().describe('Human-readable details for the phase.'),
    restartCount: int32(0).optional().describe('Times the agent restarted the process.'),
    nextRestartAt: dateTime()
      .optional()
      .describe('When the agent restarts the exited process, after back-off; unset when none is due.'),
    health: z
      .enum(['Healthy', 'Unhealthy', 'Starting'])
      .optional()
      .describe('Result of the health check; unset without one. Starting during startPeriodSeconds.'),
    conditions: conditions('Scheduled: bound to a Host; Ready: running and healthy'),
  })
  .describe('What the agent of the host observes; written only by that agent.');

export const ContainerKind = defineKind({
  kind: 'Container',
  plural: 'containers',
  singular: 'container',
  shortNames: ['ctr'],
  scope: 'Namespaced',
  description:
    'Container is one container on one Host (docker run): image, command, environment, ports, resources, ' +
    'restart policy and health check. The scheduler binds it to a Host and that Host agent runs it through CRI.',
  spec: ContainerSpecSchema,
  status: ContainerStatusSchema,
  specUpdateRules,
  selectableFields: ['.spec.nodeName'],
  printerColumns: [
    {
      name: 'Host',
      type: 'string',
      jsonPath: '.spec.nodeName',
      description: 'Host the container is bound to.',
    },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Lifecycle phase.' },
    { name: 'Image', type: 'string', jsonPath: '.spec.image', description: 'Image reference.' },
    { name: 'Restarts', type: 'integer', jsonPath: '.status.restartCount', description: 'Restart count.' },
    {
      name: 'Age',
      type: 'date',
      jsonPath: '.metadata.creationTimestamp',
      description: 'Time since creation.',
    },
    { name: 'IP', type: 'string', jsonPath: '.status.ip', description: 'Container IP.', priority: 1 },
    {
      name: 'Health',
      type: 'string',
      jsonPath: '.status.health',
      description: 'Health check result.',
      priority: 1,
    },
  ],
});

export const ContainerSchema = ContainerKind.schema;
export type Container = z.output<typeof ContainerSchema>;
export type ContainerInput = z.input<typeof ContainerSchema>;
export type ContainerSpec = z.output<typeof ContainerSpecSchema>;
export type ContainerSpecInput = z.input<typeof ContainerSpecSchema>;
export type ContainerStatus = z.output<typeof ContainerStatusSchema>;
export type ContainerPhase = z.output<typeof ContainerPhaseSchema>;

/** The process exited and will not run again (phase Succeeded or Failed). */
export function containerFinished(c: Container): boolean {
  return c.status?.phase === 'Succeeded' || c.status?.phase === 'Failed';
}

/** Stopped on request (spec.stopped): its process exited or is on its way out, and is not restarted. */
export function containerStopped(c: Container): boolean {
  return c.status?.phase === 'Stopping' || c.status?.phase === 'Stopped';
}

/** The owner reference of the Workload that controls a Container (a replica), if any. */
export function workloadOwner(c: Container) {
  return c.metadata.ownerReferences?.find(
    (r) => r.controller && r.kind === 'Workload' && r.apiVersion.startsWith('gantry.dev/'),
  );
}
