// How pods of the kubelet nodes and Gantry's containers reach what listens on this machine's
// loopback. The apiserver, the registry and the DNS server listen on 127.0.0.1 only, which a pod
// (in a network namespace of its own) cannot reach. So their in-cluster addresses are DNATed to
// loopback, for packets from the pod and Gantry bridges (route_localnet on those bridges lets them
// in; ensureLoopbackBridge sets it) and from this machine itself:
//   10.0.0.1:443   the `kubernetes` Service (the apiserver's serving certificate names it)
//   10.0.0.5:5000 the local registry, as every part of the cluster names it, pods included
//                  (the Service `registry` in gantry-local reserves the address; it has no
//                  endpoints: these rules answer for it). Bare hosts get the rules too.
//   10.0.0.10:53   the cluster's DNS (CoreDNS on 127.0.0.1:10053, dns.ts), udp and tcp, for the
//                  Service `kube-dns` in kube-system, reserved the same way
//   <node IP>:<kubelet port>  each kubelet (the node's address is its pod bridge's: a Node may
//                  not have a loopback address), for the apiserver's logs and exec
//   10.244.1.1:9443  Gantry's aggregated API server (subresources.ts), for the apiserver: an
//                  APIService's endpoint may not be loopback either, so host-1's node address
//                  stands for it (on this machine whatever the hosts' shape: OUTPUT DNATs it)
// kube-proxy handles every other Service. Its own rules stay, and ours come first in a chain of
// their own, removed again by `removeLoopbackServices`.
import fs from 'node:fs';
import { hostLayout } from './hosts.js';
import { nodeLayout } from './nodes.js';
import { run } from './proc.js';

const chain = 'GANTRY-LOCAL-LOOPBACK';

export const inClusterApiserver = { ip: '10.0.0.1', port: 443 };
export const inClusterRegistry = { ip: '10.0.0.5', port: 5000 };
export const inClusterSubresources = { ip: '10.244.1.1', port: 9443 };
/** The kubelets' ports, one per node (nodes.ts), routed from the node's address to loopback. */
export const kubeletPorts = { first: 10300, last: 10319 };
/** The `kube-dns` Service, as kubelets and agents name it (--cluster-dns), and where CoreDNS listens. */
export const inClusterDns = { ip: '10.0.0.10', port: 53, loopbackPort: 10053 };

type LoopbackService = { dst: string; dport: string; to?: number; protocols?: ('tcp' | 'udp')[] };
const subresources: LoopbackService = {
  dst: `${inClusterSubresources.ip}/32`,
  dport: String(inClusterSubresources.port),
};
const dns: LoopbackService = {
  dst: `${inClusterDns.ip}/32`,
  dport: String(inClusterDns.port),
  to: inClusterDns.loopbackPort,
  protocols: ['udp', 'tcp'],
};

/** What the rules map: destination and port(s) -> the loopback port (unchanged when omitted); tcp unless said. */
const loopbackServices: LoopbackService[] = [
  { dst: `${inClusterApiserver.ip}/32`, dport: String(inClusterApiserver.port), to: 6443 },
  { dst: `${inClusterRegistry.ip}/32`, dport: String(inClusterRegistry.port), to: 5000 },
  { dst: '10.244.0.0/16', dport: `${kubeletPorts.first}:${kubeletPorts.last}` },
  subresources,
  dns,
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

/** Are these rules all in place (a cluster brought up before one existed lacks it)? */
async function routed(service: LoopbackService): Promise<boolean> {
  for (const rule of dnatRules(service)) if (!(await iptables(['-C', chain, ...rule]))) return false;
  return true;
}

/** Is the aggregated API server's rule in place? */
export const subresourcesRouted = () => routed(subresources);

/** Are the DNS server's rules in place? */
export const dnsRouted = () => routed(dns);

function dnatRules({ dst, dport, to, protocols = ['tcp'] }: LoopbackService): string[][] {
  const target = `127.0.0.1${to === undefined ? '' : `:${to}`}`;
  return protocols.map((p) => [
    '-d',
    dst,
    '-p',
    p,
    '--dport',
    dport,
    '-j',
    'DNAT',
    '--to-destination',
    target,
  ]);
}

/** The hooks' jumps into the chain: from the bridges named (iptables patterns) and from this machine. */
function jumps(bridgePatterns: readonly string[]): [string, string[]][] {
  return [
    ...bridgePatterns.map((b): [string, string[]] => ['PREROUTING', ['-i', b, '-j', chain]]),
    ['OUTPUT', ['-j', chain]],
  ];
}

/** Installs the DNAT rules for packets from the bridges named (idempotent). */
export async function ensureLoopbackServices(bridgePatterns: readonly string[]): Promise<void> {
  if (!(await iptables(['-L', chain, '-n']))) await iptables(['-N', chain]);
  await iptables(['-F', chain]);
  for (const rule of loopbackServices.flatMap(dnatRules)) await iptables(['-A', chain, ...rule]);
  for (const [hook, rule] of jumps(bridgePatterns)) {
    // First in the hook, ahead of kube-proxy's KUBE-SERVICES.
    if (!(await iptables(['-C', hook, ...rule]))) await iptables(['-I', hook, '1', ...rule]);
  }
}

export async function removeLoopbackServices(bridgePatterns: readonly string[]): Promise<void> {
  for (const [hook, rule] of jumps(bridgePatterns)) await iptables(['-D', hook, ...rule]);
  await iptables(['-F', chain]);
  await iptables(['-X', chain]);
}

/**
 * A bridge with its gateway address, made before the CNI bridge plugin would make it (with the
 * first sandbox), so that its containers may reach this machine's loopback through the rules
 * above: packets arriving on a bridge for 127.0.0.1 are dropped unless route_localnet allows them.
 */
export async function ensureLoopbackBridge(bridge: string, gateway: string): Promise<void> {
  const exists = await run('ip', ['link', 'show', bridge]).then(
    () => true,
    () => false,
  );
  if (!exists) {
    await run('ip', ['link', 'add', bridge, 'type', 'bridge']);
    // The CNI bridge plugin (isGateway) would give it the same address with the first sandbox.
    await run('ip', ['addr', 'add', gateway, 'dev', bridge]);
  }
  await run('ip', ['link', 'set', bridge, 'up']);
  fs.writeFileSync(`/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, '1');
}
