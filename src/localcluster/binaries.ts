// Builds the pinned binaries once and caches them by version (see versions.ts). Each build
// writes into a fresh directory and marks it complete last, so an interrupted build is redone.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cacheDir, componentDir, criuSource, versions } from './versions.js';
import { run } from './proc.js';

export interface Binaries {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kubelet: string;
  kubeProxy: string;
  kubectl: string;
  containerd: string;
  /** Directory holding containerd, its shim and ctr; goes first on containerd's PATH. */
  containerdDir: string;
  helm: string;
  kapply: string;
  coredns: string;
  /** Directory holding criu; containerd 2.x finds criu on its PATH. */
  criuDir: string;
  /** BuildKit's daemon (one per builder host) and client (the builder agent runs it). */
  buildkitd: string;
  buildctl: string;
  /** One directory with links to all of the above, for PATH in tests and scripts. */
  binDir: string;
}

const goEnv = {
  ...process.env,
  CGO_ENABLED: '0',
  GOTOOLCHAIN: 'local',
  GOFLAGS: '-mod=mod',
};

function isBuilt(name: keyof typeof versions): boolean {
  const dir = componentDir(name);
  if (!fs.existsSync(path.join(dir, '.complete'))) return false;
  return name !== 'kubernetes' || kubernetesCommands.every((c) => fs.existsSync(path.join(dir, c)));
}

function logFile(name: string): string {
  fs.mkdirSync(path.join(cacheDir, 'logs'), { recursive: true });
  return path.join(cacheDir, 'logs', `build-${name}.log`);
}

/** A throwaway Go module to build a tool whose own go.mod forbids `go install` (replace directives). */
function wrapperModule(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `gantry-build-${name}-`));
  fs.writeFileSync(path.join(dir, 'go.mod'), `module local.build/${name}\n\ngo 1.24\n`);
  return dir;
}

async function buildEtcd(out: string): Promise<void> {
  const v = versions.etcd;
  const dir = wrapperModule('etcd');
  const log = logFile('etcd');
  await run('go', ['get', `go.etcd.io/etcd/server/v3@v${v}`], { cwd: dir, env: goEnv, logFile: log });
  // The server module's root package is etcd's main.
  const bin = path.join(out, 'etcd');
  await run('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', bin, 'go.etcd.io/etcd/server/v3'], {
    cwd: dir,
    env: goEnv,
    logFile: log,
  });
  fs.rmSync(dir, { recursive: true, force: true });
}

/** The Kubernetes programs the local cluster runs; a cache missing one of them is rebuilt. */
const kubernetesCommands = [
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kubelet',
  'kube-proxy',
  'kubectl',
];

