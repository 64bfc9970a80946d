// What `kubectl gantry top` reads: the aggregated API's containermetrics (subresources.gantry.dev),
// shaped as metrics.k8s.io's PodMetrics (usage as quantities, the sample's time), and the sample
// each agent gives the aggregated server for it.

/** One container's usage in an agent's last sample of CRI stats. */
export interface ContainerUsage {
  namespace: string;
  name: string;
  /** Label gantry.dev/workload of the Container, if any. */
  workload?: string;
  cpuCores: number;
  memoryBytes: number;
}

/** An agent's answer to GET /v1/stats. */
export interface HostUsage {
  sampledAt?: string;
  containers: ContainerUsage[];
}

export interface ContainerMetrics {
  metadata: { name: string; namespace: string };
  /** The Host that runs it. */
  host: string;
  /** When the agent sampled the runtime. */
  timestamp?: string;
  usage: { cpu: string; memory: string };
}

export interface ContainerMetricsList {
  kind: 'ContainerMetricsList';
  apiVersion: string;
  metadata: Record<string, never>;
  items: ContainerMetrics[];
  /** Hosts whose agents did not answer: their containers are missing from items. */
  unavailableHosts?: { host: string; reason: string }[];
}

/** CPU as kubectl top prints it: whole millicores ("12m"). */
export function cpuQuantity(cores: number): string {
  return `${Math.round(cores * 1000)}m`;
}

/** Memory as kubectl top prints it: whole mebibytes ("34Mi"). */
export function memoryQuantity(bytes: number): string {
  return `${Math.round(bytes / 2 ** 20)}Mi`;
}
