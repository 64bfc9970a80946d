// The embedded local cluster: `up` starts etcd, kube-apiserver, kube-controller-manager, a registry
// with test images and N hosts, idempotently; `down` stops all of it by recorded PID and leaves no
// mounts, bridges, iptables rules, processes or changed sysctls. Hosts come in two shapes:
//  - kubelet nodes (the default): each host is a Kubernetes node with a kubelet and its
//    containerd, plus Gantry's own containerd (nodes.ts); kube-scheduler and kube-proxy run too,
//    so the Helm chart's pods run as they would on any cluster;
//  - bare hosts (--no-kubelet): Gantry's containerd only, with a Node object registered for it,
//    like an edge box that runs the agent as a service with a kubeconfig.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { ensureBinaries } from './binaries.js';
import {
  apiServerURL,
  cleanUpKubeProxy,
  startApiserver as launchApiserver,
  startControllerManager,
  startEtcd,
  startKubeProxy,
  startScheduler,
} from './controlplane.js';
import { clusterDomain, startCoreDns } from './dns.js';
import {
  ensureLoopbackBridge,
  ensureLoopbackServices,
  inClusterDns,
  inClusterRegistry,
  removeLoopbackServices,
} from './network.js';
import {
  clusterPodCIDR,
  ensureNodeNamespace,
  nodeLayout,
  onNode,
  removeMountPoints,
  startKubelet,
  startNodeRuntime,
  stopKubelet,
  stopNode,
  type KubeletImageGc,
} from './nodes.js';
import { cleanUpRuntime, probeCheckpoint, runtimeVersion } from './runtime.js';
import { hostLayout, startHost, stopHost, writeRegistryHosts } from './hosts.js';
import { builderHosts, builderLabel, startBuildkitd, stopBuildkitd } from './buildkit.js';
import { ensureClientCert, ensurePki, writeKubeconfig } from './pki.js';
import { ensureDebianPackages, requireGo, requireRoot } from './prerequisites.js';
import { authRegistry, imageRef, pushTestImages, startRegistries } from './registry.js';
import { livePid, stopPidFile } from './proc.js';
import { type Progress, Steps } from './steps.js';
import {
  type LocalCluster,
  kubeconfigPath,
  localDir,
  readLocalCluster,
  stateFile,
  systemNamespace,
  type LocalHost,
} from './state.js';
import { versions } from './versions.js';

const layout = {
  dir: localDir,
  pids: path.join(localDir, 'pids'),
  logs: path.join(localDir, 'logs'),
  certsDir: path.join(localDir, 'certs.d'),
  ipForwardBackup: path.join(localDir, 'ip_forward.orig'),
};

const ipForward = '/proc/sys/net/ipv4/ip_forward';

export interface UpOptions {
  hosts: number;
  /** Kubelet nodes (default) or bare hosts. */
  kubelet?: boolean;
  out?: Progress;
}

/** Every pod bridge (nodes.ts names them kubebr<N>) and Gantry's (hosts.ts: gantrybr<N>), for iptables. */
const bridges = ['kubebr+', 'gantrybr+'];

