// npm run bench:start — how long from `create Container` to Running, through Gantry, next to the
// floor: the same image started by raw CRI calls (pull, sandbox, create, start) on the same hosts.
// Two shapes: one Container at a time (BENCH_SINGLE starts in a row), and bursts of
// BENCH_CONTAINERS created at once (BENCH_ROUNDS bursts, pooled, so p99 is not just the maximum).
// Each start is traced with the runtime's own timestamps (sandbox created, container created and
// started), which says where the time goes; the run also counts the apiserver's writes.
// Needs the local cluster (npm run cluster:up) with no Gantry agent running; starts and stops its
// own, so it leaves the cluster as it found it (it refuses, saying how to stop them, otherwise).
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { labels } from '../src/agent/runtimespec.js';
import type { Container } from '../src/api/v1alpha1/index.js';
import { CriClient, type PodSandboxConfig } from '../src/cri/client.js';
import { KubeClient, loadKubeConfig } from '../src/kube/client.js';
import { Informer, restListWatcher } from '../src/kube/informer.js';
import { resourceClient } from '../src/kube/resources.js';
import {
  installCrds,
  isGantryCommand,
  refuseBesideInstalledGantry,
  startAgent,
  stopAgent,
} from '../src/localcluster/gantry.js';
import { runningDaemon } from '../src/localcluster/proc.js';
import { localDir, readLocalCluster } from '../src/localcluster/state.js';
import { createLogger } from '../src/obs/logger.js';
import { apiserverWrites, printWritesPer } from './support/apiserver-writes.js';
import { deleteNamespace } from './support/namespaces.js';

const burst = Number(process.env.BENCH_CONTAINERS ?? 50);
const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
const singles = Number(process.env.BENCH_SINGLE ?? 10);
const cluster = readLocalCluster();
if (!cluster) throw new Error('the local cluster is not up: npm run cluster:up');
const image = cluster.images.web;
const hosts = cluster.hosts.slice(0, 2);

/** Wall-clock milliseconds, comparable with the runtime's timestamps (same machine). */
const now = () => performance.timeOrigin + performance.now();

/** One start, in wall-clock ms: when it was asked for, the runtime's records, when it was done. */
interface Start {
  asked: number;
  sandboxCreated: number;
  containerCreated: number;
  containerStarted: number;
  /** Gantry: the client saw phase Running; raw: StartContainer returned. */
  done: number;
}

const steps: [string, (s: Start) => number][] = [
  ['asked -> sandbox created', (s) => s.sandboxCreated - s.asked],
  ['sandbox -> container created', (s) => s.containerCreated - s.sandboxCreated],
  ['container created -> started', (s) => s.containerStarted - s.containerCreated],
  ['started -> Running seen / returned', (s) => s.done - s.containerStarted],
  ['total', (s) => s.done - s.asked],
];

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function summary(ms: number[]): { p50: number; p95: number; p99: number; max: number } {
  const s = [...ms].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p95: percentile(s, 95), p99: percentile(s, 99), max: s.at(-1)! };
}

const fmt = (ms: number) => `${(ms / 1000).toFixed(3)} s`;
const nsToMs = (ns: bigint) => Number(ns / 1000n) / 1000;

/** The runtime's record of the sandbox and container labelled with a Container's UID. */
async function runtimeRecord(cri: CriClient, uid: string): Promise<Omit<Start, 'asked' | 'done'>> {
  const filter = { labelSelector: { [labels.uid]: uid } };
  const [{ items }, { containers }] = await Promise.all([
    cri.listPodSandbox({ filter }),
    cri.listContainers({ filter }),
  ]);
  const { status } = await cri.containerStatus({ containerId: containers[0]!.id });
  return {
    sandboxCreated: nsToMs(items[0]!.createdAt),
    containerCreated: nsToMs(status!.createdAt),
    containerStarted: nsToMs(status!.startedAt),
  };
}

