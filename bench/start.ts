// npm run bench:start — how long from `create Container` to Running, through Gantry, next to the
// floor: the same image started by raw CRI calls (pull, sandbox, create, start) on the same hosts.
// Needs the local cluster (npm run cluster:up) with no Gantry agent running; starts and stops its
// own, so it leaves the cluster as it found it (it refuses, saying how to stop them, otherwise).
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import type { Container } from '../src/api/v1alpha1/index.js';
import { CriClient, type PodSandboxConfig } from '../src/cri/client.js';
import { KubeClient, loadKubeConfig } from '../src/kube/client.js';
import { resourceClient } from '../src/kube/resources.js';
import { Informer, restListWatcher } from '../src/kube/informer.js';
import { apiserverWrites, printWritesPer, type WriteCounts } from './support/apiserver-writes.js';
import {
  installCrds,
  isGantryCommand,
  refuseBesideInstalledGantry,
  startAgent,
  stopAgent,
} from '../src/localcluster/gantry.js';
import { runningDaemon, waitFor } from '../src/localcluster/proc.js';
import { isNotFound } from '../src/kube/errors.js';
import { localDir, readLocalCluster } from '../src/localcluster/state.js';
import { createLogger } from '../src/obs/logger.js';

const count = Number(process.env.BENCH_CONTAINERS ?? 50);
const cluster = readLocalCluster();
if (!cluster) throw new Error('the local cluster is not up: npm run cluster:up');
const image = cluster.images.web;
const hosts = cluster.hosts.slice(0, 2);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function summary(ms: number[]): { p50: number; p95: number; p99: number; max: number } {
  const s = [...ms].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p95: percentile(s, 95), p99: percentile(s, 99), max: s.at(-1)! };
}

const fmt = (ms: number) => `${(ms / 1000).toFixed(3)} s`;

/** Through Gantry: create `count` Containers (pinned alternately to the hosts), wait for Running. */
async function throughGantry(): Promise<{ ms: number[]; writes: () => void }> {
  const client = new KubeClient(loadKubeConfig(cluster!.kubeconfig));
  const ns = `bench-start-${process.pid}`;
  await client.api(CoreV1Api).createNamespace({ body: { metadata: { name: ns } } });
  const api = resourceClient(client, 'Container');
  const created = new Map<string, number>();
  const running = new Map<string, number>();
  let allRunning!: () => void;
  const done = new Promise<void>((r) => (allRunning = r));
  const informer = new Informer<Container>({
    name: 'bench',
    listWatcher: restListWatcher(client, { path: api.collectionPath(ns) }),
    log: createLogger({ level: 'error' }),
  });
  const see = (c: Container) => {
    const name = c.metadata.name!;
    if (c.status?.phase === 'Running' && !running.has(name)) {
      running.set(name, performance.now());
      if (running.size === count) allRunning();
    }
  };
  informer.addEventHandler({ onAdd: see, onUpdate: (_, c) => see(c) });
  informer.start();
  await informer.waitForSync();
  const before = await apiserverWrites(client);
  let after: WriteCounts;
  try {
    await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const name = `c${i}`;
        created.set(name, performance.now());
        await api.create({
          apiVersion: 'gantry.dev/v1alpha1',
          kind: 'Container',
          metadata: { name, namespace: ns },
          spec: { image, nodeName: hosts[i % hosts.length]!.name, imagePullPolicy: 'IfNotPresent' },
        });
      }),
    );
    await done;
    after = await apiserverWrites(client);
  } finally {
    await informer.stop();
    // Containers go with the namespace, the agents (still running) removing their runtime objects:
    // gone before the floor is measured, and before another run's writes are counted.
    const core = client.api(CoreV1Api);
    await core.deleteNamespace({ name: ns });
    await waitFor(
      `namespace ${ns} to go`,
      () =>
        core.readNamespace({ name: ns }).then(
          () => false,
          (err: unknown) => isNotFound(err),
        ),
      { timeoutMs: 300_000, intervalMs: 500 },
    );
  }
  return {
    ms: [...running].map(([name, t]) => t - created.get(name)!),
    writes: () => printWritesPer('writes (create to Running, bare Containers)', count, before, after),
  };
}

