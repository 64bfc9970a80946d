// The scheduler's decision as pure functions, after kube-scheduler's two phases:
//  - filter: a Host is feasible when it is Ready with a fresh heartbeat, not cordoned (or draining),
//    not the source of the migration the Container is the target of (and, for a checkpoint
//    migration, able to restore), matches the node selector, stays under the Workload's maxPerHost,
//    has none of the Container's hostPorts in use (by a Container bound or assumed there), and has
//    room for the requests (requests of the Containers bound or assumed there, plus this one,
//    within allocatable);
//  - score the feasible Hosts: image already present (weight 3), spread of the same Workload
//    (weight 2), least allocated (weight 1); the highest total wins, ties go to the first name.
// Spread is also a rule: a Host where one more replica would put it more than maxSkew above the
// least-loaded feasible Host is skipped (the least-loaded one always qualifies, so something fits).
// When nothing is feasible the answer says why, per Host, like the Kubernetes scheduler:
// "0/3 hosts are available: 1 host is cordoned, 2 hosts have the host port 8080/TCP in use."
import {
  isImageReference,
  normalizeImageReference,
  parseImageReference,
  quantityNanos,
  scheduledCondition,
  type Container,
  type ContainerSpec,
  type Quantity,
} from '../api/v1alpha1/index.js';
import { setCondition } from '../kube/conditions.js';

export interface Amounts {
  cpuMilli: number;
  memoryBytes: number;
}

/** A port published on a Host: hostPort, protocol and the address (unset: the Host's own). */
export interface HostPort {
  hostPort: number;
  protocol: 'TCP' | 'UDP';
  hostIP?: string;
}

/** What the scheduler knows of one Host. */
export interface HostInfo {
  name: string;
  labels: Record<string, string>;
  /** The Ready condition is True. */
  ready: boolean;
  /** The heartbeat Lease was renewed within the grace period. */
  heartbeatFresh: boolean;
  /** spec.unschedulable, or the Schedulable condition is False (Host or Node cordoned). */
  cordoned: boolean;
  /** Unset dimensions are not limited. */
  allocatable: Partial<Amounts>;
  /** Requests of the Containers bound or assumed here: what must fit. */
  requested: Amounts;
  /** The same with kube-scheduler's non-zero defaults for Containers without requests: what scores. */
  scoringRequested: Amounts;
  /** Ports published by the Containers bound or assumed here. */
  hostPorts: readonly HostPort[];
  /** Image keys present (see imageKeys). */
  images: ReadonlySet<string>;
  /** Its probe says checkpoint/restore works there. */
  checkpoint: boolean;
}

/** One Container to place. */
export interface ContainerRequest {
  nodeSelector?: Record<string, string>;
  requests: Amounts;
  /** Ports it publishes on its Host. */
  hostPorts?: readonly HostPort[];
  /** The image's keys; the Host has the image when it holds any of them. */
  imageKeys: readonly string[];
  /** For a Workload's Container: its placement and where its replicas are (bound or assumed). */
  spread?: { maxSkew: number; maxPerHost?: number; replicas: ReadonlyMap<string, number> };
  /** A migration's target: not on the source Host, and (checkpoint mode) only where a restore works. */
  migration?: { avoidHost: string; needsCheckpoint: boolean };
}

export type FilterReason =
  | 'NotReady'
  | 'HeartbeatLost'
  | 'Cordoned'
  | 'MigrationSource'
  | 'NoCheckpoint'
  | 'NodeSelectorMismatch'
  | 'MaxPerHost'
  | 'HostPortInUse'
  | 'InsufficientCPU'
  | 'InsufficientMemory';

const reasonText: Record<FilterReason, [one: string, many: string]> = {
  NotReady: ['host is not ready', 'hosts are not ready'],
  HeartbeatLost: ['host stopped sending heartbeats', 'hosts stopped sending heartbeats'],
  Cordoned: ['host is cordoned', 'hosts are cordoned'],
  MigrationSource: ['host is the one the container moves from', 'hosts are the one the container moves from'],
  NoCheckpoint: ['host cannot restore checkpoints', 'hosts cannot restore checkpoints'],
  NodeSelectorMismatch: ["host didn't match the node selector", "hosts didn't match the node selector"],
  MaxPerHost: ['host already runs maxPerHost replicas', 'hosts already run maxPerHost replicas'],
  // {ports} is the Container's ports that are taken: "host port 8080/TCP".
  HostPortInUse: ['host has the {ports} in use', 'hosts have the {ports} in use'],
  InsufficientCPU: ['insufficient cpu', 'insufficient cpu'],
  InsufficientMemory: ['insufficient memory', 'insufficient memory'],
};