/** Through Gantry: each batch of Containers (pinned alternately to the hosts) created at once. */
async function throughGantry(batches: number[]): Promise<{ starts: Start[][]; writes: () => void }> {
  const client = new KubeClient(loadKubeConfig(cluster!.kubeconfig));
  const core = client.api(CoreV1Api);
  const ns = `bench-start-${process.pid}`;
  await core.createNamespace({ body: { metadata: { name: ns } } });
  const api = resourceClient(client, 'Container');
  const clients = hosts.map((h) => new CriClient(h.criSocket));
  const running = new Map<string, { at: number; uid: string }>();
  let waiting: { names: Set<string>; resolve: () => void } | undefined;
  const informer = new Informer<Container>({
    name: 'bench',
    listWatcher: restListWatcher(client, { path: api.collectionPath(ns) }),
    log: createLogger({ level: 'error' }),
  });
  const see = (c: Container) => {
    const name = c.metadata.name!;
    if (c.status?.phase !== 'Running' || running.has(name)) return;
    running.set(name, { at: now(), uid: c.metadata.uid! });
    if (waiting && [...waiting.names].every((n) => running.has(n))) waiting.resolve();
  };
  informer.addEventHandler({ onAdd: see, onUpdate: (_, c) => see(c) });
  informer.start();
  await informer.waitForSync();
  const starts: Start[][] = [];
  let writes = () => {};
  let next = 0;
  try {
    for (const size of batches) {
      const names = Array.from({ length: size }, () => `c${next++}`);
      const done = new Promise<void>((resolve) => (waiting = { names: new Set(names), resolve }));
      const before = await apiserverWrites(client);
      const asked = new Map<string, number>();
      await Promise.all(
        names.map(async (name, i) => {
          asked.set(name, now());
          await api.create({
            apiVersion: 'gantry.dev/v1alpha1',
            kind: 'Container',
            metadata: { name, namespace: ns },
            spec: { image, nodeName: hosts[i % hosts.length]!.name, imagePullPolicy: 'IfNotPresent' },
          });
        }),
      );
      await done;
      const after = await apiserverWrites(client);
      // The last burst's writes are the figure printed (the largest sample).
      if (size === Math.max(...batches))
        writes = () => printWritesPer(`writes (${size} bare Containers at once)`, size, before, after);
      starts.push(
        await Promise.all(
          names.map(async (name, i) => {
            const { at, uid } = running.get(name)!;
            const record = await runtimeRecord(clients[i % clients.length]!, uid);
            return { asked: asked.get(name)!, ...record, done: at };
          }),
        ),
      );
    }
  } finally {
    await informer.stop();
    for (const c of clients) c.close();
    // Containers go with the namespace, the agents (still running) removing their runtime objects:
    // gone before the floor is measured, and before another run's writes are counted.
    await deleteNamespace(core, ns);
  }
  return { starts, writes };
}

/** The floor: the same sequence of CRI calls the agent makes, issued directly, a batch at once. */
async function rawCri(batches: number[]): Promise<Start[][]> {
  const clients = hosts.map((h) => new CriClient(h.criSocket));
  const sandboxes: { cri: CriClient; id: string }[] = [];
  const starts: Start[][] = [];
  let next = 0;
  try {
    for (const size of batches) {
      const batch = Array.from({ length: size }, () => next++);
      starts.push(
        await Promise.all(
          batch.map(async (i) => {
            const cri = clients[i % clients.length]!;
            const asked = now();
            const { imageRef } = await cri.pullImage({ image: { image } });
            const uid = crypto.randomUUID();
            const config: PodSandboxConfig = {
              metadata: { name: `raw-${i}`, uid, namespace: 'bench-raw' },
              logDirectory: `/tmp/gantry-bench-raw/${uid}`,
              labels: { 'gantry.bench/raw': 'true', [labels.uid]: uid },
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
                labels: { [labels.uid]: uid },
                linux: { securityContext: { namespaceOptions: { pid: 'CONTAINER' } } },
              },
            });
            await cri.startContainer({ containerId });
            const done = now();
            return { asked, ...(await runtimeRecord(cri, uid)), done };
          }),
        ),
      );
    }
  } finally {
    for (const s of sandboxes) {
      await s.cri.stopPodSandbox({ podSandboxId: s.id });
      await s.cri.removePodSandbox({ podSandboxId: s.id });
    }
    for (const c of clients) c.close();
  }
  return starts;
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

function printTable(title: string, gantry: Start[], raw: Start[]): void {
  console.log(`\n${title}: ${gantry.length} starts each`);
  console.log(`${''.padEnd(36)} p50        p95        p99        max`);
  const row = (label: string, s: ReturnType<typeof summary>) =>
    console.log(
      `${label.padEnd(36)} ${fmt(s.p50).padEnd(10)} ${fmt(s.p95).padEnd(10)} ${fmt(s.p99).padEnd(10)} ${fmt(s.max)}`,
    );
  const total = steps.at(-1)![1];
  const g = summary(gantry.map(total));
  const r = summary(raw.map(total));
  row('Gantry (create -> Running)', g);
  row('raw CRI (floor)', r);
  row('overhead', { p50: g.p50 - r.p50, p95: g.p95 - r.p95, p99: g.p99 - r.p99, max: g.max - r.max });
  console.log(`where the time goes (p50 of each step)    Gantry     raw CRI`);
  for (const [label, of] of steps)
    console.log(
      `  ${label.padEnd(39)} ${fmt(summary(gantry.map(of)).p50).padEnd(10)} ${fmt(summary(raw.map(of)).p50)}`,
    );
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
  const batches = [...Array<number>(singles).fill(1), ...Array<number>(rounds).fill(burst)];
  await Promise.all(hosts.map((h) => startAgent(cluster!, h.name)));
  let gantry: Awaited<ReturnType<typeof throughGantry>>;
  try {
    gantry = await throughGantry(batches);
  } finally {
    await Promise.all(hosts.map((h) => stopAgent(h.name)));
  }
  const raw = await rawCri(batches);
  console.log(
    `bench:start — ${image} on ${hosts.length} hosts: ${singles} Containers one at a time, then ${rounds} bursts of ${burst} created at once`,
  );
  console.log(
    `conditions: ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, containerd ${cluster!.runtime.version}, ` +
      'image present on the hosts, agents and apiserver on the same machine; the raw run starts after ' +
      "Gantry's Containers are gone; steps from the runtime's own timestamps",
  );
  printTable('one at a time', gantry.starts.slice(0, singles).flat(), raw.slice(0, singles).flat());
  printTable(`${burst} at once`, gantry.starts.slice(singles).flat(), raw.slice(singles).flat());
  gantry.writes();
}

await main();
