// Kubelet nodes: a host of the local cluster made into a real Kubernetes node. Each node gets a
// mount namespace of its own in which the well-known node paths (/var/lib/kubelet,
// /run/containerd, /var/lib/gantry, ...) are bind mounts of that host's directories, so several
// nodes share this machine without sharing files, and the Helm chart's hostPath defaults work on
// every node as they would on a machine of its own. Networks are shared (one kernel, one routing
// table): each node's pods get a bridge and subnet of their own.
//
// A node runs two containerds, as the chart expects of a kubelet node: the kubelet's (for pods)
// and Gantry's own (the host's containerd of hosts.ts, for Gantry's containers), because the
// kubelet removes every sandbox on its runtime that no Pod owns. Both use the node's CNI
// configuration, so pods and Gantry's containers share the node's pod network.
import fs from 'node:fs';
import path from 'node:path';
import type { Binaries } from './binaries.js';
import { apiServerURL } from './controlplane.js';
import { containerdConfig, removeLeftovers, type HostLayout, type HostOnNode } from './hosts.js';
import { type Pki, ensureClientCert, writeKubeconfig } from './pki.js';
import { livePid, run, startDaemon, stopPid, waitFor } from './proc.js';
import { cleanUpRuntime } from './runtime.js';
import { clusterDomain } from './dns.js';
import { ensureLoopbackBridge, inClusterDns, kubeletPorts } from './network.js';

/** Where things are on a kubelet node, as the chart's defaults name them (charts/gantry/values.yaml). */
export const nodePaths = {
  /** The kubelet's containerd. */
  kubeletRuntimeSocket: '/run/containerd/containerd.sock',
  /** Gantry's own containerd: its socket's directory, and its root (read for image GC). */
  gantryRuntimeDir: '/run/gantry/containerd',
  gantryRuntimeRoot: '/var/lib/gantry/containerd',
  /** The agent's state directory: container logs and checkpoint archives. */
  agentStateDir: '/var/lib/gantry/agent',
};

export interface NodeLayout {
  host: HostLayout;
  /** The bind-mounted file that keeps the node's mount namespace alive. */
  mountNamespace: string;
  /** The kubelet's containerd: config, root, state, CNI. */
  runtimeDir: string;
  kubeletDir: string;
  bridge: string;
  podCIDR: string;
  /** The node's address: its pod bridge's (a Node's address may not be loopback). */
  nodeIP: string;
  kubeletPort: number;
  healthzPort: number;
}

export function nodeLayout(h: HostLayout): NodeLayout {
  const dir = path.join(h.dir, 'node');
  return {
    host: h,
    mountNamespace: path.join(path.dirname(h.dir), '..', 'namespaces', h.name),
    runtimeDir: path.join(dir, 'containerd'),
    kubeletDir: path.join(dir, 'kubelet'),
    bridge: `kubebr${h.index}`,
    podCIDR: `10.244.${h.index}.0/24`,
    nodeIP: `10.244.${h.index}.1`,
    kubeletPort: kubeletPorts.first + h.index,
    healthzPort: 10320 + h.index,
  };
}

/** The whole pod network, for kube-proxy's --cluster-cidr. */
export const clusterPodCIDR = '10.244.0.0/16';

/** Bind mounts of the node's namespace: node path -> host directory. */
function bindMounts(n: NodeLayout): [string, string][] {
  return [
    ['/run/containerd', path.join(n.runtimeDir, 'state')],
    ['/var/lib/containerd', path.join(n.runtimeDir, 'root')],
    ['/var/lib/kubelet', n.kubeletDir],
    ['/var/log/pods', path.join(n.kubeletDir, '..', 'log', 'pods')],
    ['/var/log/containers', path.join(n.kubeletDir, '..', 'log', 'containers')],
    [nodePaths.gantryRuntimeDir, path.dirname(n.host.socket)],
    [nodePaths.gantryRuntimeRoot, path.join(n.host.dir, 'root')],
    [nodePaths.agentStateDir, path.join(n.host.dir, 'agent')],
  ];
}

/** Mount points the nodes need on this machine; removed again by `removeMountPoints` when empty. */
export function mountPoints(): string[] {
  return [
    '/run/containerd',
    '/var/lib/containerd',
    '/var/lib/kubelet',
    '/var/log/pods',
    '/var/log/containers',
    nodePaths.gantryRuntimeDir,
    nodePaths.gantryRuntimeRoot,
    nodePaths.agentStateDir,
  ];
}

/** Runs `cmd` inside the node's mount namespace (nsenter execs it: the PID stays the program's). */
export function inNode(n: NodeLayout, cmd: string, args: string[]): [string, string[]] {
  return ['nsenter', [`--mount=${n.mountNamespace}`, '--', cmd, ...args]];
}