export async function up(opts: UpOptions): Promise<LocalCluster> {
  const out = opts.out ?? ((l: string) => console.log(l));
  const kubelet = opts.kubelet ?? true;
  requireRoot();
  if (fs.existsSync(localDir) && !pidFiles().some((f) => livePid(f))) {
    // What a cluster that never stopped left behind (a machine restart, a killed run): its etcd
    // still holds objects from then, so it is removed rather than resumed.
    out(`${localDir} holds a local cluster that is no longer running: removing it first`);
    await down(out);
  }
  const running = readLocalCluster();
  if (running && running.kubelet !== kubelet) {
    throw new Error(
      `the local cluster runs ${running.kubelet ? 'with' : 'without'} kubelets; stop it first (npm run cluster:down)`,
    );
  }
  const steps = new Steps(kubelet ? 10 : 9, out);
  fs.mkdirSync(layout.pids, { recursive: true });
  fs.mkdirSync(layout.logs, { recursive: true });

  const bins = await steps.step('prerequisites: Debian packages, Go, pinned binaries', async (note) => {
    await ensureDebianPackages(note);
    await requireGo();
    return ensureBinaries(note);
  });

  const { pki, admin } = await steps.step('certificates and the admin kubeconfig', async () => {
    const pki = await ensurePki(path.join(localDir, 'pki'));
    const admin = await ensureClientCert(pki, 'admin', 'gantry-admin', ['system:masters']);
    writeKubeconfig(kubeconfigPath, apiServerURL, pki, admin, 'gantry-admin');
    return { pki, admin };
  });

  await steps.step(`etcd v${versions.etcd}`, () => startEtcd(layout, bins));
  await steps.step(`kube-apiserver v${versions.kubernetes} (RBAC, client certificates)`, () =>
    launchApiserver(layout, bins, pki, admin),
  );
  await steps.step(
    kubelet
      ? `kube-controller-manager and kube-scheduler v${versions.kubernetes}`
      : `kube-controller-manager v${versions.kubernetes} (no node lifecycle: no kubelets)`,
    async () => {
      await startControllerManager(layout, bins, pki, kubelet);
      if (kubelet) await startScheduler(layout, bins, pki);
    },
  );

  const images = await steps.step(
    'registries on 127.0.0.1:5000 (open) and :5001 (login) with test images',
    async () => {
      await startRegistries(path.join(localDir, 'registry'), layout.pids, layout.logs);
      return pushTestImages(path.join(layout.logs, 'images.log'));
    },
  );

  const hosts = await steps.step(
    `${opts.hosts} containerd v${versions.containerd} hosts and their Nodes`,
    async () => {
      recordIpForward();
      writeRegistryHosts(layout.certsDir);
      const files = { ...layout, pauseImage: imageRef('pause') };
      const started: LocalHost[] = [];
      for (let i = 1; i <= opts.hosts; i++) {
        const h = hostLayout(localDir, i);
        if (!kubelet) {
          // Before the CNI plugin makes it: the containers reach the cluster's DNS (network.ts).
          await ensureLoopbackBridge(h.bridge, `${h.gateway}/24`);
          started.push(await startHost(h, bins, files));
          continue;
        }
        const n = nodeLayout(h);
        await ensureNodeNamespace(n);
        // The kubelet's runtime first: it makes the node's bridge, whose address Gantry's listens on.
        await startNodeRuntime(n, bins, files);
        started.push(await startHost(h, bins, { ...files, node: onNode(n) }));
      }
      await stopExtraHosts(opts.hosts);
      await createNamespace(systemNamespace);
      // One registry address for every part of the cluster, pods included (network.ts).
      await ensureLoopbackServices(bridges);
      await reserveRegistryService();
      if (!kubelet) await registerNodes(started.map((h) => ({ name: h.name, podCIDR: h.podCIDR })));
      for (const host of builderHosts.filter((b) => started.some((h) => h.name === b))) {
        await startBuildkitd(host, bins, layout.logs);
      }
      return started;
    },
  );

  await steps.step(
    `CoreDNS v${versions.coredns} for ${clusterDomain} at ${inClusterDns.ip}:${inClusterDns.port}`,
    () => startCoreDns(layout, bins, pki),
  );

  if (kubelet) {
    await steps.step(`kubelets and kube-proxy v${versions.kubernetes}`, async (note) => {
      const files = { ...layout, pauseImage: imageRef('pause') };
      for (let i = 1; i <= opts.hosts; i++)
        await startKubelet(nodeLayout(hostLayout(localDir, i)), bins, pki, files);
      await startKubeProxy(layout, bins, pki, { hostname: 'host-1', clusterCIDR: clusterPodCIDR });
      await waitNodesReady(hosts.map((h) => h.name));
      note(
        `nodes Ready: ${hosts.map((h) => h.name).join(', ')}; pods reach the registry at ${inClusterRegistry.ip}:${inClusterRegistry.port}`,
      );
    });
  }

  await labelBuilderNodes(hosts.map((h) => h.name));

  const checkpoint = await steps.step('checkpoint/restore probe (CRIU through CRI)', async (note) => {
    const answer = await probeCheckpoint(
      hosts[0]!.criSocket,
      path.join(hostLayout(localDir, 1).dir, 'checkpoint-probe'),
    );
    note(
      answer.works
        ? `checkpoint/restore works: ${answer.detail}`
        : `checkpoint/restore does NOT work: ${answer.detail}`,
    );
    return answer;
  });

  const cluster: LocalCluster = {
    kubeconfig: kubeconfigPath,
    apiServerURL,
    registry: '127.0.0.1:5000',
    authRegistry,
    hosts,
    images,
    runtime: await runtimeVersion(hosts[0]!.criSocket),
    checkpoint,
    binDir: bins.binDir,
    kubelet,
    clusterRegistry: `${inClusterRegistry.ip}:${inClusterRegistry.port}`,
    dns: { ip: inClusterDns.ip, domain: clusterDomain },
  };
  fs.writeFileSync(stateFile, JSON.stringify(cluster, null, 2) + '\n');
  return cluster;
}

/** Remembers ip_forward before the first bridge (isGateway) turns it on, so down can restore it. */
function recordIpForward(): void {
  if (!fs.existsSync(layout.ipForwardBackup)) {
    fs.writeFileSync(layout.ipForwardBackup, fs.readFileSync(ipForward, 'utf8'));
  }
}

