// npm run bench:scale, part 1 — control-plane scale. 50 HOLLOW hosts (a Node and a Host each, run
// by real agent code on the simulated runtime of bench/support/simulated-runtime.ts, several per
// process, like kubemark's hollow nodes) and Workloads of 10 replicas, at two sizes one after the
// other (100 and 500 Workloads: 1,000 and 5,000 Containers): how long until all are Running, the
// CPU seconds of the controller, the apiserver, etcd and the agents, the controller's peak RSS,
// the apiserver's writes, and how the apiserver's cost per Container grows from the small size to
// the large one; and first, on the same apiserver, the rate at which it creates as many ConfigMaps
// as the large size has Containers: the ceiling any controller works under. Before the sizes, a
// minute at rest (BENCH_REST_MINUTES): what the hosts and the controller write when nothing happens.
// `npm run bench:rest` is that minute alone, with 1,000 hollow hosts (BENCH_WORKLOADS empty).
// Needs the local cluster (npm run cluster:up) with no Gantry running; starts and stops its own.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoordinationV1Api, CoreV1Api } from '@kubernetes/client-node';
import type { Container, Host, WorkloadInput } from '../src/api/v1alpha1/index.js';
import { hostLeaseName } from '../src/api/v1alpha1/index.js';
import { KubeClient, loadKubeConfig } from '../src/kube/client.js';
import { resourceClient } from '../src/kube/resources.js';
import { isNotFound } from '../src/kube/errors.js';
import { Informer, restListWatcher } from '../src/kube/informer.js';
import {
  controllerLog,
  controllerPorts,
  installCrds,
  startController,
  stopController,
} from '../src/localcluster/gantry.js';
import { livePid, waitFor } from '../src/localcluster/proc.js';
import { localDir, readLocalCluster, systemNamespace } from '../src/localcluster/state.js';
import { versions } from '../src/localcluster/versions.js';
import { apiserverWrites, printWritesPer, writesBetween } from './support/apiserver-writes.js';
import { deleteNamespace } from './support/namespaces.js';
import { createLogger } from '../src/obs/logger.js';

const hostCount = Number(process.env.BENCH_HOSTS ?? 50);
/**
 * Workloads per size, e.g. "100,500"; each size runs in a namespace of its own, one after the other.
 * Empty: only the minute at rest.
 */
const sizes = (process.env.BENCH_WORKLOADS ?? '100,500').split(',').filter(Boolean).map(Number);
const replicas = Number(process.env.BENCH_REPLICAS ?? 10);
const agentProcesses = Number(process.env.BENCH_AGENT_PROCESSES ?? 2);
const total = Math.max(0, ...sizes) * replicas;
const hollowLabel = 'gantry.dev/hollow';

const cluster = readLocalCluster();
if (!cluster) throw new Error('the local cluster is not up: npm run cluster:up');
const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const client = new KubeClient(loadKubeConfig(cluster.kubeconfig));
const core = client.api(CoreV1Api);
const log = createLogger({ level: 'error' });
const resource = <K extends 'Container' | 'Workload' | 'Host'>(kind: K) => resourceClient(client, kind);
const hostNames = Array.from({ length: hostCount }, (_, i) => `hollow-${String(i + 1).padStart(3, '0')}`);
const seconds = (ms: number) => (ms / 1000).toFixed(1);

/** Runs `fn` over `items`, at most `limit` at a time. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/**
 * The apiserver's own pace: 5,000 ConfigMaps, 50 requests in flight, over kept-alive connections;
 * and the same through Gantry's KubeClient (client-node), which opens a connection per request.
 */