/** How Gantry's containerd runs on this node (hosts.ts startHost). */
export function onNode(n: NodeLayout): HostOnNode {
  return {
    within: (cmd, args) => inNode(n, cmd, args),
    address: n.nodeIP,
    cniDir: cniDir(n),
    podCIDR: n.podCIDR,
  };
}

/** The node's CNI configuration, as a network plugin would write it (/etc/cni/net.d on a real node). */
function cniDir(n: NodeLayout): string {
  return path.join(n.runtimeDir, 'cni');
}

function namespaceAlive(n: NodeLayout): boolean {
  // A live namespace file is an nsfs mount; a dead one is an empty regular file.
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${n.mountNamespace} `);
}

/**
 * The node's mount namespace: a slave of this machine's (so it sees later mounts, such as the
 * registry's data, but keeps its own: containers' root filesystems, the kubelet's volumes).
 */
export async function ensureNodeNamespace(n: NodeLayout): Promise<void> {
  if (namespaceAlive(n)) return;
  for (const [nodePath, hostDir] of bindMounts(n)) {
    fs.mkdirSync(nodePath, { recursive: true });
    fs.mkdirSync(hostDir, { recursive: true });
  }
  fs.mkdirSync(path.dirname(n.mountNamespace), { recursive: true });
  fs.writeFileSync(n.mountNamespace, '');
  await run('unshare', [`--mount=${n.mountNamespace}`, '--propagation', 'slave', 'true']);
  for (const [nodePath, hostDir] of bindMounts(n)) {
    const [cmd, args] = inNode(n, 'mount', ['--bind', hostDir, nodePath]);
    await run(cmd, args);
  }
}

/** Removes the mount points `ensureNodeNamespace` made on this machine, those still empty. */
export function removeMountPoints(): void {
  for (const dir of mountPoints()) {
    // Deepest first up to the top directory made for it; a directory with files stays.
    for (
      let d = dir;
      d !== '/' && d !== '/run' && d !== '/var/lib' && d !== '/var/log';
      d = path.dirname(d)
    ) {
      try {
        fs.rmdirSync(d);
      } catch {
        break;
      }
    }
  }
}

function cniConfig(n: NodeLayout): string {
  return JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: `kube-${n.host.name}`,
      plugins: [
        {
          type: 'bridge',
          bridge: n.bridge,
          isGateway: true,
          ipMasq: false,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: n.podCIDR }]],
            routes: [{ dst: '0.0.0.0/0' }],
            dataDir: path.join(n.runtimeDir, 'ipam'),
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  );
}

/** The pod bridge, before the CNI plugin would make it: pods reach the apiserver through the `kubernetes` Service. */
async function ensureBridge(n: NodeLayout): Promise<void> {
  await ensureLoopbackBridge(n.bridge, `${n.nodeIP}/24`);
}

export interface NodeFiles {
  pids: string;
  logs: string;
  certsDir: string;
  pauseImage: string;
}

/** The kubelet's containerd, inside the node's namespace. */
export async function startNodeRuntime(n: NodeLayout, bins: Binaries, f: NodeFiles): Promise<void> {
  const pidFile = path.join(f.pids, `node-containerd-${n.host.name}.pid`);
  const logFile = path.join(f.logs, `node-containerd-${n.host.name}.log`);
  await ensureBridge(n);
  if (livePid(pidFile)) return;
  fs.mkdirSync(cniDir(n), { recursive: true });
  fs.writeFileSync(path.join(cniDir(n), '10-kube.conflist'), cniConfig(n));
  const config = path.join(n.runtimeDir, 'config.toml');
  fs.writeFileSync(
    config,
    containerdConfig({
      owner: `the kubelet's containerd of ${n.host.name}`,
      root: '/var/lib/containerd',
      state: '/run/containerd',
      socket: nodePaths.kubeletRuntimeSocket,
      cniDir: cniDir(n),
      certsDir: f.certsDir,
      pauseImage: f.pauseImage,
    }),
  );
  const socket = path.join(n.runtimeDir, 'state', 'containerd.sock');
  fs.rmSync(socket, { force: true });
  const env = { ...process.env, PATH: `${bins.containerdDir}:${process.env.PATH}` };
  const [cmd, args] = inNode(n, bins.containerd, ['--config', config]);
  const pid = startDaemon(cmd, args, { pidFile, logFile }, { env });
  await waitFor(`the kubelet's containerd of ${n.host.name}`, () => fs.existsSync(socket), {
    pid,
    logFile,
    timeoutMs: 30_000,
  });
}

