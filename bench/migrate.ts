// npm run bench:migrate — downtime and total time of migrations between the local cluster's two
// hosts: by checkpoint for the counter, for a process holding 100 MB and one holding 1 GB of
// memory, and by restart for comparison. Next to each checkpoint row, the floor: the same move
// made by raw CRI calls (checkpoint, stop, copy the archive, restore into a new sandbox on the
// other host). p50 (and min/max) over BENCH_RUNS runs (default 10).
// Needs the local cluster (npm run cluster:up) with checkpoint/restore working; starts Gantry.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { CriClient, type PodSandboxConfig } from '../src/cri/client.js';
import { resourceClient } from '../src/kube/resources.js';
import { KubeClient, loadKubeConfig } from '../src/kube/client.js';
import { startGantry, stopGantry } from '../src/localcluster/gantry.js';
import { localDir, readLocalCluster, type LocalHost } from '../src/localcluster/state.js';

const runs = Number(process.env.BENCH_RUNS ?? 10);
const cluster = readLocalCluster();
if (!cluster) throw new Error('the local cluster is not up: npm run cluster:up');
if (!cluster.checkpoint.works)
  throw new Error(`checkpoint/restore does not work here: ${cluster.checkpoint.detail}`);
const [host1, host2] = cluster.hosts.map((h) => h.name) as [string, string];

const client = new KubeClient(loadKubeConfig(cluster.kubeconfig));
const containers = resourceClient(client, 'Container');
const migrations = resourceClient(client, 'Migration');
const ns = `bench-migrate-${process.pid}`;

interface Scenario {
  label: string;
  mode: 'Checkpoint' | 'Restart';
  /** Memory the process holds, in MB (the counter image's HOLD_MB). */
  holdMB?: number;
}

