// Gantry itself on the local cluster: the CRDs, the controller and one agent per host, run as
// processes of this machine (the local cluster has no kubelet to run them as Pods). Their PIDs
// go with the cluster's, so `cluster:down` stops them too; logs are in the cluster's log folder.
// A process already running is reused only if it was started with exactly the command line asked
// for (same checkout, same flags); otherwise it is restarted with that one, and the reason printed.
// None starts while Gantry runs installed in the cluster (Helm, the manifests): they would compete.
// The aggregated API server is started the same way, in subresources.ts.
import { builderHosts, buildkitLayout } from './buildkit.js';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAllYaml } from '@kubernetes/client-node';
import {
  commandDifferences,
  commandFile,
  livePid,
  run,
  runningDaemon,
  startDaemon,
  stopPidFile,
  waitFor,
} from './proc.js';
import { hostAddress } from './network.js';
import { PrerequisiteError } from './prerequisites.js';
import { imageRef, registryAddress } from './registry.js';
import { type LocalCluster, localDir, systemNamespace } from './state.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const pids = path.join(localDir, 'pids');
export const logs = path.join(localDir, 'logs');

/**
 * Where each process serves /metrics, the probes and (agents) checkpoints for migrations: fixed,
 * so tests and users can find them, and apart, since every host's agent runs on this machine.
 */
