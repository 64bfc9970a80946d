// The one place that pins what the local cluster is made of. Binaries are built from their
// Go modules (or, for CRIU, from Debian's source tarball) once per version and cached outside
// the work tree, so a later `cluster:up` takes seconds.
import os from 'node:os';
import path from 'node:path';

export const versions = {
  kubernetes: '1.34.4',
  etcd: '3.6.16',
  // 2.3.x: its CRI checkpoints and restores; 2.4 removed restore through CreateContainer.
  containerd: '2.3.7',
  helm: '3.22.0',
  // Cluster DNS: the version kubeadm installs with Kubernetes 1.34.
  coredns: '1.12.1',
  criu: '4.2.1',
  // kapply: the apply-and-wait engine (kstatus) under Flux's kustomize-controller and Config Sync.
  cliUtils: '0.37.2',
  // krew, kubectl's plugin manager: built on demand (ensureKrew), for the plugin's krew install test.
  krew: '0.4.3',
  // BuildKit (buildkitd and buildctl): builds Image.spec.build on the local cluster's builder hosts.
  buildkit: '0.34.2',
} as const;

export const cacheDir = process.env.GANTRY_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'gantry');

/** Where the binaries of one pinned component live once built. */
export function componentDir(name: keyof typeof versions): string {
  return path.join(cacheDir, `${name}-v${versions[name]}`);
}

/** CRIU's upstream source as Debian ships it (sid), checked by digest before building. */
export const criuSource = {
  file: `criu_${versions.criu}.orig.tar.xz`,
  debianVersion: `${versions.criu}-1`,
  sha256: '29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9',
};

/** Debian 12 packages the local cluster needs (CRIU's build dependencies bring its runtime libraries). */
export const debianPackages = [
  'runc',
  'containernetworking-plugins',
  'docker-registry',
  // htpasswd, for the registry that wants a login
  'apache2-utils',
  'skopeo',
  'buildah',
  'busybox-static',
  'openssl',
  'iproute2',
  'prometheus',
  'curl',
  // the plugin's zsh completion script is run by a real zsh in its test
  'zsh',
  'xz-utils',
  'libbsd-dev',
  'libcap-dev',
  'libgnutls28-dev',
  'libnet1-dev',
  'libnftables-dev',
  'libnl-3-dev',
  'libprotobuf-c-dev',
  'libprotobuf-dev',
  'pkgconf',
  'protobuf-c-compiler',
  'protobuf-compiler',
  'uuid-dev',
];
