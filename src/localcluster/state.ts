// What `cluster:up` leaves behind for the rest of the project (tests, quickstart, benchmarks):
// one JSON file describing the running local cluster.
import fs from 'node:fs';
import path from 'node:path';

/** Root of everything the local cluster writes at run time (not the binary cache). */
export const localDir = process.env.GANTRY_LOCAL_DIR ?? '/var/lib/gantry-local';
export const stateFile = path.join(localDir, 'cluster.json');
export const kubeconfigPath = path.join(localDir, 'kubeconfig');
/** Gantry's own namespace (leases, events about cluster-scoped objects), as the Helm chart creates it. */
export const systemNamespace = 'gantry-system';

export interface LocalHost {
  /** Host and core Node name, e.g. "host-1". */
  name: string;
  /** containerd's CRI socket (unix path, no scheme). */
  criSocket: string;
  /** Pod subnet of this host's CNI bridge. */
  podCIDR: string;
}

export interface LocalCluster {
  kubeconfig: string;
  apiServerURL: string;
  /** 127.0.0.1:5000 */
  registry: string;
  /** A registry that wants a login, with a copy of the web image. */
  authRegistry: { address: string; username: string; password: string; image: string };
  hosts: LocalHost[];
  /** Test images in the local registry, by role. */
  images: { web: string; web2: string; counter: string; pause: string };
  runtime: { name: string; version: string };
  checkpoint: { works: boolean; detail: string };
  /** Directory with kubectl, helm, criu... matching the cluster's versions; put it first on PATH. */
  binDir: string;
  /** The hosts are kubelet nodes (pods run there), not bare containerd hosts. */
  kubelet: boolean;
  /**
   * The registry as every part of the cluster reaches it, pods included (127.0.0.1 inside a pod is
   * the pod itself): name images in Gantry objects this way.
   */
  clusterRegistry: string;
  /**
   * The cluster's DNS (CoreDNS behind the `kube-dns` Service) and its domain, as kubelets and
   * agents are given them; absent in the description of a cluster brought up before it had one.
   */
  dns?: { ip: string; domain: string };
}

export function readLocalCluster(): LocalCluster | undefined {
  try {
    return JSON.parse(fs.readFileSync(stateFile, 'utf8')) as LocalCluster;
  } catch {
    return undefined;
  }
}