export type ScheduleResult =
  | { host: string; feasible: number }
  | { host: undefined; reasons: Partial<Record<FilterReason, number>>; message: string };

/** kube-scheduler's defaults for a container without requests, used for scoring only. */
export const nonZeroDefaults: Amounts = { cpuMilli: 100, memoryBytes: 200 * 1024 * 1024 };

const weights = { image: 3, spread: 2, leastAllocated: 1 };

/** The unspecified addresses stand for every address of the Host, as an unset hostIP does. */
const everyAddress = (ip: string | undefined) => ip === undefined || ip === '0.0.0.0' || ip === '::';

/** Two published ports take the same socket: same port and protocol, overlapping addresses (kube-scheduler's NodePorts). */
export function portsCollide(a: HostPort, b: HostPort): boolean {
  return (
    a.hostPort === b.hostPort &&
    a.protocol === b.protocol &&
    (everyAddress(a.hostIP) || everyAddress(b.hostIP) || a.hostIP === b.hostIP)
  );
}

/** Those of `wanted` that collide with a port in `used`. */
export function portsInUse(wanted: readonly HostPort[], used: readonly HostPort[]): HostPort[] {
  return wanted.filter((w) => used.some((u) => portsCollide(w, u)));
}

/** The ports a Container's spec publishes on its Host. */
export function hostPorts(spec: Pick<ContainerSpec, 'ports'> | undefined): HostPort[] {
  return (spec?.ports ?? []).flatMap((p) =>
    p.hostPort === undefined
      ? []
      : [{ hostPort: p.hostPort, protocol: p.protocol, ...(p.hostIP ? { hostIP: p.hostIP } : {}) }],
  );
}

/** "host port 8080/TCP", "host ports 8080/TCP, 53/UDP" (with an address when one is named). */
export function describePorts(ports: readonly HostPort[]): string {
  const names = [
    ...new Set(
      ports.map(
        (p) => `${p.hostIP && !everyAddress(p.hostIP) ? `${p.hostIP}:` : ''}${p.hostPort}/${p.protocol}`,
      ),
    ),
  ];
  return `host port${names.length === 1 ? '' : 's'} ${names.join(', ')}`;
}

/** Why `host` cannot take the Container (the first failing check; both resources when both short). */
export function filterHost(request: ContainerRequest, host: HostInfo): FilterReason[] {
  if (!host.heartbeatFresh) return ['HeartbeatLost'];
  if (!host.ready) return ['NotReady'];
  if (host.cordoned) return ['Cordoned'];
  if (request.migration?.avoidHost === host.name) return ['MigrationSource'];
  if (request.migration?.needsCheckpoint && !host.checkpoint) return ['NoCheckpoint'];
  const selector = request.nodeSelector ?? {};
  if (!Object.entries(selector).every(([k, v]) => host.labels[k] === v)) return ['NodeSelectorMismatch'];
  const { maxPerHost, replicas } = request.spread ?? {};
  if (maxPerHost !== undefined && (replicas?.get(host.name) ?? 0) >= maxPerHost) return ['MaxPerHost'];
  if (portsInUse(request.hostPorts ?? [], host.hostPorts).length > 0) return ['HostPortInUse'];
  const short: FilterReason[] = [];
  const { cpuMilli, memoryBytes } = host.allocatable;
  if (cpuMilli !== undefined && host.requested.cpuMilli + request.requests.cpuMilli > cpuMilli)
    short.push('InsufficientCPU');
  if (memoryBytes !== undefined && host.requested.memoryBytes + request.requests.memoryBytes > memoryBytes)
    short.push('InsufficientMemory');
  return short;
}

/** Picks the Host for one Container, or explains why none fits. */
export function schedule(request: ContainerRequest, hosts: readonly HostInfo[]): ScheduleResult {
  const reasons: Partial<Record<FilterReason, number>> = {};
  let feasible: HostInfo[] = [];
  for (const host of hosts) {
    const failed = filterHost(request, host);
    for (const r of failed) reasons[r] = (reasons[r] ?? 0) + 1;
    if (failed.length === 0) feasible.push(host);
  }
  if (feasible.length === 0) {
    const taken = hosts.flatMap((h) => portsInUse(request.hostPorts ?? [], h.hostPorts));
    return { host: undefined, reasons, message: explain(hosts.length, reasons, taken) };
  }
  const count = (h: HostInfo) => request.spread?.replicas.get(h.name) ?? 0;
  if (request.spread) {
    const least = Math.min(...feasible.map(count));
    const maxSkew = request.spread.maxSkew;
    feasible = feasible.filter((h) => count(h) + 1 - least <= maxSkew);
  }
  const counts = feasible.map(count);
  const most = Math.max(...counts);
  const fewest = Math.min(...counts);
  let best: { host: HostInfo; score: number } | undefined;
  for (const host of feasible) {
    const image = request.imageKeys.some((k) => host.images.has(k)) ? 100 : 0;
    const spread = most === fewest ? 100 : (100 * (most - count(host))) / (most - fewest);
    const score =
      weights.image * image +
      weights.spread * spread +
      weights.leastAllocated * leastAllocated(host, request.requests);
    if (!best || score > best.score || (score === best.score && host.name < best.host.name)) {
      best = { host, score };
    }
  }
  return { host: best!.host.name, feasible: feasible.length };
}

