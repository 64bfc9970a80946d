// Host: one machine with a Gantry agent and a container runtime (the Docker daemon's host). The agent
// registers it and reports status; users cordon it (unschedulable) or ask for a drain.
import { z } from 'zod';
import { conditions, observedGeneration } from './conditions.js';
import { dateTime, defineKind, ipAddress, objectName } from './meta.js';
import { QuantitySchema } from './template.js';
import { int32, int64, listMap } from './rules.js';

export const HostSpecSchema = z
  .object({
    unschedulable: z
      .boolean()
      .default(false)
      .describe(
        'Cordon: the scheduler puts no new Containers here; running ones stay. Follows kubectl cordon.',
      ),
    drain: z
      .boolean()
      .default(false)
      .describe(
        'Drain request: when true the controller moves every Container off this Host (Workloads by their ' +
          'migrationPolicy) and keeps it unschedulable; progress is in status.drain.',
      ),
    maxConcurrentMigrations: int32(1, 64)
      .default(2)
      .describe('Most Migrations with this Host as source or target at once.'),
  })
  .describe('What users may change about a Host: cordon, drain and migration concurrency.');

const ResourceAmountsSchema = z.object({
  cpu: QuantitySchema.optional().describe('CPU in cores.'),
  memory: QuantitySchema.optional().describe('Memory in bytes.'),
});

export const HostStatusSchema = z
  .object({
    observedGeneration: observedGeneration(),
    runtimeVersion: z
      .string()
      .max(256)
      .optional()
      .describe('Runtime as <name>://<version>, like a Node containerRuntimeVersion: containerd://2.3.7.'),
    runtime: z
      .object({
        name: z.string().max(64).optional().describe('Runtime name from CRI Version, e.g. containerd.'),
        version: z.string().max(128).optional().describe('Runtime version, e.g. v2.3.7.'),
        apiVersion: z.string().max(64).optional().describe('CRI API version the runtime speaks, e.g. v1.'),
      })
      .optional()
      .describe('The container runtime, as its CRI Version call reports it.'),
    checkpoint: z
      .object({
        supported: z
          .boolean()
          .describe('Whether checkpoint/restore (CRIU) was probed and works on this Host.'),
        message: z.string().max(4096).optional().describe('Why it does not work, or the probe details.'),
      })
      .optional()
      .describe('Whether Containers can be live-migrated from and to this Host.'),
    address: ipAddress()
      .optional()
      .describe(
        "The Host's address (its agent's --node-ip): Containers' hostPorts are published there. Unset: " +
          'they are published on every address of the machine.',
      ),
    capacity: ResourceAmountsSchema.optional().describe(
      'Resources of the slice of the machine given to Gantry.',
    ),
    allocatable: ResourceAmountsSchema.optional().describe(
      'Resources the scheduler may hand out: capacity less reservations.',
    ),
    images: z
      .array(
        z.object({
          names: z.array(z.string().max(512)).max(16).optional().describe('References (tags) of the image.'),
          digest: z.string().max(256).describe('Image ID or repo digest (sha256:...).'),
          sizeBytes: int64().optional().describe('Size in bytes.'),
        }),
      )
      .max(256)
      .optional()
      .describe(
        'Images present in the runtime (at most 256, largest first), used to place work near its image.',
      ),
    imagePulls: listMap(
      z.object({
        image: z
          .string()
          .max(317)
          .describe('The Image object that asked for the pull, as <namespace>/<name>.'),
        state: z.enum(['Pulling', 'Failed']).describe('Pulling now, or the last pull failed.'),
        reason: z
          .string()
          .max(1024)
          .optional()
          .describe('Short CamelCase cause of a failure, e.g. Unauthorized.'),
        message: z.string().max(4096).optional().describe('The error the runtime returned.'),
      }),
      ['image'],
      64,
    )
      .optional()
      .describe('Pulls of Image objects that are not done: in progress or failed (at most 64).'),
    containers: int32(0).optional().describe('Number of Gantry containers running on this Host.'),
    cpuUsageCores: z.number().min(0).optional().describe('CPU in use by Gantry containers, in cores.'),
    workloadUsage: z
      .array(
        z.object({
          namespace: objectName().describe('Namespace of the Workload.'),
          workload: objectName().describe('Name of the Workload.'),
          containers: int32(0).describe('Running Containers of the Workload on this Host.'),
          cpuCores: z.number().min(0).describe('CPU they use together, in cores.'),
        }),
      )
      .max(1024)
      .optional()
      .describe(
        'CPU used by each Workload on this Host, from runtime stats: what built-in autoscaling reads.',
      ),
    transferEndpoint: z
      .string()
      .max(256)
      .regex(/^https?:\/\/[^/]+$/, 'must be a URL with scheme, host and port and nothing else')
      .optional()
      .describe(
        'Where other agents fetch checkpoints from this Host (http://<address>:<port>), for migrations.',
      ),
    transferPublicKey: z
      .string()
      .max(128)
      .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'must be base64')
      .optional()
      .describe(
        "The agent's X25519 public key (base64 SPKI DER): checkpoints sent to this Host are encrypted for it.",
      ),
    agentVersion: z.string().max(128).optional().describe('Version of the Gantry agent.'),
    lastHeartbeatTime: dateTime()
      .optional()
      .describe(
        "When the agent last wrote this status: on every change, and at least every 5 minutes (--report-interval-seconds). Whether the Host is alive is its heartbeat Lease's business.",
      ),
    drain: z
      .object({
        phase: z
          .enum(['Draining', 'Drained'])
          .describe(
            'Draining while Containers remain or their moves run; Drained once the Host is empty and every move ended.',
          ),
        pending: int32(0).optional().describe('Containers not yet moved.'),
        migrating: int32(0).optional().describe('Containers being moved now.'),
        completed: int32(0).optional().describe('Containers moved.'),
        failed: int32(0).optional().describe('Containers whose move failed (they are retried or restarted).'),
      })
      .optional()
      .describe('Progress of a drain requested with spec.drain.'),
    conditions: conditions('Ready: the agent reports and the runtime answers; CheckpointReady'),
  })
  .describe('What the agent of this Host reports (the controller writes status.drain).');