const scenarios: Scenario[] = [
  { label: 'checkpoint, counter', mode: 'Checkpoint' },
  { label: 'checkpoint, 100 MB held', mode: 'Checkpoint', holdMB: 100 },
  { label: 'checkpoint, 1 GB held', mode: 'Checkpoint', holdMB: 1024 },
  { label: 'restart, counter', mode: 'Restart' },
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 300_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

async function oneRun(s: Scenario, i: number): Promise<{ downtime: number; total: number }> {
  const name = `c${i}-${s.mode.toLowerCase()}-${s.holdMB ?? 0}`;
  const from = i % 2 === 0 ? host1 : host2;
  await containers.create({
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Container',
    metadata: { name, namespace: ns },
    spec: {
      image: cluster!.images.counter,
      nodeName: from,
      env: s.holdMB ? [{ name: 'HOLD_MB', value: String(s.holdMB) }] : [],
    },
  });
  await until(`${name} Running`, async () => {
    const c = await containers.get({ namespace: ns, name });
    return c?.status?.phase === 'Running' ? c : undefined;
  });
  // Let the ballast fill its memory before the move.
  if (s.holdMB) await sleep(2000 + s.holdMB * 5);
  const started = Date.now();
  await migrations.create({
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Migration',
    metadata: { name, namespace: ns },
    spec: { container: name, mode: s.mode, fallback: 'None', timeoutSeconds: 600 },
  });
  const m = await until(`Migration ${name}`, async () => {
    const x = await migrations.get({ namespace: ns, name });
    return x?.status?.phase && ['Succeeded', 'Failed', 'RolledBack'].includes(x.status.phase) ? x : undefined;
  });
  if (m.status?.phase !== 'Succeeded')
    throw new Error(`Migration ${name}: ${m.status?.phase}: ${m.status?.message}`);
  const total = (Date.now() - started) / 1000;
  await containers.delete({ namespace: ns, name: m.status.targetContainer! });
  return { downtime: m.status.downtimeSeconds ?? NaN, total };
}

/** The same move by raw CRI calls, timed from the checkpoint call until the copy runs. */
async function rawCriRun(s: Scenario, i: number): Promise<{ downtime: number; total: number }> {
  const [first, second] = cluster!.hosts as [LocalHost, LocalHost];
  const [from, to] = i % 2 === 0 ? [first, second] : [second, first];
  const source = new CriClient(from.criSocket);
  const target = new CriClient(to.criSocket);
  const dir = path.join(localDir, 'bench-migrate', crypto.randomUUID());
  fs.mkdirSync(dir, { recursive: true });
  const sandbox = (role: string): PodSandboxConfig => ({
    metadata: { name: `raw-${role}`, uid: crypto.randomUUID(), namespace: ns },
    logDirectory: dir,
    labels: { 'gantry.dev/bench': 'migrate' },
  });
  const running = (cri: CriClient, containerId: string) =>
    until('a raw container to run', async () => {
      const { status } = await cri.containerStatus({ containerId });
      return status?.state === 'CONTAINER_RUNNING' ? true : undefined;
    });
  const sandboxes: [CriClient, string][] = [];
  try {
    const from = sandbox('source');
    const { podSandboxId } = await source.runPodSandbox({ config: from });
    sandboxes.push([source, podSandboxId]);
    const { containerId } = await source.createContainer({
      podSandboxId,
      sandboxConfig: from,
      config: {
        metadata: { name: 'counter' },
        image: { image: cluster!.images.counter },
        envs: s.holdMB ? [{ key: 'HOLD_MB', value: String(s.holdMB) }] : [],
        logPath: 'source.log',
        linux: { securityContext: { namespaceOptions: { pid: 'CONTAINER' } } },
        annotations: { 'gantry.dev/bench': 'migrate' },
      },
    });
    await source.startContainer({ containerId });
    await running(source, containerId);
    if (s.holdMB) await sleep(2000 + s.holdMB * 5);
    const started = Date.now();
    const archive = path.join(dir, 'checkpoint.tar');
    await source.checkpointContainer({ containerId, location: archive, timeout: 600 });
    await source.stopContainer({ containerId, timeout: 0 });
    // The hosts share this machine: a file copy stands in for the transfer.
    const copy = path.join(dir, 'copy.tar');
    fs.copyFileSync(archive, copy);
    const into = sandbox('target');
    const restored = await target.runPodSandbox({ config: into });
    sandboxes.push([target, restored.podSandboxId]);
    const { containerId: copyId } = await target.createContainer({
      podSandboxId: restored.podSandboxId,
      sandboxConfig: into,
      config: { metadata: { name: 'counter' }, image: { image: copy }, logPath: 'target.log' },
    });
    await target.startContainer({ containerId: copyId });
    await running(target, copyId);
    const seconds = (Date.now() - started) / 1000;
    return { downtime: seconds, total: seconds };
  } finally {
    for (const [cri, podSandboxId] of sandboxes) {
      await cri.stopPodSandbox({ podSandboxId });
      await cri.removePodSandbox({ podSandboxId });
    }
    source.close();
    target.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const fmt = (x: number) => `${x.toFixed(2)} s`;

async function main(): Promise<void> {
  await startGantry(cluster!);
  await client.api(CoreV1Api).createNamespace({ body: { metadata: { name: ns } } });
  const rows: string[] = [];
  try {
    const measure = async (
      label: string,
      run: (i: number) => Promise<{ downtime: number; total: number }>,
    ) => {
      const results = [];
      for (let i = 0; i < runs; i++) results.push(await run(i));
      const d = results.map((r) => r.downtime);
      const t = results.map((r) => r.total);
      rows.push(
        `${label.padEnd(30)} ${fmt(p50(d)).padEnd(9)} ${fmt(Math.min(...d))}-${fmt(Math.max(...d)).padEnd(9)} ` +
          `${fmt(p50(t)).padEnd(9)} ${fmt(Math.min(...t))}-${fmt(Math.max(...t))}`,
      );
      console.log(rows.at(-1));
    };
    for (const s of scenarios) {
      await measure(`Gantry ${s.label}`, (i) => oneRun(s, i));
      if (s.mode === 'Checkpoint') await measure(`raw CRI ${s.label}`, (i) => rawCriRun(s, i));
    }
  } finally {
    await client.api(CoreV1Api).deleteNamespace({ name: ns });
    await stopGantry(cluster!);
  }
  console.log(`\nbench:migrate — ${runs} runs per row, alternating ${host1} <-> ${host2}`);
  console.log(
    `conditions: ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, containerd ${cluster!.runtime.version}, ` +
      'CRIU 4.2.1, both hosts and the control plane on one machine (the transfer is over loopback)',
  );
  console.log(
    `${'scenario'.padEnd(30)} ${'downtime p50'.padEnd(9)} (min-max)        ${'total p50'.padEnd(9)} (min-max)`,
  );
  for (const r of rows) console.log(r);
}

await main();
