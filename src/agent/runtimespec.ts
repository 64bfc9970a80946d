// How a Container object becomes CRI objects: deterministic names and labels that tie every
// sandbox and runtime container to the Container's UID (so a restarted agent finds and adopts
// them), and the sandbox and container configs built from the spec.
import crypto from 'node:crypto';
import path from 'node:path';
import type { ContainerSpec } from '../api/v1alpha1/index.js';
import { quantityNanos, workloadLabel } from '../api/v1alpha1/index.js';
import type {
  ContainerConfig,
  DNSConfig,
  LinuxContainerSecurityContext,
  PodSandboxConfig,
} from '../cri/client.js';

/** Labels on every sandbox and runtime container the agent creates. */
export const labels = {
  managedBy: 'gantry.dev/managed-by',
  uid: 'gantry.dev/container-uid',
  namespace: 'gantry.dev/namespace',
  name: 'gantry.dev/name',
  /** On runtime containers: hash of the spec fields that shape the runtime container. */
  specHash: 'gantry.dev/spec-hash',
  /** Workload label of the Container, copied so stats aggregate by Workload without the API. */
  workload: 'gantry.dev/workload',
} as const;

export const managedByValue = 'gantry-agent';

/** The annotation naming a CRIU configuration file for runc, on checkpoint and restore (containerd must pass it on). */
export const criuConfigAnnotation = 'org.criu.config';

export interface ContainerIdentity {
  namespace: string;
  name: string;
  uid: string;
  /** Labels of the Container object (the workload label is carried over). */
  labels?: Record<string, string>;
}

export function runtimeLabels(c: ContainerIdentity): Record<string, string> {
  const out: Record<string, string> = {
    [labels.managedBy]: managedByValue,
    [labels.uid]: c.uid,
    [labels.namespace]: c.namespace,
    [labels.name]: c.name,
  };
  const workload = c.labels?.[workloadLabel];
  if (workload) out[labels.workload] = workload;
  return out;
}

/** The runtime's log directory of one Container: one per UID, as the kubelet lays them out. */
export function logDirectory(logRoot: string, c: ContainerIdentity): string {
  return path.join(logRoot, `${c.namespace}_${c.name}_${c.uid}`);
}

/** Log file of one attempt, relative to the sandbox's log directory. */
export function logPath(attempt: number): string {
  return `container/${attempt}.log`;
}

export interface SandboxOptions {
  logRoot: string;
  /** Sandboxes go under this cgroup (the agent's reserved slice of the machine), if set. */
  cgroupParent?: string;
  /** Bumped when a dead sandbox has to be replaced (CRI refuses a name+attempt that exists). */
  attempt: number;
  /** The Host's address: hostPorts are published there unless a port names its hostIP. */
  nodeIP?: string;
  /** The cluster's DNS; unset: the runtime gives the sandbox its host's resolv.conf. */
  clusterDns?: ClusterDns;
}

/** The cluster's DNS server and domain, as the kubelet's --cluster-dns and --cluster-domain. */
export interface ClusterDns {
  server: string;
  domain: string;
}

/** A resolv.conf as the kubelet writes a Pod's (dnsPolicy ClusterFirst): Services of the namespace by their bare name. */
export function dnsConfig(namespace: string, dns: ClusterDns): DNSConfig {
  return {
    servers: [dns.server],
    searches: [`${namespace}.svc.${dns.domain}`, `svc.${dns.domain}`, dns.domain],
    options: ['ndots:5'],
  };
}

export function sandboxConfig(
  c: ContainerIdentity,
  spec: ContainerSpec,
  opts: SandboxOptions,
): PodSandboxConfig {
  return {
    metadata: { name: c.name, namespace: c.namespace, uid: c.uid, attempt: opts.attempt },
    hostname: c.name.slice(0, 63).replace(/[^a-z0-9-]/g, '-'),
    logDirectory: logDirectory(opts.logRoot, c),
    ...(opts.clusterDns ? { dnsConfig: dnsConfig(c.namespace, opts.clusterDns) } : {}),
    portMappings: (spec.ports ?? []).map((p) => ({
      containerPort: p.containerPort,
      protocol: p.protocol,
      // The runtime's CNI portmap plugin publishes it; an empty host_ip is every address.
      ...(p.hostPort !== undefined ? { hostPort: p.hostPort, hostIp: p.hostIP ?? opts.nodeIP ?? '' } : {}),
    })),
    labels: runtimeLabels(c),
    linux: opts.cgroupParent ? { cgroupParent: opts.cgroupParent } : {},
  };
}