export const HostKind = defineKind({
  kind: 'Host',
  plural: 'hosts',
  singular: 'host',
  shortNames: ['hst'],
  scope: 'Cluster',
  description:
    'Host is a machine with a Gantry agent and a containerd runtime, named after its Node. The agent ' +
    'registers it and reports runtime, checkpoint support, capacity and images; spec cordons or drains it.',
  spec: HostSpecSchema,
  specDefaultsToEmpty: true,
  status: HostStatusSchema,
  printerColumns: [
    {
      name: 'Ready',
      type: 'string',
      jsonPath: '.status.conditions[?(@.type=="Ready")].status',
      description: 'Status of the Ready condition.',
    },
    {
      name: 'Runtime',
      type: 'string',
      jsonPath: '.status.runtimeVersion',
      description: 'Container runtime.',
    },
    {
      name: 'Checkpoint',
      type: 'boolean',
      jsonPath: '.status.checkpoint.supported',
      description: 'Whether checkpoint/restore works.',
    },
    {
      name: 'Containers',
      type: 'integer',
      jsonPath: '.status.containers',
      description: 'Running containers.',
    },
    {
      name: 'Age',
      type: 'date',
      jsonPath: '.metadata.creationTimestamp',
      description: 'Time since creation.',
    },
    {
      name: 'Unschedulable',
      type: 'boolean',
      jsonPath: '.spec.unschedulable',
      description: 'Cordoned.',
      priority: 1,
    },
    {
      name: 'Address',
      type: 'string',
      jsonPath: '.status.address',
      description: "Where Containers' hostPorts are published.",
      priority: 1,
    },
    {
      name: 'Agent',
      type: 'string',
      jsonPath: '.status.agentVersion',
      description: 'Agent version.',
      priority: 1,
    },
  ],
});

export const HostSchema = HostKind.schema;
export type Host = z.output<typeof HostSchema>;
export type HostInput = z.input<typeof HostSchema>;
export type HostSpec = z.output<typeof HostSpecSchema>;
export type HostSpecInput = z.input<typeof HostSpecSchema>;
export type HostStatus = z.output<typeof HostStatusSchema>;