export function agentPorts(host: string): {
  metrics: number;
  probes: number;
  transfer: number;
  streams: number;
} {
  const n = Number(/(\d+)$/.exec(host)?.[1] ?? 0);
  return { metrics: 9100 + n, probes: 9200 + n, transfer: 9300 + n, streams: 9400 + n };
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

/**
 * The cluster-wide rules the chart ships for people, taken from manifests/gantry.yaml for runs of
 * Gantry as processes: the aggregated view and edit rights (so a user bound to `edit` works with
 * Gantry objects), the policy reserving gantry.dev/ annotations to the controller (the processes
 * here run as the cluster admin, which it lets through) and the one enforcing the restricted level
 * where a namespace asks for it. Named gantry-local-*, so a later `helm install gantry` owns its
 * own copies.
 */
export async function installClusterPolicies(cluster: LocalCluster): Promise<void> {
  const wanted = new Set([
    'gantry-view',
    'gantry-edit',
    'gantry-reserved-annotations',
    'gantry-restricted-level',
  ]);
  const manifests = loadAllYaml(fs.readFileSync(path.join(repoRoot, 'manifests', 'gantry.yaml'), 'utf8'));
  const local = (name: string) => name.replace(/^gantry-/, 'gantry-local-');
  const objects = (manifests as KubeObject[])
    .filter((o) => o && wanted.has(o.metadata.name))
    .map((o) => {
      const aggregation = Object.entries(o.metadata.labels ?? {}).filter(([k]) =>
        k.startsWith('rbac.authorization.k8s.io/'),
      );
      const labels = { 'app.kubernetes.io/part-of': 'gantry', ...Object.fromEntries(aggregation) };
      const spec = o.spec?.policyName ? { ...o.spec, policyName: local(o.spec.policyName) } : o.spec;
      return { ...o, metadata: { name: local(o.metadata.name), labels }, ...(spec ? { spec } : {}) };
    });
  const missing = [...wanted].filter((name) => !objects.some((o) => o.metadata.name === local(name)));
  if (missing.length > 0) {
    throw new Error(`manifests/gantry.yaml lacks ${missing.join(', ')}: npm run gen:manifests`);
  }
  const file = path.join(localDir, 'gantry-local-policies.json');
  fs.writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
  await run(path.join(cluster.binDir, 'kubectl'), [
    '--kubeconfig',
    cluster.kubeconfig,
    'apply',
    '--server-side',
    '--force-conflicts',
    '--field-manager=gantry-install',
    '-f',
    file,
  ]);
}

interface KubeObject {
  metadata: { name: string; labels?: Record<string, string> };
  spec?: { policyName?: string };
}

export function tsEntry(name: string): string[] {
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

/** Where start* report a process they replaced (one with another command line than asked). */
export type Report = (line: string) => void;

export type Program = 'agent' | 'controller' | 'subresources';

/** Is this the command line of a Gantry `name` process (of any checkout, from source or built)? */
export function isGantryCommand(argv: readonly string[], name: Program): boolean {
  return argv.some((a) => a.endsWith(`/src/cmd/${name}.ts`) || a.endsWith(`/cmd/${name}.js`));
}

/**
 * What to do with what a PID file names, given the command line wanted: nothing runs ('start'),
 * the very same command runs ('reuse'), or another one of ours ('restart', with the differences).
 * A PID that no longer names a Gantry process (the PID was reused) is not ours: 'start' anew.
 */
export function decide(
  running: { pid: number; command?: string[] } | undefined,
  wanted: readonly string[],
  name: Program,
): { action: 'start' } | { action: 'reuse' } | { action: 'restart'; differences: string[] } {
  if (!running) return { action: 'start' };
  if (!running.command) {
    throw new Error(
      `a process runs as the Gantry ${name} (pid ${running.pid}) whose command line cannot be read: stop it first (npm run cluster:down)`,
    );
  }
  if (!isGantryCommand(running.command, name)) return { action: 'start' };
  const differences = commandDifferences(running.command, wanted);
  return differences.length === 0 ? { action: 'reuse' } : { action: 'restart', differences };
}

export async function ensureRunning(
  what: string,
  name: Program,
  files: { pidFile: string; logFile: string },
  argv: string[],
  probesPort: number,
  report: Report,
): Promise<void> {
  const running = runningDaemon(files.pidFile);
  const decision = decide(running, argv, name);
  if (decision.action === 'reuse') {
    await waitHealthy(what, probesPort, running!.pid, files.logFile);
    return;
  }
  if (decision.action === 'restart') {
    report(
      `${what} was running (pid ${running!.pid}) with another command line than asked for; restarting it:\n` +
        decision.differences.map((d) => `  ${d}`).join('\n'),
    );
    await stopPidFile(files.pidFile);
  }
  const pid = startDaemon(argv[0]!, argv.slice(1), files, { cwd: repoRoot });
  await waitHealthy(what, probesPort, pid, files.logFile);
}

/** An agent DaemonSet of Gantry installed in the cluster, and who installed it. */
export interface AgentDaemonSet {
  namespace: string;
  name: string;
  /** Helm's release name and namespace (its meta.helm.sh annotations), when Helm installed it. */
  release?: { name: string; namespace: string };
}

/**
 * Why no Gantry process may start here while Gantry runs installed in the cluster (the chart, as
 * `npm start` installs it on kubelet nodes, or the plain manifests): its agents serve the hosts
 * and its controller holds the leader Lease, so processes beside them would fight over every
 * Container, or wait forever. Says what is installed and how to remove it; undefined if nothing is.
 */
export function installedGantryConflict(agents: readonly AgentDaemonSet[]): string | undefined {
  const [first] = agents;
  if (!first) return undefined;
  const where = `DaemonSet ${first.name} in ${first.namespace}`;
  const remove = first.release
    ? `helm uninstall ${first.release.name} --namespace ${first.release.namespace} (npm start installs it again)`
    : `delete DaemonSet ${first.name} in ${first.namespace} and the controller's Deployment`;
  return (
    `Gantry is installed in the local cluster (${where}${first.release ? `, Helm release ${first.release.name}` : ''}): ` +
    `its agents serve the hosts and its controller leads, so Gantry processes started here would compete with them. ` +
    `Remove it first: ${remove}`
  );
}

/** Refuses, with installedGantryConflict's reason, when Gantry runs installed in the cluster. */
export async function refuseBesideInstalledGantry(cluster: LocalCluster): Promise<void> {
  const out = await run(path.join(cluster.binDir, 'kubectl'), [
    '--kubeconfig',
    cluster.kubeconfig,
    'get',
    'daemonsets',
    '--all-namespaces',
    '--selector=app.kubernetes.io/part-of=gantry,app.kubernetes.io/component=agent',
    '--output=json',
  ]);
  type DaemonSet = {
    metadata: {
      namespace: string;
      name: string;
      deletionTimestamp?: string;
      annotations?: Record<string, string>;
    };
  };
  const agents = (JSON.parse(out) as { items: DaemonSet[] }).items
    .filter((d) => !d.metadata.deletionTimestamp)
    .map(({ metadata: m }) => {
      const name = m.annotations?.['meta.helm.sh/release-name'];
      const namespace = m.annotations?.['meta.helm.sh/release-namespace'];
      return {
        namespace: m.namespace,
        name: m.name,
        ...(name && namespace ? { release: { name, namespace } } : {}),
      };
    });
  const conflict = installedGantryConflict(agents);
  if (conflict) throw new PrerequisiteError(conflict);
}

/** A host's agent state (container logs, checkpoints); a kubelet node mounts it at /var/lib/gantry/agent. */
export function agentStateDir(host: string): string {
  return path.join(localDir, 'hosts', host, 'agent');
}

/**
 * The agent of `host` with `extraArgs` (later flags win over the defaults): reused when it already
 * runs with exactly this command line, restarted when it runs with another; refused while Gantry
 * runs installed in the cluster.
 */
export async function startAgent(
  cluster: LocalCluster,
  host: string,
  extraArgs: string[] = [],
  report: Report = (l) => console.error(l),
): Promise<void> {
  const h = cluster.hosts.find((x) => x.name === host);
  if (!h) throw new Error(`no host ${host} in the local cluster`);
  await refuseBesideInstalledGantry(cluster);
  const ports = agentPorts(host);
  const stateDir = agentStateDir(host);
  fs.mkdirSync(stateDir, { recursive: true });
  const argv = [
    process.execPath,
    ...tsEntry('agent'),
    `--host-name=${host}`,
    `--cri-socket=${h.criSocket}`,
    `--kubeconfig=${cluster.kubeconfig}`,
    `--state-dir=${stateDir}`,
    `--metrics-bind-address=127.0.0.1:${ports.metrics}`,
    `--health-probe-bind-address=127.0.0.1:${ports.probes}`,
    `--transfer-bind-address=127.0.0.1:${ports.transfer}`,
    `--stream-bind-address=127.0.0.1:${ports.streams}`,
    '--advertise-address=127.0.0.1',
    `--node-ip=${hostAddress(localDir, host, cluster.kubelet)}`,
    `--lease-namespace=${systemNamespace}`,
    `--probe-image=${imageRef('counter')}`,
    // Containers resolve Services by name, as Pods do.
    ...(cluster.dns ? [`--cluster-dns=${cluster.dns.ip}`, `--cluster-domain=${cluster.dns.domain}`] : []),
    ...(builderHosts.includes(host)
      ? [
          `--buildkit-socket=unix://${buildkitLayout(host).socket}`,
          `--buildctl=${path.join(cluster.binDir, 'buildctl')}`,
        ]
      : []),
    ...extraArgs,
  ];
  await ensureRunning(
    `the agent of ${host}`,
    'agent',
    { pidFile: path.join(pids, `agent-${host}.pid`), logFile: agentLog(host) },
    argv,
    ports.probes,
    report,
  );
}

/**
 * Stops the Gantry process a PID file names. A PID that now names some other program (reused
 * since) is left alone: only the stale files go.
 */
export async function stopGantryProcess(
  pidFile: string,
  name: Program,
  signal: 'SIGTERM' | 'SIGKILL',
): Promise<void> {
  const running = runningDaemon(pidFile);
  if (livePid(pidFile) !== undefined && !(running?.command && isGantryCommand(running.command, name))) {
    fs.rmSync(pidFile, { force: true });
    fs.rmSync(commandFile(pidFile), { force: true });
    return;
  }
  if (running && signal === 'SIGKILL') process.kill(running.pid, 'SIGKILL');
  await stopPidFile(pidFile);
}

export async function stopAgent(host: string, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
  await stopGantryProcess(path.join(pids, `agent-${host}.pid`), 'agent', signal);
}

/**
 * The controller with `extraArgs`: reused when it already runs with exactly this command line,
 * restarted otherwise; refused while Gantry runs installed in the cluster.
 */
export async function startController(
  cluster: LocalCluster,
  extraArgs: string[] = [],
  report: Report = (l) => console.error(l),
): Promise<void> {
  await refuseBesideInstalledGantry(cluster);
  const argv = [
    process.execPath,
    ...tsEntry('controller'),
    `--kubeconfig=${cluster.kubeconfig}`,
    `--metrics-bind-address=127.0.0.1:${controllerPorts.metrics}`,
    `--health-probe-bind-address=127.0.0.1:${controllerPorts.probes}`,
    `--leader-election-namespace=${systemNamespace}`,
    `--insecure-registries=${registryAddress},${cluster.clusterRegistry}`,
    ...extraArgs,
  ];
  await ensureRunning(
    'the controller',
    'controller',
    { pidFile: path.join(pids, 'controller.pid'), logFile: controllerLog },
    argv,
    controllerPorts.probes,
    report,
  );
}

export async function stopController(): Promise<void> {
  await stopGantryProcess(path.join(pids, 'controller.pid'), 'controller', 'SIGTERM');
}

export interface GantryArgs {
  controller?: string[];
  agent?: string[];
}

/**
 * CRDs and the chart's rules for people, an agent on every host, then the controller, each with
 * the flags asked for: a process already running with exactly those is reused (a second
 * `npm start` changes nothing), one running with others (other flags, another checkout) is
 * restarted, and `report` says what differed. Agents first: a controller that waits longer than its --host-lost-grace for their
 * first heartbeats marks the Hosts lost, and their Ready condition flaps while they come back.
 * Refused while Gantry runs installed in the cluster (the chart `npm start` installs on kubelet
 * nodes), saying how to remove it.
 */
export async function startGantry(
  cluster: LocalCluster,
  args: GantryArgs = {},
  report: Report = (l) => console.error(l),
): Promise<void> {
  await refuseBesideInstalledGantry(cluster);
  await installCrds(cluster);
  await installClusterPolicies(cluster);
  await Promise.all(cluster.hosts.map((h) => startAgent(cluster, h.name, args.agent, report)));
  await startController(cluster, args.controller, report);
}

export async function stopGantry(cluster: LocalCluster): Promise<void> {
  await Promise.all(cluster.hosts.map((h) => stopAgent(h.name)));
  await stopController();
}

/**
 * Helm values (as --set arguments) for installing the chart on the local cluster's kubelet nodes
 * with Gantry's image built here (image.ts).
 */
export function chartValues(cluster: LocalCluster, image: { ref: string; digest: string }): string[] {
  // The kubelets' runtimes pull on this machine's network, where 127.0.0.1:5000 is the registry.
  const repository = image.ref.slice(0, image.ref.lastIndexOf(':'));
  return [
    `image.repository=${repository}`,
    `image.digest=${image.digest}`,
    // The controller resolves tags from its pod: the registry as pods reach it, over plain HTTP.
    `controller.insecureRegistries={${cluster.clusterRegistry}}`,
    // The agent's checkpoint probe runs on Gantry's own containerd, which reaches this registry.
    `agent.checkpointProbeImage=${imageRef('counter')}`,
  ].flatMap((v) => ['--set', v]);
}