function hostIndexesRunning(): number[] {
  if (!fs.existsSync(layout.pids)) return [];
  return fs
    .readdirSync(layout.pids)
    .map((f) => /^containerd-host-(\d+)\.pid$/.exec(f)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number);
}

async function stopExtraHosts(wanted: number): Promise<void> {
  for (const i of hostIndexesRunning().filter((i) => i > wanted)) {
    const h = hostLayout(localDir, i);
    await cleanUpRuntime(h.socket).catch(() => undefined);
    await stopHost(h, layout.pids);
    await deleteNode(h.name);
  }
}

function hostByName(name: string) {
  const i = /^host-(\d+)$/.exec(name)?.[1];
  if (i === undefined) throw new Error(`no such host: ${name}`);
  return hostLayout(localDir, Number(i));
}

/**
 * Stops a host's containerd the way a crash or an upgrade would: its containers keep running
 * under their shims. For tests of what Gantry does while a runtime is away.
 */
export async function stopRuntime(hostName: string): Promise<void> {
  await stopPidFile(path.join(layout.pids, `containerd-${hostByName(hostName).name}.pid`), 15_000);
}

/** Starts a host's containerd again (after stopRuntime); it finds its running containers. */
export async function startRuntime(hostName: string): Promise<void> {
  const bins = await ensureBinaries(() => undefined);
  const h = hostByName(hostName);
  await startHost(h, bins, {
    ...layout,
    pauseImage: imageRef('pause'),
    node: readLocalCluster()?.kubelet ? onNode(nodeLayout(h)) : undefined,
  });
}

/**
 * Restarts a node's kubelet (its pods keep running), with other image garbage collection
 * thresholds if given: for tests of what a kubelet restart and its image GC do beside Gantry.
 */
export async function restartKubelet(hostName: string, imageGc?: KubeletImageGc): Promise<void> {
  const n = nodeLayout(hostByName(hostName));
  await stopKubelet(n, layout.pids);
  const bins = await ensureBinaries(() => undefined);
  const pki = await ensurePki(path.join(localDir, 'pki'));
  await startKubelet(n, bins, pki, { ...layout, pauseImage: imageRef('pause') }, imageGc);
}

/** The CRI socket of a node's kubelet runtime (not Gantry's), as seen from this machine. */
export function kubeletRuntimeSocket(hostName: string): string {
  return path.join(nodeLayout(hostByName(hostName)).runtimeDir, 'state', 'containerd.sock');
}

/**
 * Stops kube-apiserver as a crash or an upgrade would; etcd keeps every object. For tests of
 * clients riding out an apiserver restart. SIGKILL follows SIGTERM after 3 s: the apiserver stops
 * listening at once but can take 15 s and more to exit.
 */
export async function stopApiserver(): Promise<void> {
  await stopPidFile(path.join(layout.pids, 'kube-apiserver.pid'), 3_000);
}

/** Starts kube-apiserver again (after stopApiserver) with the same flags, and waits for /readyz. */
export async function startApiserver(): Promise<void> {
  const bins = await ensureBinaries(() => undefined);
  const pki = await ensurePki(path.join(localDir, 'pki'));
  const admin = await ensureClientCert(pki, 'admin', 'gantry-admin', ['system:masters']);
  await launchApiserver(layout, bins, pki, admin);
}

function adminClient(): k8s.CoreV1Api {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return kc.makeApiClient(k8s.CoreV1Api);
}

/** One core Node per host, so `kubectl cordon` and `kubectl get nodes` work as on a real cluster. */
async function registerNodes(hosts: { name: string; podCIDR: string }[]): Promise<void> {
  const api = adminClient();
  for (const h of hosts) {
    const body: k8s.V1Node = {
      metadata: {
        name: h.name,
        labels: {
          'kubernetes.io/hostname': h.name,
          'kubernetes.io/os': 'linux',
          'gantry.dev/local-cluster': 'true',
        },
      },
      spec: { podCIDR: h.podCIDR },
    };
    try {
      await api.createNode({ body });
    } catch (e) {
      if ((e as { code?: number }).code !== 409) throw e;
    }
  }
}