/** The floor: the same sequence of CRI calls the agent makes, issued directly, all at once. */
async function rawCri(): Promise<number[]> {
  const clients = hosts.map((h) => new CriClient(h.criSocket));
  const sandboxes: { cri: CriClient; id: string }[] = [];
  try {
    return await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const cri = clients[i % clients.length]!;
        const t0 = performance.now();
        const { imageRef } = await cri.pullImage({ image: { image } });
        const uid = crypto.randomUUID();
        const config: PodSandboxConfig = {
          metadata: { name: `raw-${i}`, uid, namespace: 'bench-raw' },
          logDirectory: `/tmp/gantry-bench-raw/${uid}`,
          labels: { 'gantry.bench/raw': 'true' },
        };
        const { podSandboxId } = await cri.runPodSandbox({ config });
        sandboxes.push({ cri, id: podSandboxId });
        const { containerId } = await cri.createContainer({
          podSandboxId,
          sandboxConfig: config,
          config: {
            metadata: { name: 'c' },
            image: { image: imageRef },
            logPath: 'c.log',
            linux: { securityContext: { namespaceOptions: { pid: 'CONTAINER' } } },
          },
        });
        await cri.startContainer({ containerId });
        return performance.now() - t0;
      }),
    );
  } finally {
    for (const s of sandboxes) {
      await s.cri.stopPodSandbox({ podSandboxId: s.id });
      await s.cri.removePodSandbox({ podSandboxId: s.id });
    }
    for (const c of clients) c.close();
  }
}

/**
 * Agents already running (npm start -- --no-kubelet, the tests, or the chart) would be taken over
 * and left stopped at the end, or compete with the benchmark's own: refuse, saying how to stop them.
 */
async function refuseWhileAgentsRun(): Promise<void> {
  const running = hosts.flatMap((h) => {
    const daemon = runningDaemon(path.join(localDir, 'pids', `agent-${h.name}.pid`));
    return daemon?.command && isGantryCommand(daemon.command, 'agent')
      ? [{ host: h.name, pid: daemon.pid }]
      : [];
  });
  if (running.length > 0) {
    throw new Error(
      `Gantry's agents run here as processes (${running.map((a) => `${a.host}: pid ${a.pid}`).join(', ')}), ` +
        'started by the tests or by npm start -- --no-kubelet. bench:start runs its own and stops them ' +
        `at the end, which would leave the hosts without agents. Stop these first: kill ${running.map((a) => a.pid).join(' ')}`,
    );
  }
  await refuseBesideInstalledGantry(cluster!);
}

async function main(): Promise<void> {
  await refuseWhileAgentsRun();
  await installCrds(cluster!);
  // Warm: both paths find the image on the hosts, so the comparison is of the start path.
  for (const h of hosts) {
    const cri = new CriClient(h.criSocket);
    await cri.pullImage({ image: { image } });
    cri.close();
  }
  await Promise.all(hosts.map((h) => startAgent(cluster!, h.name)));
  let gantry: Awaited<ReturnType<typeof throughGantry>>;
  try {
    gantry = await throughGantry();
  } finally {
    await Promise.all(hosts.map((h) => stopAgent(h.name)));
  }
  const raw = await rawCri();
  const g = summary(gantry.ms);
  const r = summary(raw);
  console.log(`bench:start — ${count} containers of ${image}, created at once, ${hosts.length} hosts`);
  console.log(
    `conditions: ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, containerd ${cluster!.runtime.version}, image present on the hosts, agents and apiserver on the same machine`,
  );
  console.log('                         p50        p95        p99        max');
  const row = (label: string, s: ReturnType<typeof summary>) =>
    console.log(
      `${label.padEnd(24)} ${fmt(s.p50).padEnd(10)} ${fmt(s.p95).padEnd(10)} ${fmt(s.p99).padEnd(10)} ${fmt(s.max)}`,
    );
  row('Gantry (create→Running)', g);
  row('raw CRI (floor)', r);
  row('overhead', { p50: g.p50 - r.p50, p95: g.p95 - r.p95, p99: g.p99 - r.p99, max: g.max - r.max });
  gantry.writes();
}

await main();