/** kube-scheduler's LeastAllocated: mean free share of cpu and memory after placing, 0-100. */
function leastAllocated(host: HostInfo, requests: Amounts): number {
  const shares: number[] = [];
  const { cpuMilli, memoryBytes } = host.allocatable;
  const cpu = requests.cpuMilli || nonZeroDefaults.cpuMilli;
  const memory = requests.memoryBytes || nonZeroDefaults.memoryBytes;
  if (cpuMilli) shares.push(Math.max(0, cpuMilli - host.scoringRequested.cpuMilli - cpu) / cpuMilli);
  if (memoryBytes)
    shares.push(Math.max(0, memoryBytes - host.scoringRequested.memoryBytes - memory) / memoryBytes);
  return shares.length === 0 ? 0 : (100 * shares.reduce((a, b) => a + b, 0)) / shares.length;
}

/**
 * "0/3 hosts are available: 1 host is cordoned, 2 insufficient cpu." (reasons sorted, as
 * kube-scheduler does); `taken` are the Container's ports some Host has in use.
 */
export function explain(
  total: number,
  reasons: Partial<Record<FilterReason, number>>,
  taken: readonly HostPort[] = [],
): string {
  const parts = (Object.entries(reasons) as [FilterReason, number][])
    .map(
      ([reason, n]) => `${n} ${reasonText[reason][n === 1 ? 0 : 1].replace('{ports}', describePorts(taken))}`,
    )
    .sort();
  if (total === 0) return '0/0 hosts are available: no Host is registered.';
  return `0/${total} ${total === 1 ? 'host is' : 'hosts are'} available: ${parts.join(', ')}.`;
}

/** CPU in millicores and memory in bytes, rounded up; unset counts as 0. Quantities must be valid. */
export function amounts(resources: { cpu?: Quantity; memory?: Quantity } | undefined): Amounts {
  const nanos = (q: Quantity | undefined): bigint => (q === undefined ? 0n : quantityNanos(q));
  return {
    cpuMilli: Number((nanos(resources?.cpu) + 999_999n) / 1_000_000n),
    memoryBytes: Number((nanos(resources?.memory) + 999_999_999n) / 1_000_000_000n),
  };
}

/** A Host's allocatable, with unset dimensions left out: they do not limit. */
export function allocatableAmounts(
  allocatable: { cpu?: Quantity; memory?: Quantity } | undefined,
): Partial<Amounts> {
  const out: Partial<Amounts> = {};
  const known = amounts(allocatable);
  if (allocatable?.cpu !== undefined) out.cpuMilli = known.cpuMilli;
  if (allocatable?.memory !== undefined) out.memoryBytes = known.memoryBytes;
  return out;
}

/**
 * The keys under which a Host holds a Container's image: its digest when the reference pins one (or
 * an Image object resolved the tag), otherwise its normalized name.
 */
export function imageKeys(image: string, resolvedDigest?: string): string[] {
  const digest = parseImageReference(image).digest ?? resolvedDigest;
  return digest ? [digest] : [normalizeImageReference(image)];
}

/** Every key of the images a Host reports: digests, normalized names, and digests inside repo@digest names. */
export function hostImageKeys(
  images: readonly { digest: string; names?: string[] }[] | undefined,
): Set<string> {
  const keys = new Set<string>();
  for (const image of images ?? []) {
    keys.add(image.digest);
    for (const name of image.names ?? []) {
      if (!isImageReference(name)) continue;
      const ref = parseImageReference(name);
      if (ref.digest) keys.add(ref.digest);
      else keys.add(normalizeImageReference(name));
    }
  }
  return keys;
}

/**
 * The controller's status of a bound Container: Scheduled=True. The host-lifecycle controller writes
 * more on a lost Host, starting from this, since both write as the same field manager.
 */
export function scheduledStatus(c: Container): NonNullable<Container['status']> {
  const scheduled = setCondition(
    c.status?.conditions,
    scheduledCondition(c.spec.nodeName, c.metadata.generation),
  ).find((cond) => cond.type === 'Scheduled')!;
  return { conditions: [scheduled] };
}