/** The builder hosts' Nodes get gantry.dev/builder=true, which the controller copies to their Hosts. */
async function labelBuilderNodes(hosts: string[]): Promise<void> {
  const api = adminClient();
  for (const name of builderHosts.filter((b) => hosts.includes(b))) {
    await api.patchNode(
      { name, body: { metadata: { labels: { [builderLabel.key]: builderLabel.value } } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
  }
}

async function createNamespace(name: string): Promise<void> {
  await adminClient()
    .createNamespace({ body: { metadata: { name } } })
    .catch((e: { code?: number }) => {
      if (e.code !== 409) throw e;
    });
}

/**
 * The registry's in-cluster address belongs to a Service of its own, so the apiserver never gives
 * it to another; network.ts answers for it (the registry listens on loopback only). The address is
 * in the range's static band, which dynamic allocation leaves alone while it has other addresses.
 */
async function reserveRegistryService(): Promise<void> {
  await createNamespace('gantry-local');
  const api = adminClient();
  // Looked for first: creating it again fails on its address (422, already allocated), not its name.
  const existing = await api
    .readNamespacedService({ namespace: 'gantry-local', name: 'registry' })
    .catch((e: { code?: number }) => {
      if (e.code !== 404) throw e;
    });
  if (existing) return;
  await api.createNamespacedService({
    namespace: 'gantry-local',
    body: {
      metadata: { name: 'registry' },
      spec: { clusterIP: inClusterRegistry.ip, ports: [{ port: inClusterRegistry.port, protocol: 'TCP' }] },
    },
  });
}

async function waitNodesReady(names: string[]): Promise<void> {
  const api = adminClient();
  const ready = async (name: string) => {
    const node = await api.readNode({ name }).catch(() => undefined);
    return node?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  };
  const deadline = Date.now() + 120_000;
  for (const name of names) {
    while (!(await ready(name))) {
      if (Date.now() > deadline) throw new Error(`Node ${name} did not become Ready (see the kubelet's log)`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

async function deleteNode(name: string): Promise<void> {
  await adminClient()
    .deleteNode({ name })
    .catch(() => undefined);
}

/** Lazily unmounts everything under dir, deepest first (netns and overlay mounts, shm...). */
function unmountUnder(dir: string, out: Progress): void {
  const mounts = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => m !== undefined && (m === dir || m.startsWith(dir + '/')))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) {
    const r = spawnSync('umount', ['-l', m]);
    if (r.status !== 0) out(`  could not unmount ${m}: ${r.stderr.toString().trim()}`);
  }
}

export async function down(out: Progress = (l) => console.log(l)): Promise<void> {
  requireRoot();
  if (!fs.existsSync(localDir)) {
    out('the local cluster is not up: nothing to stop');
    return;
  }
  const steps = new Steps(4, out);
  await steps.step('kubelets, containers, containerd hosts and bridges', async () => {
    // Gantry processes (controller, agents) first, so nothing recreates containers meanwhile.
    for (const f of pidFiles().filter((f) => /^(gantry-|agent-|controller)/.test(path.basename(f)))) {
      await stopPidFile(f);
    }
    for (const i of hostIndexesRunning()) await stopNode(nodeLayout(hostLayout(localDir, i)), layout.pids);
    for (const i of hostIndexesRunning()) {
      const h = hostLayout(localDir, i);
      if (livePid(path.join(layout.pids, `containerd-${h.name}.pid`))) {
        await cleanUpRuntime(h.socket).catch((e: Error) =>
          out(`  ${h.name}: CRI clean-up failed: ${e.message}`),
        );
      }
      await stopHost(h, layout.pids);
    }
    for (const host of builderHosts) await stopBuildkitd(host);
  });
  await steps.step('control plane and registry', async () => {
    const names = [
      'coredns',
      'kube-proxy',
      'kube-scheduler',
      'kube-controller-manager',
      'kube-apiserver',
      'etcd',
    ];
    for (const name of [...names, 'registry', 'registry-auth']) {
      await stopPidFile(path.join(layout.pids, `${name}.pid`));
    }
    // Anything else we started and recorded.
    for (const f of pidFiles()) await stopPidFile(f);
  });
  await steps.step('iptables rules, mounts and sysctls', async () => {
    const bins = await ensureBinaries(() => undefined);
    await cleanUpKubeProxy(bins);
    await removeLoopbackServices(bridges);
    unmountUnder(localDir, out);
    removeMountPoints();
    if (fs.existsSync(layout.ipForwardBackup)) {
      fs.writeFileSync(ipForward, fs.readFileSync(layout.ipForwardBackup, 'utf8'));
    }
  });
  await steps.step(`remove ${localDir}`, async () => {
    fs.rmSync(localDir, { recursive: true, force: true });
  });
}

function pidFiles(): string[] {
  if (!fs.existsSync(layout.pids)) return [];
  return fs.readdirSync(layout.pids).map((f) => path.join(layout.pids, f));
}

export function status(): { cluster?: LocalCluster; processes: { name: string; pid?: number }[] } {
  return {
    cluster: readLocalCluster(),
    processes: pidFiles().map((f) => ({ name: path.basename(f, '.pid'), pid: livePid(f) })),
  };
}
