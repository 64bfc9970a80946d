// The agent's command line: flags (or GANTRY_AGENT_* environment variables), checked with zod so
// a wrong value stops the agent with a message saying which flag and why.
import os from 'node:os';
import { z } from 'zod';
import { parseFlags } from '../obs/flags.js';
import { isIPAddress, isQuantity, quantityNanos } from '../api/v1alpha1/index.js';

const quantity = z.string().refine(isQuantity, 'must be a quantity such as 2, 500m or 4Gi');
const seconds = z.coerce.number().positive();
const percent = z.coerce.number().min(0).max(100);

export const AgentOptionsSchema = z
  .object({
    hostName: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a DNS subdomain (the name of the Node)'),
    criSocket: z.string().min(1),
    /** Use a runtime that also runs kubelet pods (the kubelet then removes Gantry's containers). */
    allowRuntimeSharedWithKubelet: z.enum(['true', 'false']).transform((v) => v === 'true'),
    kubeconfig: z.string().optional(),
    stateDir: z.string().min(1),
    metricsBindAddress: z.string(),
    healthProbeBindAddress: z.string(),
    /** Where other agents fetch checkpoints from this one (migrations). */
    transferBindAddress: z.string(),
    /** The address other agents reach this host at; the first non-loopback IPv4 when unset. */
    advertiseAddress: z.string().optional(),
    /**
     * This Host's address (the kubelet's --node-ip): Containers' hostPorts are published there and
     * the Host reports it; unset: on every address of the machine, as the kubelet publishes them.
     */
    nodeIp: z.string().refine(isIPAddress, 'must be an IPv4 or IPv6 address').optional(),
    /**
     * Where Gantry's aggregated API server reaches this agent for Containers' logs, exec and usage
     * (streams.ts); unset: no stream endpoint (the chart sets it with subresources.enabled).
     */
    streamBindAddress: z.string().optional(),
    /** The Secret (in the agents' Secret namespace) holding this endpoint's TLS identity. */
    streamTlsSecret: z.string().min(1),
    /**
     * BuildKit's daemon on this host (unix:///path/buildkitd.sock, or the path alone): the agent then
     * runs the Builds bound to its Host with buildctl. Unset: it runs none.
     */
    buildkitSocket: z
      .string()
      .min(1)
      .transform((s) => (s.includes('://') ? s : `unix://${s}`))
      .optional(),
    /** The buildctl program (BuildKit's client), found on PATH unless a path is given. */
    buildctl: z.string().min(1),
    leaseNamespace: z.string().min(1),
    /** Where the controller keeps migrations' transfer tokens; unset: leaseNamespace. */
    transferSecretNamespace: z.string().min(1).optional(),
    leaseDurationSeconds: z.coerce.number().int().min(5),
    renewIntervalSeconds: seconds,
    reportIntervalSeconds: seconds,
    statsIntervalSeconds: seconds,
    probeImage: z.string(),
    restartBackoffSeconds: seconds,
    restartBackoffMaxSeconds: seconds,
    pullConcurrency: z.coerce.number().int().min(1).max(32),
    capacityCpu: quantity.optional(),
    capacityMemory: quantity.optional(),
    reservedCpu: quantity,
    reservedMemory: quantity,
    cgroupParent: z.string().optional(),
    /** The cluster's DNS server (the kube-dns Service's ClusterIP), as the kubelet's --cluster-dns. */
    clusterDns: z.union([z.ipv4(), z.ipv6()], { error: 'must be an IP address' }).optional(),
    /** The cluster's domain, as the kubelet's --cluster-domain: Services are <name>.<namespace>.svc.<domain>. */
    clusterDomain: z
      .string()
      .regex(
        /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
        'must be a DNS domain such as cluster.local',
      )
      .optional(),
    /** Image garbage collection: from this full (percent of the image filesystem)... */
    imageGcHighThresholdPercent: percent,
    /** ...down to this. */
    imageGcLowThresholdPercent: percent,
    /** How long an image must have been unused before it may go. */
    imageGcMinAgeSeconds: z.coerce.number().min(0),
    imageGcIntervalSeconds: seconds,
    /** Container log rotation (logrotate.ts): rotate a container's log file of this size... */
    containerLogMaxSize: z
      .string()
      .refine(
        (q) => isQuantity(q) && quantityNanos(q) >= 1_000_000_000n,
        'must be a quantity of at least 1 byte, such as 10Mi',
      )
      .transform((q) => Number(quantityNanos(q) / 1_000_000_000n)),
    /** ...keeping this many files per container, the current one included (the kubelet's minimum: 2). */
    containerLogMaxFiles: z.coerce.number().int().min(2),
    containerLogMonitorIntervalSeconds: seconds,
    /**
     * A checkpoint migration's source reports itself not Ready this long before it is frozen, so
     * that Services stop sending it requests first (migration-steps.ts); 0: frozen at once.
     */
    migrationDrainSeconds: z.coerce.number().min(0),
    /** Self-fencing (fence.ts): stop Workload replicas after this long without a heartbeat; 0: never. */
    fenceAfterSeconds: z.coerce.number().min(0),
    logLevel: z.enum(['error', 'warn', 'info', 'debug']),
  })
  .refine((o) => o.imageGcLowThresholdPercent <= o.imageGcHighThresholdPercent, {
    path: ['imageGcLowThresholdPercent'],
    message: 'must not be above --image-gc-high-threshold-percent',
  })
  .refine((o) => (o.clusterDns === undefined) === (o.clusterDomain === undefined), {
    path: ['clusterDns'],
    message: 'give --cluster-dns and --cluster-domain together (containers search <namespace>.svc.<domain>)',
  })
  .refine((o) => o.fenceAfterSeconds === 0 || o.fenceAfterSeconds >= 2 * o.renewIntervalSeconds, {
    path: ['fenceAfterSeconds'],
    message: 'must be 0 (off) or at least twice --renew-interval-seconds (one lost renewal must not fence)',
  });