async function buildKubernetes(out: string): Promise<void> {
  const v = versions.kubernetes;
  const minor = v.split('.')[1];
  const dir = wrapperModule('kubernetes');
  const log = logFile('kubernetes');
  // k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging;
  // replaces in a dependency are ignored, so pin each to its published v0.<minor>.<patch>.
  const info = JSON.parse(
    await run('go', ['mod', 'download', '-json', `k8s.io/kubernetes@v${v}`], { cwd: dir, env: goEnv }),
  ) as { GoMod: string };
  const staging = [...fs.readFileSync(info.GoMod, 'utf8').matchAll(/^\s*(k8s\.io\/\S+) => \.\/staging\//gm)];
  for (const [, mod] of staging) {
    await run('go', ['mod', 'edit', `-replace=${mod}=${mod}@v0.${v.slice(2)}`], { cwd: dir, env: goEnv });
  }
  const cmds = kubernetesCommands.map((c) => `k8s.io/kubernetes/cmd/${c}`);
  await run('go', ['get', ...cmds.map((c) => `${c}@v${v}`)], { cwd: dir, env: goEnv, logFile: log });
  const ldflags = [
    '-s -w',
    ...['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version'].flatMap((pkg) => [
      `-X ${pkg}.gitVersion=v${v}`,
      `-X ${pkg}.gitMajor=1`,
      `-X ${pkg}.gitMinor=${minor}`,
    ]),
  ].join(' ');
  await run(
    'go',
    [
      'build',
      '-trimpath',
      '-tags=selinux,notest,grpcnotrace',
      `-ldflags=${ldflags}`,
      '-o',
      out + '/',
      ...cmds,
    ],
    { cwd: dir, env: goEnv, logFile: log },
  );
  fs.rmSync(dir, { recursive: true, force: true });
}

async function buildContainerd(out: string): Promise<void> {
  const v = versions.containerd;
  const mod = 'github.com/containerd/containerd/v2';
  const dir = wrapperModule('containerd');
  const log = logFile('containerd');
  await run('go', ['get', `${mod}@v${v}`], { cwd: dir, env: goEnv, logFile: log });
  const cmds = ['containerd', 'containerd-shim-runc-v2', 'ctr'].map((c) => `${mod}/cmd/${c}`);
  await run(
    'go',
    [
      'build',
      '-trimpath',
      '-tags=no_btrfs',
      `-ldflags=-s -w -X ${mod}/version.Version=v${v}`,
      '-o',
      out + '/',
      ...cmds,
    ],
    { cwd: dir, env: goEnv, logFile: log },
  );
  fs.rmSync(dir, { recursive: true, force: true });
}

async function buildHelm(out: string): Promise<void> {
  await run('go', ['install', '-ldflags=-s -w', `helm.sh/helm/v3/cmd/helm@v${versions.helm}`], {
    env: { ...goEnv, GOBIN: out, GOFLAGS: '' },
    logFile: logFile('helm'),
  });
}

/** CoreDNS with its default plugins (its go.mod has no replace directives). */
async function buildCoreDns(out: string): Promise<void> {
  await run('go', ['install', '-ldflags=-s -w', `github.com/coredns/coredns@v${versions.coredns}`], {
    env: { ...goEnv, GOBIN: out, GOFLAGS: '' },
    logFile: logFile('coredns'),
  });
}

/** cli-utils' kapply (its go.mod has replace directives, so a wrapper module). */
async function buildCliUtils(out: string): Promise<void> {
  const dir = wrapperModule('cli-utils');
  const log = logFile('cli-utils');
  await run('go', ['get', `sigs.k8s.io/cli-utils@v${versions.cliUtils}`], {
    cwd: dir,
    env: goEnv,
    logFile: log,
  });
  await run(
    'go',
    ['build', '-trimpath', '-ldflags=-s -w', '-o', path.join(out, 'kapply'), 'sigs.k8s.io/cli-utils/cmd'],
    {
      cwd: dir,
      env: goEnv,
      logFile: log,
    },
  );
  fs.rmSync(dir, { recursive: true, force: true });
}

/** krew, kubectl's plugin manager. */
async function buildKrew(out: string): Promise<void> {
  await run('go', ['install', '-ldflags=-s -w', `sigs.k8s.io/krew/cmd/krew@v${versions.krew}`], {
    env: { ...goEnv, GOBIN: out, GOFLAGS: '' },
    logFile: logFile('krew'),
  });
}

/**
 * BuildKit's daemon and client, built inside its own module (its go.mod has exclude directives,
 * which `go install` and a wrapper module would not honour) with its version package stamped.
 */
async function buildBuildkit(out: string): Promise<void> {
  const mod = 'github.com/moby/buildkit';
  const log = logFile('buildkit');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-build-buildkit-'));
  const info = JSON.parse(
    await run('go', ['mod', 'download', '-json', `${mod}@v${versions.buildkit}`], { cwd: dir, env: goEnv }),
  ) as { Dir: string };
  await run(
    'go',
    [
      'build',
      '-trimpath',
      `-ldflags=-s -w -X ${mod}/version.Version=v${versions.buildkit}`,
      '-o',
      out + '/',
      './cmd/buildkitd',
      './cmd/buildctl',
    ],
    { cwd: info.Dir, env: { ...goEnv, GOFLAGS: '-mod=readonly' }, logFile: log },
  );
  fs.rmSync(dir, { recursive: true, force: true });
}

/** CRIU's source comes from Debian's newer suite (its own apt config, leaving the system's alone). */
async function buildCriu(out: string): Promise<void> {
  const log = logFile('criu');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-build-criu-'));
  const tarball = path.join(cacheDir, 'sources', criuSource.file);
  if (!fs.existsSync(tarball)) {
    const lists = path.join(work, 'lists');
    fs.mkdirSync(path.join(lists, 'partial'), { recursive: true });
    const sources = fs.readFileSync('/etc/apt/sources.list.d/debian.sources', 'utf8');
    const mirror = /^URIs:\s*(\S+)/m.exec(sources)?.[1] ?? 'http://deb.debian.org/debian';
    fs.writeFileSync(
      path.join(work, 'sources.list'),
      `deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror} sid main\n`,
    );
    const aptOpts = [
      `-o=Dir::Etc::SourceList=${work}/sources.list`,
      '-o=Dir::Etc::SourceParts=/dev/null',
      `-o=Dir::State::Lists=${lists}`,
    ];
    await run('apt-get', [...aptOpts, 'update'], { logFile: log });
    // Only the orig tarball is needed; the Debian packaging tarball may 404 (apt then exits 100).
    await run('apt-get', [...aptOpts, 'source', '--download-only', `criu=${criuSource.debianVersion}`], {
      cwd: work,
      logFile: log,
    }).catch(() => undefined);
    const fetched = path.join(work, criuSource.file);
    if (!fs.existsSync(fetched)) throw new Error(`could not download ${criuSource.file} (see ${log})`);
    fs.mkdirSync(path.dirname(tarball), { recursive: true });
    fs.copyFileSync(fetched, tarball);
  }
  const sum = (await run('sha256sum', [tarball])).split(' ')[0];
  if (sum !== criuSource.sha256) {
    fs.rmSync(tarball);
    throw new Error(`${criuSource.file} has sha256 ${sum}, expected ${criuSource.sha256}`);
  }
  const src = path.join(work, 'src');
  fs.mkdirSync(src);
  await run('tar', ['-C', src, '--strip-components=1', '-xJf', tarball]);
  await run('make', ['-j', String(os.availableParallelism()), 'criu'], { cwd: src, logFile: log });
  fs.copyFileSync(path.join(src, 'criu', 'criu'), path.join(out, 'criu'));
  fs.chmodSync(path.join(out, 'criu'), 0o755);
  fs.rmSync(work, { recursive: true, force: true });
}

const builds: Record<
  keyof typeof versions,
  { build: (out: string) => Promise<void>; takes: string; onDemand?: boolean }
> = {
  etcd: { build: buildEtcd, takes: '1-3 minutes' },
  kubernetes: { build: buildKubernetes, takes: '10-20 minutes' },
  containerd: { build: buildContainerd, takes: '3-5 minutes' },
  helm: { build: buildHelm, takes: '2-4 minutes' },
  coredns: { build: buildCoreDns, takes: '2-4 minutes' },
  criu: { build: buildCriu, takes: 'about a minute' },
  cliUtils: { build: buildCliUtils, takes: 'about a minute' },
  krew: { build: buildKrew, takes: 'about a minute', onDemand: true },
  buildkit: { build: buildBuildkit, takes: '3-6 minutes' },
};

/** Builds one component unless it is cached; its directory. */
async function ensureBuilt(name: keyof typeof versions, progress: (line: string) => void): Promise<string> {
  const out = componentDir(name);
  if (isBuilt(name)) return out;
  progress(
    `building ${name} v${versions[name]} (first run only, ${builds[name].takes}; log: ${logFile(name)})`,
  );
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  await builds[name].build(out);
  fs.writeFileSync(path.join(out, '.complete'), new Date().toISOString() + '\n');
  return out;
}

/** krew (not part of the local cluster: built the first time something asks), linked into the bin directory too. */
export async function ensureKrew(progress: (line: string) => void): Promise<string> {
  const krew = path.join(await ensureBuilt('krew', progress), 'krew');
  const link = path.join(cacheDir, 'bin', 'krew');
  fs.mkdirSync(path.dirname(link), { recursive: true });
  fs.rmSync(link, { force: true });
  fs.symlinkSync(krew, link);
  return krew;
}

/** Builds what is not cached yet, one component at a time (each uses every core). */
export async function ensureBinaries(progress: (line: string) => void): Promise<Binaries> {
  for (const name of Object.keys(builds) as (keyof typeof versions)[]) {
    if (!builds[name].onDemand) await ensureBuilt(name, progress);
  }
  const k8s = componentDir('kubernetes');
  const bins: Binaries = {
    etcd: path.join(componentDir('etcd'), 'etcd'),
    kubeApiserver: path.join(k8s, 'kube-apiserver'),
    kubeControllerManager: path.join(k8s, 'kube-controller-manager'),
    kubeScheduler: path.join(k8s, 'kube-scheduler'),
    kubelet: path.join(k8s, 'kubelet'),
    kubeProxy: path.join(k8s, 'kube-proxy'),
    kubectl: path.join(k8s, 'kubectl'),
    containerd: path.join(componentDir('containerd'), 'containerd'),
    containerdDir: componentDir('containerd'),
    helm: path.join(componentDir('helm'), 'helm'),
    kapply: path.join(componentDir('cliUtils'), 'kapply'),
    coredns: path.join(componentDir('coredns'), 'coredns'),
    criuDir: componentDir('criu'),
    buildkitd: path.join(componentDir('buildkit'), 'buildkitd'),
    buildctl: path.join(componentDir('buildkit'), 'buildctl'),
    binDir: path.join(cacheDir, 'bin'),
  };
  linkBinDir(bins);
  return bins;
}

function linkBinDir(b: Binaries): void {
  fs.mkdirSync(b.binDir, { recursive: true });
  const targets = [
    b.etcd,
    b.kubeApiserver,
    b.kubeControllerManager,
    b.kubeScheduler,
    b.kubelet,
    b.kubeProxy,
    b.kubectl,
    b.containerd,
    path.join(b.containerdDir, 'ctr'),
    b.helm,
    b.kapply,
    b.coredns,
    path.join(b.criuDir, 'criu'),
    b.buildkitd,
    b.buildctl,
  ];
  for (const t of targets) {
    const link = path.join(b.binDir, path.basename(t));
    fs.rmSync(link, { force: true });
    fs.symlinkSync(t, link);
  }
}