const CPU_PERIOD_US = 100_000;
const MIN_CPU_SHARES = 2;

/** CPU in millicores (rounded up) and memory in bytes, from Kubernetes quantities. */
function milliCores(q: number | string): number {
  return Number((quantityNanos(q) + 999_999n) / 1_000_000n);
}

function bytes(q: number | string): bigint {
  return (quantityNanos(q) + 999_999_999n) / 1_000_000_000n;
}

/** cgroup settings the way the kubelet derives them: shares from requests, quota from limits. */
export function linuxResources(spec: ContainerSpec): NonNullable<ContainerConfig['linux']>['resources'] {
  const r = spec.resources;
  const cpuRequest = r?.requests?.cpu ?? r?.limits?.cpu;
  const out: NonNullable<ContainerConfig['linux']>['resources'] = {};
  if (cpuRequest !== undefined) {
    out.cpuShares = Math.max(MIN_CPU_SHARES, Math.floor((milliCores(cpuRequest) * 1024) / 1000));
  }
  if (r?.limits?.cpu !== undefined) {
    out.cpuPeriod = CPU_PERIOD_US;
    out.cpuQuota = Math.max(1000, Math.floor((milliCores(r.limits.cpu) * CPU_PERIOD_US) / 1000));
  }
  if (r?.limits?.memory !== undefined) out.memoryLimitInBytes = bytes(r.limits.memory);
  return out;
}

/** The spec fields that shape the runtime container: a change to any of them recreates it. */
export function specHash(spec: ContainerSpec): string {
  const shaping = {
    image: spec.image,
    command: spec.command,
    args: spec.args,
    workingDir: spec.workingDir,
    env: spec.env,
    resources: spec.resources,
    // Absent stays absent in the JSON: containers made before the field existed keep their hash.
    securityContext: spec.securityContext,
  };
  return crypto.createHash('sha256').update(JSON.stringify(shaping)).digest('hex').slice(0, 16);
}

export function containerConfig(
  c: ContainerIdentity,
  spec: ContainerSpec,
  opts: { image: string; attempt: number; criuConfig?: string },
): ContainerConfig {
  return {
    metadata: { name: 'container', attempt: opts.attempt },
    image: { image: opts.image },
    command: spec.command ?? [],
    args: spec.args ?? [],
    workingDir: spec.workingDir ?? '',
    envs: (spec.env ?? []).map((e) => ({ key: e.name, value: e.value ?? '' })),
    labels: { ...runtimeLabels(c), [labels.specHash]: specHash(spec) },
    // containerd < 2.3 crashes restoring a checkpoint of a container without annotations.
    annotations: {
      [labels.uid]: c.uid,
      ...(opts.criuConfig ? { [criuConfigAnnotation]: opts.criuConfig } : {}),
    },
    logPath: logPath(opts.attempt),
    linux: {
      resources: linuxResources(spec),
      securityContext: securityContext(spec),
    },
  };
}

/**
 * The container's Linux security context: the Pod Security baseline level always (the runtime's
 * default seccomp profile, NET_RAW dropped, no host namespaces, never privileged), and within it
 * what spec.securityContext asks for. no_new_privs unless privilege escalation is allowed.
 */
export function securityContext(spec: ContainerSpec): LinuxContainerSecurityContext {
  const sc = spec.securityContext ?? {};
  const drop = sc.capabilities?.drop ?? [];
  return {
    // Its own PID namespace, as the kubelet does: the process is PID 1 and a restore never
    // collides with the sandbox's PIDs.
    namespaceOptions: { pid: 'CONTAINER' },
    seccomp: { profileType: 'RuntimeDefault' },
    noNewPrivs: !sc.allowPrivilegeEscalation,
    capabilities: {
      addCapabilities: sc.capabilities?.add ?? [],
      dropCapabilities: drop.includes('ALL') ? ['ALL'] : [...new Set(['NET_RAW', ...drop])],
    },
    readonlyRootfs: !!sc.readOnlyRootFilesystem,
    ...(sc.runAsUser !== undefined ? { runAsUser: { value: sc.runAsUser } } : {}),
    ...(sc.runAsGroup !== undefined ? { runAsGroup: { value: sc.runAsGroup } } : {}),
  };
}