export type AgentOptions = z.output<typeof AgentOptionsSchema>;

const defaults: Record<keyof AgentOptions, string | undefined> = {
  hostName: os.hostname().toLowerCase(),
  // Gantry's own containerd, apart from the kubelet's (kubeletruntime.ts says why).
  criSocket: '/run/gantry/containerd/containerd.sock',
  allowRuntimeSharedWithKubelet: 'false',
  kubeconfig: undefined,
  stateDir: '/var/lib/gantry/agent',
  metricsBindAddress: '127.0.0.1:9090',
  healthProbeBindAddress: '127.0.0.1:9091',
  transferBindAddress: '0.0.0.0:9300',
  advertiseAddress: undefined,
  nodeIp: undefined,
  streamBindAddress: undefined,
  streamTlsSecret: 'gantry-agent-tls',
  buildkitSocket: undefined,
  buildctl: 'buildctl',
  leaseNamespace: 'gantry-system',
  transferSecretNamespace: undefined,
  leaseDurationSeconds: '40',
  renewIntervalSeconds: '10',
  reportIntervalSeconds: '300',
  statsIntervalSeconds: '10',
  probeImage: '',
  restartBackoffSeconds: '10',
  restartBackoffMaxSeconds: '300',
  pullConcurrency: '3',
  capacityCpu: undefined,
  capacityMemory: undefined,
  reservedCpu: '0',
  reservedMemory: '0',
  cgroupParent: undefined,
  // Unset: containers get their host's resolv.conf.
  clusterDns: undefined,
  clusterDomain: undefined,
  imageGcHighThresholdPercent: '85',
  imageGcLowThresholdPercent: '80',
  imageGcMinAgeSeconds: '120',
  imageGcIntervalSeconds: '60',
  // The kubelet's defaults (containerLogMaxSize, containerLogMaxFiles, containerLogMonitorInterval).
  containerLogMaxSize: '10Mi',
  containerLogMaxFiles: '5',
  containerLogMonitorIntervalSeconds: '10',
  // kube-proxy's minimum sync period (1 s) and the writes before it, with room to spare.
  migrationDrainSeconds: '3',
  fenceAfterSeconds: '0',
  logLevel: 'info',
};

/** Flags win over environment variables, which win over defaults. */
export function parseAgentOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): AgentOptions {
  return parseFlags(AgentOptionsSchema, defaults, 'GANTRY_AGENT', argv, env);
}
