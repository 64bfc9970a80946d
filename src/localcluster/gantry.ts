// Gantry itself on the local cluster: the CRDs, the controller and one agent per host, run as
// processes of this machine (the local cluster has no kubelet to run them as Pods). Their PIDs
// go with the cluster's, so `cluster:down` stops them too; logs are in the cluster's log folder.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { livePid, run, startDaemon, stopPidFile, waitFor } from './proc.js';
import { imageRef } from './registry.js';
import { type LocalCluster, localDir, systemNamespace } from './state.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const pids = path.join(localDir, 'pids');
const logs = path.join(localDir, 'logs');

/**
 * Where each process serves /metrics, the probes and (agents) checkpoints for migrations: fixed,
 * so tests and users can find them, and apart, since every host's agent runs on this machine.
 */
export function agentPorts(host: string): { metrics: number; probes: number; transfer: number } {
  const n = Number(/(\d+)$/.exec(host)?.[1] ?? 0);
  return { metrics: 9100 + n, probes: 9200 + n, transfer: 9300 + n };
}
export const controllerPorts = { metrics: 8080, probes: 8081 };

export function agentLog(host: string): string {
  return path.join(logs, `agent-${host}.log`);
}
export const controllerLog = path.join(logs, 'controller.log');

/** Applies crds/ (server-side, one field manager, so repeated installs never conflict). */
export async function installCrds(cluster: LocalCluster): Promise<void> {
  const kubectl = path.join(cluster.binDir, 'kubectl');
  const args = ['--kubeconfig', cluster.kubeconfig];
  await run(kubectl, [
    ...args,
    'apply',
    '--server-side',
    '--force-conflicts',
    '--field-manager=gantry-install',
    '-f',
    path.join(repoRoot, 'crds'),
  ]);
  await run(kubectl, [
    ...args,
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    'crd',
    '-l',
    'app.kubernetes.io/part-of=gantry',
  ]);
}

function tsEntry(name: string): string[] {
  return ['--import', 'tsx', path.join(repoRoot, 'src', 'cmd', `${name}.ts`)];
}

async function waitHealthy(what: string, port: number, pid: number, logFile: string): Promise<void> {
  await waitFor(
    `${what} to answer /healthz`,
    () =>
      fetch(`http://127.0.0.1:${port}/healthz`)
        .then((r) => r.ok)
        .catch(() => false),
    { pid, logFile, timeoutMs: 60_000 },
  );
}

export async function startAgent(
  cluster: LocalCluster,
  host: string,
  extraArgs: string[] = [],
): Promise<void> {
  const h = cluster.hosts.find((x) => x.name === host);
  if (!h) throw new Error(`no host ${host} in the local cluster`);
  const pidFile = path.join(pids, `agent-${host}.pid`);
  if (livePid(pidFile)) return;
  const ports = agentPorts(host);
  const stateDir = path.join(localDir, 'hosts', host, 'agent');
  fs.mkdirSync(stateDir, { recursive: true });
  const pid = startDaemon(
    process.execPath,
    [
      ...tsEntry('agent'),
      `--host-name=${host}`,
      `--cri-socket=${h.criSocket}`,
      `--kubeconfig=${cluster.kubeconfig}`,
      `--state-dir=${stateDir}`,
      `--metrics-bind-address=127.0.0.1:${ports.metrics}`,
      `--health-probe-bind-address=127.0.0.1:${ports.probes}`,
      `--transfer-bind-address=127.0.0.1:${ports.transfer}`,
      '--advertise-address=127.0.0.1',
      `--lease-namespace=${systemNamespace}`,
      `--probe-image=${imageRef('counter')}`,
      ...extraArgs,
    ],
    { pidFile, logFile: agentLog(host) },
    { cwd: repoRoot },
  );
  await waitHealthy(`the agent of ${host}`, ports.probes, pid, agentLog(host));
}

export async function stopAgent(host: string, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
  const pidFile = path.join(pids, `agent-${host}.pid`);
  if (signal === 'SIGKILL') {
    const pid = livePid(pidFile);
    if (pid !== undefined) process.kill(pid, 'SIGKILL');
  }
  await stopPidFile(pidFile);
}

export async function startController(cluster: LocalCluster, extraArgs: string[] = []): Promise<void> {
  const pidFile = path.join(pids, 'controller.pid');
  if (livePid(pidFile)) return;
  const pid = startDaemon(
    process.execPath,
    [
      ...tsEntry('controller'),
      `--kubeconfig=${cluster.kubeconfig}`,
      `--metrics-bind-address=127.0.0.1:${controllerPorts.metrics}`,
      `--health-probe-bind-address=127.0.0.1:${controllerPorts.probes}`,
      `--leader-election-namespace=${systemNamespace}`,
      ...extraArgs,
    ],
    { pidFile, logFile: controllerLog },
    { cwd: repoRoot },
  );
  await waitHealthy('the controller', controllerPorts.probes, pid, controllerLog);
}

export async function stopController(): Promise<void> {
  await stopPidFile(path.join(pids, 'controller.pid'));
}

export interface GantryArgs {
  controller?: string[];
  agent?: string[];
}

/**
 * CRDs, an agent on every host, then the controller; idempotent. Agents first: a controller that
 * waits longer than its --host-lost-grace for their first heartbeats marks the Hosts lost, and
 * their Ready condition flaps while they come back.
 */
export async function startGantry(cluster: LocalCluster, args: GantryArgs = {}): Promise<void> {
  await installCrds(cluster);
  await Promise.all(cluster.hosts.map((h) => startAgent(cluster, h.name, args.agent)));
  await startController(cluster, args.controller);
}

export async function stopGantry(cluster: LocalCluster): Promise<void> {
  await Promise.all(cluster.hosts.map((h) => stopAgent(h.name)));
  await stopController();
}
