// CPU and memory of this host's containers from CRI stats, sampled periodically: per-container
// gauges (by namespace and name) and the host's total, which the Host status reports.
import type { ContainerUsage } from '../api/v1alpha1/index.js';
import { realClock, sleep } from '../kube/clock.js';
import type { Logger } from '../obs/logger.js';
import type { CriClient } from '../cri/client.js';
import { containerCpuUsage, containerMemoryWorkingSet } from './metrics.js';
import { labels, managedByValue } from './runtimespec.js';

export class StatsCollector {
  private latest: ContainerUsage[] = [];
  /** When the last sample was read; undefined before the first. */
  sampledAt: Date | undefined;

  constructor(
    private readonly cri: CriClient,
    private readonly log: Logger,
  ) {}

  /** The last sample, or undefined before the runtime has answered with rates. */
  usage(): ContainerUsage[] | undefined {
    return this.sampledAt ? this.latest : undefined;
  }

  cpuUsageCores(): number | undefined {
    return this.sampledAt ? this.latest.reduce((sum, u) => sum + u.cpuCores, 0) : undefined;
  }

  /** CPU per Workload (containers carrying its label), for Host.status.workloadUsage. */
  workloadUsage():
    { namespace: string; workload: string; containers: number; cpuCores: number }[] | undefined {
    if (!this.sampledAt) return undefined;
    const byWorkload = new Map<
      string,
      { namespace: string; workload: string; containers: number; cpuCores: number }
    >();
    for (const u of this.latest) {
      if (!u.workload) continue;
      const key = `${u.namespace}/${u.workload}`;
      const w = byWorkload.get(key) ?? {
        namespace: u.namespace,
        workload: u.workload,
        containers: 0,
        cpuCores: 0,
      };
      w.containers++;
      w.cpuCores += u.cpuCores;
      byWorkload.set(key, w);
    }
    // Rounded to 0.01 core: finer jitter would rewrite the Host status at every sample.
    for (const w of byWorkload.values()) w.cpuCores = Math.round(w.cpuCores * 100) / 100;
    return [...byWorkload.values()].sort((a, b) =>
      `${a.namespace}/${a.workload}`.localeCompare(`${b.namespace}/${b.workload}`),
    );
  }

  async sample(): Promise<void> {
    const { stats } = await this.cri.listContainerStats({
      filter: { labelSelector: { [labels.managedBy]: managedByValue } },
    });
    const next: ContainerUsage[] = [];
    for (const s of stats) {
      const l = s.attributes?.labels ?? {};
      const namespace = l[labels.namespace];
      const name = l[labels.name];
      if (!namespace || !name) continue;
      next.push({
        namespace,
        name,
        workload: l[labels.workload],
        // The runtime computes the rate between its samples; absent on the very first one.
        cpuCores: Number(s.cpu?.usageNanoCores?.value ?? 0n) / 1e9,
        memoryBytes: Number(s.memory?.workingSetBytes?.value ?? 0n),
      });
    }
    const gone = this.latest.filter(
      (o) => !next.some((n) => n.namespace === o.namespace && n.name === o.name),
    );
    for (const g of gone) {
      containerCpuUsage.remove({ namespace: g.namespace, name: g.name });
      containerMemoryWorkingSet.remove({ namespace: g.namespace, name: g.name });
    }
    for (const u of next) {
      containerCpuUsage.set({ namespace: u.namespace, name: u.name }, u.cpuCores);
      containerMemoryWorkingSet.set({ namespace: u.namespace, name: u.name }, u.memoryBytes);
    }
    this.latest = next;
    this.sampledAt = new Date();
  }

  async run(signal: AbortSignal, intervalMs: number): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.sample();
      } catch (e) {
        this.log.warn('Sampling container stats failed', { err: e });
      }
      await sleep(realClock, intervalMs, signal);
    }
  }
}