function kubeletConfig(n: NodeLayout, pki: Pki, imageGc: KubeletImageGc): string {
  return JSON.stringify(
    {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      // Servers here listen on loopback only; the apiserver reaches the kubelet at the node's
      // address, which network.ts routes to loopback.
      address: '127.0.0.1',
      port: n.kubeletPort,
      healthzBindAddress: '127.0.0.1',
      healthzPort: n.healthzPort,
      readOnlyPort: 0,
      authentication: {
        anonymous: { enabled: false },
        webhook: { enabled: true },
        x509: { clientCAFile: pki.caCert },
      },
      authorization: { mode: 'Webhook' },
      containerRuntimeEndpoint: `unix://${nodePaths.kubeletRuntimeSocket}`,
      // These machines boot cgroup v1 without systemd as PID 1, and several kubelets share them.
      cgroupDriver: 'cgroupfs',
      cgroupsPerQOS: false,
      enforceNodeAllocatable: [],
      failSwapOn: false,
      // Pods resolve Services through the cluster's DNS (dns.ts).
      clusterDNS: [inClusterDns.ip],
      clusterDomain,
      serializeImagePulls: false,
      imageGCHighThresholdPercent: imageGc.highPercent,
      imageGCLowThresholdPercent: imageGc.lowPercent,
      imageMinimumGCAge: '0s',
      // The disk is shared by every node here: evict only when it is really full.
      evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '2%', 'imagefs.available': '2%' },
      maxPods: 60,
    },
    null,
    2,
  );
}

/** The kubelet's image garbage collection thresholds (tests lower them to see it act). */
export interface KubeletImageGc {
  highPercent: number;
  lowPercent: number;
}

export async function startKubelet(
  n: NodeLayout,
  bins: Binaries,
  pki: Pki,
  f: NodeFiles,
  imageGc: KubeletImageGc = { highPercent: 85, lowPercent: 80 },
): Promise<void> {
  const name = n.host.name;
  const pidFile = path.join(f.pids, `kubelet-${name}.pid`);
  const logFile = path.join(f.logs, `kubelet-${name}.log`);
  const dir = path.join(n.kubeletDir, '..', 'kubelet-config');
  const config = path.join(dir, 'config.json');
  const wanted = kubeletConfig(n, pki, imageGc);
  if (livePid(pidFile)) {
    if (fs.existsSync(config) && fs.readFileSync(config, 'utf8') === wanted) return;
    // Started with another configuration (an older checkout's): restarted with this one; its pods keep running.
    await stopKubelet(n, f.pids);
  }
  const cert = await ensureClientCert(pki, `kubelet-${name}`, `system:node:${name}`, ['system:nodes']);
  fs.mkdirSync(dir, { recursive: true });
  const kubeconfig = path.join(dir, 'kubeconfig');
  writeKubeconfig(kubeconfig, apiServerURL, pki, cert, `system:node:${name}`);
  fs.writeFileSync(config, wanted);
  const [cmd, args] = inNode(n, bins.kubelet, [
    `--config=${config}`,
    `--kubeconfig=${kubeconfig}`,
    `--hostname-override=${name}`,
    `--node-ip=${n.nodeIP}`,
    '--node-labels=gantry.dev/local-cluster=true',
    '--v=1',
  ]);
  const pid = startDaemon(cmd, args, { pidFile, logFile });
  await waitFor(
    `the kubelet of ${name} to answer /healthz`,
    () =>
      fetch(`http://127.0.0.1:${n.healthzPort}/healthz`)
        .then((r) => r.ok)
        .catch(() => false),
    { pid, logFile, timeoutMs: 60_000 },
  );
}

/** Stops the kubelet (tests restart it to see what a kubelet restart does). */
export async function stopKubelet(n: NodeLayout, pids: string): Promise<void> {
  const pidFile = path.join(pids, `kubelet-${n.host.name}.pid`);
  const pid = livePid(pidFile);
  if (pid !== undefined) await stopPid(pid, 15_000);
  fs.rmSync(pidFile, { force: true });
}

/**
 * Stops a node: its kubelet, its pods (through the kubelet's runtime, then runc for anything
 * left), its containerd and its bridge. Gantry's containerd is stopped by hosts.ts.
 */
export async function stopNode(n: NodeLayout, pids: string): Promise<void> {
  await stopKubelet(n, pids);
  const pidFile = path.join(pids, `node-containerd-${n.host.name}.pid`);
  const state = path.join(n.runtimeDir, 'state');
  const pid = livePid(pidFile);
  if (pid !== undefined) {
    await cleanUpRuntime(path.join(state, 'containerd.sock')).catch(() => undefined);
    await stopPid(pid, 15_000);
  }
  fs.rmSync(pidFile, { force: true });
  // runc's root is containerd's default, under its state directory.
  await removeLeftovers({ stateDir: state, runcRoot: path.join(state, 'runc') });
  await run('ip', ['link', 'del', n.bridge]).catch(() => undefined);
}
