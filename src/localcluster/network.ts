// How pods of the kubelet nodes reach what listens on this machine's loopback. The apiserver and
// the registry listen on 127.0.0.1 only, which a pod (in a network namespace of its own) cannot
// reach. So their in-cluster addresses are DNATed to loopback, for packets from the pod bridges
// (route_localnet on those bridges lets them in; nodes.ts sets it) and from this machine itself:
//   10.0.0.1:443   the `kubernetes` Service (the apiserver's serving certificate names it)
//   10.0.0.5:5000 the local registry, as every part of the cluster names it, pods included
//                  (the Service `registry` in gantry-local reserves the address; it has no
//                  endpoints: these rules answer for it). Bare hosts get the rules too.
//   <node IP>:<kubelet port>  each kubelet (the node's address is its pod bridge's: a Node may
//                  not have a loopback address), for the apiserver's logs and exec
//   10.244.1.1:9443  Gantry's aggregated API server (subresources.ts), for the apiserver: an
//                  APIService's endpoint may not be loopback either, so host-1's node address
//                  stands for it (on this machine whatever the hosts' shape: OUTPUT DNATs it)
// kube-proxy handles every other Service. Its own rules stay, and ours come first in a chain of
// their own, removed again by `removeLoopbackServices`.
import { hostLayout } from './hosts.js';
import { kubeletPorts, nodeLayout } from './nodes.js';
import { run } from './proc.js';

const chain = 'GANTRY-LOCAL-LOOPBACK';

export const inClusterApiserver = { ip: '10.0.0.1', port: 443 };
export const inClusterRegistry = { ip: '10.0.0.5', port: 5000 };
export const inClusterSubresources = { ip: '10.244.1.1', port: 9443 };

type LoopbackService = { dst: string; dport: string; to?: number };
const subresources: LoopbackService = {
  dst: `${inClusterSubresources.ip}/32`,
  dport: String(inClusterSubresources.port),
};

/** What the rules map: destination and port(s) -> the loopback port (unchanged when omitted). */
const loopbackServices: LoopbackService[] = [
  { dst: `${inClusterApiserver.ip}/32`, dport: String(inClusterApiserver.port), to: 6443 },
  { dst: `${inClusterRegistry.ip}/32`, dport: String(inClusterRegistry.port), to: 5000 },
  { dst: '10.244.0.0/16', dport: `${kubeletPorts.first}:${kubeletPorts.last}` },
  subresources,
];

/**
 * The address of the local cluster's host `name`, where its Containers' hostPorts are published.
 * Every host shares this machine's network namespace, so only an address of its own keeps two
 * hosts' same port apart: a kubelet node's is its Node's; a bare host has no other address of its
 * own than its Gantry bridge's.
 */
export function hostAddress(baseDir: string, name: string, kubelet: boolean): string {
  const index = Number(/^host-(\d+)$/.exec(name)?.[1]);
  if (!index) throw new Error(`no such host: ${name}`);
  const h = hostLayout(baseDir, index);
  return kubelet ? nodeLayout(h).nodeIP : h.gateway;
}

async function iptables(args: string[]): Promise<boolean> {
  return run('iptables', ['-w', '-t', 'nat', ...args]).then(
    () => true,
    () => false,
  );
}

/** Is the aggregated API server's rule in place (a cluster brought up before it existed lacks it)? */
export async function subresourcesRouted(): Promise<boolean> {
  return iptables(['-C', chain, ...dnatRule(subresources)]);
}

function dnatRule({ dst, dport, to }: LoopbackService): string[] {
  const target = `127.0.0.1${to === undefined ? '' : `:${to}`}`;
  return ['-d', dst, '-p', 'tcp', '--dport', dport, '-j', 'DNAT', '--to-destination', target];
}

/** Installs the DNAT rules (idempotent). */
export async function ensureLoopbackServices(podBridgePattern: string): Promise<void> {
  if (!(await iptables(['-L', chain, '-n']))) await iptables(['-N', chain]);
  await iptables(['-F', chain]);
  for (const service of loopbackServices) await iptables(['-A', chain, ...dnatRule(service)]);
  const jumps: [string, string[]][] = [
    ['PREROUTING', ['-i', podBridgePattern, '-j', chain]],
    ['OUTPUT', ['-j', chain]],
  ];
  for (const [hook, rule] of jumps) {
    // First in the hook, ahead of kube-proxy's KUBE-SERVICES.
    if (!(await iptables(['-C', hook, ...rule]))) await iptables(['-I', hook, '1', ...rule]);
  }
}

export async function removeLoopbackServices(podBridgePattern: string): Promise<void> {
  await iptables(['-D', 'PREROUTING', '-i', podBridgePattern, '-j', chain]);
  await iptables(['-D', 'OUTPUT', '-j', chain]);
  await iptables(['-F', chain]);
  await iptables(['-X', chain]);
}