async function configMapCeiling(): Promise<{ keepAliveMs: number; kubeClientMs: number }> {
  const tls: https.RequestOptions = {};
  await client.kc.applyToHTTPSOptions(tls);
  const agent = new https.Agent({
    keepAlive: true,
    maxSockets: 50,
    ca: tls.ca,
    cert: tls.cert,
    key: tls.key,
  });
  const server = client.kc.getCurrentCluster()!.server;
  const post = (ns: string, body: object) =>
    new Promise<void>((resolve, reject) => {
      const req = https.request(`${server}/api/v1/namespaces/${ns}/configmaps`, {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json' },
      });
      req.on('response', (res) => {
        res.resume();
        res.on('end', () =>
          res.statusCode === 201 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`)),
        );
      });
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
  const timed = async (create: (ns: string, i: number) => Promise<unknown>): Promise<number> => {
    const ns = `bench-configmaps-${process.pid}`;
    await core.createNamespace({ body: { metadata: { name: ns } } });
    const started = performance.now();
    await pool(
      Array.from({ length: total }, (_, i) => i),
      50,
      (i) => create(ns, i),
    );
    const ms = performance.now() - started;
    await deleteNamespace(core, ns);
    return ms;
  };
  const configMap = (i: number) => ({ metadata: { name: `cm-${i}` }, data: { i: String(i) } });
  const keepAliveMs = await timed((ns, i) => post(ns, configMap(i)));
  const kubeClientMs = await timed((ns, i) =>
    core.createNamespacedConfigMap({ namespace: ns, body: configMap(i) }),
  );
  agent.destroy();
  return { keepAliveMs, kubeClientMs };
}

/** CPU seconds (user + system) and peak resident memory of a process, from /proc. */
function processUsage(pid: number): { cpuSeconds: number; peakRssBytes: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
  const hwm = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return { cpuSeconds: ticks / 100, peakRssBytes: Number(hwm ?? 0) * 1024 };
}

function startHollowAgents(stateDir: string): ChildProcess[] {
  const logFile = fs.openSync(path.join(localDir, 'logs', 'bench-hollow-agents.log'), 'a');
  const perProcess = Math.ceil(hostNames.length / agentProcesses);
  return Array.from({ length: agentProcesses }, (_, p) =>
    spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(repoRoot, 'bench', 'hollow-agents.ts'),
        cluster!.kubeconfig,
        stateDir,
        ...hostNames.slice(p * perProcess, (p + 1) * perProcess),
      ],
      { cwd: repoRoot, stdio: ['ignore', logFile, logFile] },
    ),
  );
}

async function stopHollowAgents(agents: ChildProcess[]): Promise<void> {
  await Promise.all(
    agents.map(
      (a) =>
        new Promise<void>((resolve) => {
          if (a.exitCode !== null) return resolve();
          a.once('exit', () => resolve());
          a.kill('SIGTERM');
        }),
    ),
  );
}

function workload(ns: string, i: number): WorkloadInput {
  const name = `w${String(i).padStart(3, '0')}`;
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Workload',
    metadata: { name, namespace: ns },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      placement: { nodeSelector: { [hollowLabel]: 'true' } },
      template: {
        metadata: { labels: { app: name } },
        spec: { image: cluster!.images.web, resources: { requests: { cpu: '10m', memory: '16Mi' } } },
      },
    },
  };
}

async function removeHollowObjects(): Promise<void> {
  const hosts = resource('Host');
  const leases = client.api(CoordinationV1Api);
  await pool(hostNames, 10, async (name) => {
    await hosts.delete({ name });
    await core.deleteNode({ name }).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
    await leases
      .deleteNamespacedLease({ name: hostLeaseName(name), namespace: systemNamespace })
      .catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
  });
}

/** One size: Workloads created, 20 in flight, until all their Containers run; what it cost. */
async function measure(
  workloadCount: number,
  controllerPid: number,
  usage: () => Record<string, number>,
): Promise<void> {
  const count = workloadCount * replicas;
  const ns = `bench-scale-${process.pid}-${workloadCount}`;
  const containers = new Informer<Container>({
    name: 'bench-containers',
    listWatcher: restListWatcher(client, { path: resource('Container').collectionPath(ns) }),
    log,
  });
  try {
    await core.createNamespace({ body: { metadata: { name: ns } } });
    // Milestones counted as events arrive: the first time each Container was seen, bound, Running.
    const seen = { created: new Set<string>(), bound: new Set<string>(), running: new Set<string>() };
    const firsts = { created: 0, bound: 0, running: 0 };
    let started = performance.now();
    const tally = (c: Container) => {
      const name = c.metadata.name!;
      seen.created.add(name);
      if (c.spec?.nodeName) seen.bound.add(name);
      if (c.status?.phase === 'Running') seen.running.add(name);
      for (const k of ['created', 'bound', 'running'] as const)
        if (!firsts[k] && seen[k].size === count) firsts[k] = performance.now() - started;
    };
    containers.addEventHandler({ onAdd: tally, onUpdate: (_, c) => tally(c) });
    containers.start();
    await containers.waitForSync();
    const before = processUsage(controllerPid);
    const othersBefore = usage();
    const writesBefore = await apiserverWrites(client);
    started = performance.now();
    const workloads = resource('Workload');
    await pool(
      Array.from({ length: workloadCount }, (_, i) => i),
      20,
      (i) => workloads.create(workload(ns, i)),
    );
    const createdWorkloadsMs = performance.now() - started;
    let last = 0;
    await waitFor(
      `${count} Containers to be Running`,
      () => {
        if (performance.now() - last > 10_000) {
          last = performance.now();
          const n = (k: keyof typeof seen) => seen[k].size;
          console.log(
            `  ${seconds(last - started)} s: ${n('created')} created, ${n('bound')} bound, ${n('running')} Running`,
          );
        }
        return firsts.running > 0;
      },
      { timeoutMs: 1_800_000, intervalMs: 500, pid: controllerPid, logFile: controllerLog },
    );
    const after = processUsage(controllerPid);
    const othersAfter = usage();
    const writesAfter = await apiserverWrites(client);
    const metrics = await (await fetch(`http://127.0.0.1:${controllerPorts.metrics}/metrics`)).text();
    const metric = (re: RegExp) => re.exec(metrics)?.[1] ?? '?';

    console.log(`\n${workloadCount} Workloads x ${replicas} replicas = ${count} Containers`);
    console.log(`${workloadCount} Workloads created in ${seconds(createdWorkloadsMs)} s (20 in flight)`);
    console.log(
      `${count} Containers: all created after ${seconds(firsts.created)} s, all bound after ${seconds(firsts.bound)} s, all Running after ${seconds(firsts.running)} s`,
    );
    console.log(
      `  = ${Math.round(count / (firsts.running / 1000))} Containers/s end to end; scheduler bindings so far: ${metric(/gantry_scheduling_attempts_total\{result="scheduled"\} (\d+)/)}, errors ${metric(/gantry_scheduling_attempts_total\{result="error"\} (\d+)/)}`,
    );
    console.log(
      `controller: ${(after.cpuSeconds - before.cpuSeconds).toFixed(1)} CPU seconds during the run, peak RSS so far ${Math.round(after.peakRssBytes / 2 ** 20)} MiB`,
    );
    const cpu = Object.keys(othersAfter).map(
      (k) => `${k} ${(othersAfter[k]! - othersBefore[k]!).toFixed(0)} s`,
    );
    console.log(`CPU seconds of the others during the run: ${cpu.join(', ')}`);
    const apiserverCpu = (othersAfter['kube-apiserver']! - othersBefore['kube-apiserver']!) / count;
    apiserverCpuPerContainer.set(count, apiserverCpu);
    console.log(`kube-apiserver: ${apiserverCpu.toFixed(4)} CPU seconds per Container`);
    printWritesPer(
      'writes (Workload creates to all Running; includes Leases and Host reports)',
      count,
      writesBefore,
      writesAfter,
    );
  } finally {
    await containers.stop();
    console.log('cleaning up (the hollow agents remove their finalizers)');
    await deleteNamespace(core, ns, 900_000).catch((err: unknown) =>
      console.error(`cleanup: ${String(err)}`),
    );
  }
}

/** What the hollow hosts and the controller write when nothing happens, per host and minute. */
async function atRest(): Promise<void> {
  const minutes = Number(process.env.BENCH_REST_MINUTES ?? 1);
  const before = await apiserverWrites(client);
  await new Promise((r) => setTimeout(r, minutes * 60_000));
  const { rows, total: writes } = writesBetween(before, await apiserverWrites(client));
  const perHostMinute = (n: number) => (n / hostCount / minutes).toFixed(2);
  console.log(
    `\nat rest for ${minutes} min: ${perHostMinute(writes)} apiserver writes per host per minute (${writes} in all)`,
  );
  for (const [key, n] of rows) console.log(`  ${key.padEnd(36)} ${perHostMinute(n)}`);
}

/** kube-apiserver CPU seconds per Container, by size (Containers). */
const apiserverCpuPerContainer = new Map<number, number>();

async function main(): Promise<void> {
  const running = [
    path.join(localDir, 'pids', 'controller.pid'),
    ...cluster!.hosts.map((h) => path.join(localDir, 'pids', `agent-${h.name}.pid`)),
  ].filter((f) => livePid(f) !== undefined);
  if (running.length > 0) throw new Error(`Gantry is running (${running.join(', ')}): stop it first`);

  console.log(
    `bench:scale (control plane) — ${hostCount} hollow hosts; ${sizes.join(' then ') || 'no'} Workloads x ${replicas} replicas`,
  );
  const ceiling = total > 0 ? await configMapCeiling() : undefined;

  await installCrds(cluster!);
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-hollow-'));
  await pool(hostNames, 10, (name) =>
    core.createNode({
      body: { metadata: { name, labels: { [hollowLabel]: 'true', 'kubernetes.io/hostname': name } } },
    }),
  );
  const agents = startHollowAgents(stateDir);
  const hosts = new Informer<Host>({
    name: 'bench-hosts',
    listWatcher: restListWatcher(client, { path: resource('Host').collectionPath() }),
    log,
  });
  try {
    hosts.start();
    await waitFor(
      `${hostCount} hollow Hosts to be Ready`,
      () =>
        hosts.cache
          .list()
          .filter(
            (h) =>
              h.metadata.labels?.[hollowLabel] === 'true' &&
              h.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
          ).length === hostCount,
      // Registering takes a few writes per host; 1,000 of them queue behind each other.
      { timeoutMs: Math.max(300_000, hostCount * 1_000), intervalMs: 1_000 },
    );
    await startController(cluster!);
    const controllerPid = livePid(path.join(localDir, 'pids', 'controller.pid'))!;
    await waitFor(
      'the controller to lead',
      async () =>
        /leader_election_master_status\{name="gantry-controller"\} 1/.test(
          await (await fetch(`http://127.0.0.1:${controllerPorts.metrics}/metrics`)).text(),
        ),
      { timeoutMs: 60_000, pid: controllerPid, logFile: controllerLog },
    );
    const usage = (): Record<string, number> => ({
      'kube-apiserver': processUsage(livePid(path.join(localDir, 'pids', 'kube-apiserver.pid'))!).cpuSeconds,
      etcd: processUsage(livePid(path.join(localDir, 'pids', 'etcd.pid'))!).cpuSeconds,
      'hollow agents': agents.reduce((sum, a) => sum + processUsage(a.pid!).cpuSeconds, 0),
    });
    console.log(
      `conditions: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${Math.round(os.totalmem() / 2 ** 30)} GiB; ` +
        `etcd ${versions.etcd}, kube-apiserver ${versions.kubernetes}, the controller (default flags) and ` +
        `${agentProcesses} processes of hollow agents all on this one machine`,
    );
    const rate = (ms: number) => Math.round(total / (ms / 1000));
    if (ceiling)
      console.log(
        `apiserver ceiling: ${total} ConfigMaps in ${seconds(ceiling.keepAliveMs)} s = ${rate(ceiling.keepAliveMs)} objects/s ` +
          `(50 in flight, kept-alive connections); through KubeClient: ${seconds(ceiling.kubeClientMs)} s = ` +
          `${rate(ceiling.kubeClientMs)} objects/s`,
      );
    await atRest();
    const agentsRss = agents.reduce((sum, a) => sum + processUsage(a.pid!).peakRssBytes, 0);
    console.log(
      `hollow agents: peak RSS ${Math.round(agentsRss / 2 ** 20)} MiB in all (${Math.round(agentsRss / hostCount / 2 ** 10)} KiB per host)`,
    );
    for (const workloadCount of sizes) await measure(workloadCount, controllerPid, usage);
    const [small, large] = [Math.min(...sizes) * replicas, total];
    if (sizes.length > 1 && small !== large) {
      const ratio = apiserverCpuPerContainer.get(large)! / apiserverCpuPerContainer.get(small)!;
      console.log(
        `\nlinear cost: kube-apiserver CPU per Container at ${large} is ${ratio.toFixed(2)}x the figure at ${small}`,
      );
    }
  } finally {
    await hosts.stop();
    await stopController();
    await stopHollowAgents(agents);
    await removeHollowObjects();
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
}

await main();
