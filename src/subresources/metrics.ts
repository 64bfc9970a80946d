// containermetrics (`kubectl gantry top`): every agent's last sample of its containers' CPU and
// memory, asked of all Hosts at once and narrowed to a namespace. A Host whose agent does not
// answer is named in the list instead of failing it: the others' figures are still true.
import type http from 'node:http';
import {
  type ContainerMetrics,
  type ContainerMetricsList,
  cpuQuantity,
  type Host,
  type HostUsage,
  memoryQuantity,
  streamEndpointAnnotation,
  subresourcesGroup,
} from '../api/v1alpha1/index.js';
import type { TlsIdentity } from '../kube/streamtls.js';
import { agentGet } from './agents.js';

async function readJson<T>(res: http.IncomingMessage): Promise<T> {
  let body = '';
  for await (const chunk of res) body += String(chunk);
  if (res.statusCode !== 200) {
    let message = body;
    try {
      message = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      // not a Status: the body itself says it
    }
    throw new Error(`answered ${res.statusCode}: ${message}`);
  }
  return JSON.parse(body) as T;
}

/** One agent's sample as ContainerMetrics, the namespace's only (every namespace's when unset). */
export function toMetrics(host: string, usage: HostUsage, namespace?: string): ContainerMetrics[] {
  // A restarted container's earlier runs are in the sample too, using nothing: one item each.
  const byName = new Map<string, { namespace: string; name: string; cpu: number; memory: number }>();
  for (const u of usage.containers) {
    if (namespace !== undefined && u.namespace !== namespace) continue;
    const key = `${u.namespace}/${u.name}`;
    const sum = byName.get(key) ?? { namespace: u.namespace, name: u.name, cpu: 0, memory: 0 };
    sum.cpu += u.cpuCores;
    sum.memory += u.memoryBytes;
    byName.set(key, sum);
  }
  return [...byName.values()].map((s) => ({
    metadata: { name: s.name, namespace: s.namespace },
    host,
    timestamp: usage.sampledAt,
    usage: { cpu: cpuQuantity(s.cpu), memory: memoryQuantity(s.memory) },
  }));
}

export async function containerMetrics(
  hosts: Host[],
  identity: TlsIdentity,
  namespace: string | undefined,
  signal: AbortSignal,
): Promise<ContainerMetricsList> {
  const items: ContainerMetrics[] = [];
  const unavailableHosts: { host: string; reason: string }[] = [];
  await Promise.all(
    hosts.map(async (h) => {
      const host = h.metadata.name!;
      const endpoint = h.metadata.annotations?.[streamEndpointAnnotation];
      try {
        if (!endpoint)
          throw new Error(`its agent has not published its endpoint (${streamEndpointAnnotation})`);
        const res = await agentGet(new URL(endpoint), identity, '/v1/stats', { signal, timeoutMs: 5_000 });
        items.push(...toMetrics(host, await readJson<HostUsage>(res), namespace));
      } catch (e) {
        unavailableHosts.push({ host, reason: (e as Error).message });
      }
    }),
  );
  items.sort(
    (a, b) =>
      a.metadata.namespace.localeCompare(b.metadata.namespace) ||
      a.metadata.name.localeCompare(b.metadata.name),
  );
  unavailableHosts.sort((a, b) => a.host.localeCompare(b.host));
  return {
    kind: 'ContainerMetricsList',
    apiVersion: `${subresourcesGroup}/v1alpha1`,
    metadata: {},
    items,
    ...(unavailableHosts.length ? { unavailableHosts } : {}),
  };
}
