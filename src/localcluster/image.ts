// Gantry's own image, built here the way a user builds it: the repository's Dockerfile, with
// buildah. No outside registry can be pulled from, so the Dockerfile's two bases (its BUILD_IMAGE
// and RUN_IMAGE build arguments) are assembled from this machine first:
//  - a build base like node:20-bookworm-slim: this machine's node and npm in /usr/local, their
//    libraries, busybox-static for /bin/sh and the tools npm scripts call, CA certificates;
//  - a run base like distroless nodejs20-debian12:nonroot: node at /nodejs/bin/node, its
//    libraries, /etc/passwd and /etc/group with nonroot (65532), CA certificates, and no shell
//    or package manager.
// Each base is an OCI layout in the cache named by a hash of what it is made from; the Gantry
// image is one too, named by a hash of the build's inputs (the Dockerfile, .dockerignore, what
// the Dockerfile copies from the context, the bases), so an unchanged tree builds nothing.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  budToLayout,
  buildahStorage,
  imagesDir,
  layoutDigest,
  layoutExists,
  linkSharedBlobs,
  storageRef,
} from './buildah.js';
import { PrerequisiteError } from './prerequisites.js';
import { run, succeeds } from './proc.js';
import { registryAddress } from './registry.js';
import { type Progress, Steps } from './steps.js';
import { cacheDir } from './versions.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Where `npm run image:build` pushes: 127.0.0.1:5000/gantry:<version>-<input hash>. */
export const gantryRepository = `${registryAddress}/gantry`;

/** buildah's and skopeo's output; a failure names it. */
export const imageBuildLog = path.join(cacheDir, 'logs', 'image-build.log');

/** Changes every key: bump it when a recipe changes in a way its inputs do not show. */
const recipeVersion = 1;

const busybox = '/bin/busybox';
/** Debian's Mozilla CA certificates (ca-certificates), the set distroless ships. */
const mozillaCerts = '/usr/share/ca-certificates/mozilla';
/** This machine's trust store; it may hold a local CA that the way to the npm registry needs. */
const hostCaBundle = '/etc/ssl/certs/ca-certificates.crt';
const caBundle = '/etc/ssl/certs/ca-certificates.crt';
const defaultPath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

// ---------------------------------------------------------------------------------------------
// The bases: a list of files, each from this machine or written here, and the image config.

type Entry =
  | { kind: 'file'; from: string; mode?: number }
  | { kind: 'text'; text: string; mode?: number }
  | { kind: 'link'; target: string }
  | { kind: 'dir'; mode: number; owner?: number }
  /** A directory copied whole (symlinks kept as they are). */
  | { kind: 'tree'; from: string };

interface Base {
  /** build-base or run-base: the layout's name and the image's in buildah's storage. */
  name: string;
  /** The Dockerfile's build argument it is passed as, and the public image it stands in for. */
  arg: 'BUILD_IMAGE' | 'RUN_IMAGE';
  standsFor: string;
  /** Absolute path in the image -> what is there. */
  files: Record<string, Entry>;
  /** Containerfile instructions after the root filesystem (ENV, USER, ENTRYPOINT...). */
  config: string[];
}

interface HostNode {
  /** The node binary running this code, and its version. */
  node: string;
  version: string;
  /** npm's package directory next to it. */
  npm: string;
  /** The shared libraries node loads, where ldd finds them. */
  libraries: string[];
}

async function hostNode(): Promise<HostNode> {
  const node = fs.realpathSync(process.execPath);
  const npm = path.resolve(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm');
  if (!fs.existsSync(path.join(npm, 'bin', 'npm-cli.js'))) {
    throw new PrerequisiteError(`no npm next to ${process.execPath} (looked in ${npm})`);
  }
  const libraries = [...(await run('ldd', [node])).matchAll(/(?:=>\s*|^\s*)(\/\S+)\s+\(0x/gm)].map(
    (m) => m[1]!,
  );
  if (!libraries.some((l) => /\/ld-linux/.test(l))) {
    throw new PrerequisiteError(`${node} is not a dynamically linked Linux program ldd understands`);
  }
  return { node, version: process.versions.node, npm, libraries };
}

function caCertificates(): string {
  if (!fs.existsSync(mozillaCerts)) {
    throw new PrerequisiteError(`no ${mozillaCerts}: apt-get install -y ca-certificates`);
  }
  return fs
    .readdirSync(mozillaCerts)
    .filter((f) => f.endsWith('.crt'))
    .sort()
    .map((f) => fs.readFileSync(path.join(mozillaCerts, f), 'utf8').trimEnd() + '\n')
    .join('');
}

function libraryFiles(h: HostNode): Record<string, Entry> {
  return Object.fromEntries(h.libraries.map((l) => [l, { kind: 'file', from: fs.realpathSync(l) }]));
}

const common = (h: HostNode, ca: string): Record<string, Entry> => ({
  ...libraryFiles(h),
  '/etc/nsswitch.conf': { kind: 'text', text: 'passwd: files\ngroup: files\nhosts: files dns\n' },
  [caBundle]: { kind: 'text', text: ca },
  '/root': { kind: 'dir', mode: 0o700 },
  '/tmp': { kind: 'dir', mode: 0o1777 },
});

/** Like node:20-bookworm-slim: node and npm in /usr/local, a shell and coreutils (busybox's). */
async function buildBase(h: HostNode, ca: string, standsFor: string): Promise<Base> {
  const applets = (await run(busybox, ['--list'])).split('\n').filter((a) => a && a !== 'busybox');
  return {
    name: 'build-base',
    arg: 'BUILD_IMAGE',
    standsFor,
    files: {
      ...common(h, ca),
      '/bin/busybox': { kind: 'file', from: busybox, mode: 0o755 },
      ...Object.fromEntries(applets.map((a) => [`/bin/${a}`, { kind: 'link', target: 'busybox' }])),
      // npm's and the dependencies' programs start with #!/usr/bin/env node.
      '/usr/bin/env': { kind: 'link', target: '/bin/busybox' },
      '/usr/local/bin/node': { kind: 'file', from: h.node, mode: 0o755 },
      '/usr/local/lib/node_modules/npm': { kind: 'tree', from: h.npm },
      '/usr/local/bin/npm': { kind: 'link', target: '../lib/node_modules/npm/bin/npm-cli.js' },
      '/usr/local/bin/npx': { kind: 'link', target: '../lib/node_modules/npm/bin/npx-cli.js' },
      '/etc/passwd': {
        kind: 'text',
        text: 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n',
      },
      '/etc/group': { kind: 'text', text: 'root:x:0:\nnode:x:1000:\n' },
      '/home/node': { kind: 'dir', mode: 0o755, owner: 1000 },
    },
    config: [
      // node reads its CA certificates from this file too, not only its own copy of Mozilla's.
      `ENV NODE_VERSION=${h.version} PATH=${defaultPath} NODE_EXTRA_CA_CERTS=${caBundle}`,
      'CMD ["node"]',
    ],
  };
}

/** Like gcr.io/distroless/nodejs20-debian12:nonroot: node, its libraries, users; no shell. */
function runBase(h: HostNode, ca: string, standsFor: string): Base {
  return {
    name: 'run-base',
    arg: 'RUN_IMAGE',
    standsFor,
    files: {
      ...common(h, ca),
      '/nodejs/bin/node': { kind: 'file', from: h.node, mode: 0o755 },
      '/etc/passwd': {
        kind: 'text',
        text: [
          'root:x:0:0:root:/root:/sbin/nologin',
          'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin',
          'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin',
          '',
        ].join('\n'),
      },
      '/etc/group': {
        kind: 'text',
        text: 'root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n',
      },
      '/home/nonroot': { kind: 'dir', mode: 0o700, owner: 65532 },
    },
    config: [
      `ENV PATH=${defaultPath} SSL_CERT_FILE=${caBundle}`,
      'USER 65532',
      'WORKDIR /home/nonroot',
      'ENTRYPOINT ["/nodejs/bin/node"]',
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// Content keys

function sha256(data: string | Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

function fileDigest(file: string): string {
  return sha256(fs.readFileSync(file));
}

/** Every path under dir with its type, mode and content (or link target), in a stable order. */
function treeDigest(dir: string): string {
  const h = crypto.createHash('sha256');
  const walk = (rel: string) => {
    const full = path.join(dir, rel);
    for (const name of fs.readdirSync(full).sort()) {
      const p = path.join(rel, name);
      const st = fs.lstatSync(path.join(dir, p));
      if (st.isSymbolicLink()) h.update(`L ${p} ${fs.readlinkSync(path.join(dir, p))}\n`);
      else if (st.isDirectory()) {
        h.update(`D ${p} ${(st.mode & 0o7777).toString(8)}\n`);
        walk(p);
      } else h.update(`F ${p} ${(st.mode & 0o7777).toString(8)} ${fileDigest(path.join(dir, p))}\n`);
    }
  };
  walk('');
  return h.digest('hex');
}

function baseKey(b: Base): string {
  const files = Object.entries(b.files)
    .sort(([x], [y]) => (x < y ? -1 : 1))
    .map(([p, e]) => {
      switch (e.kind) {
        case 'file':
          return [p, e.kind, e.mode ?? fs.statSync(e.from).mode & 0o7777, fileDigest(e.from)];
        case 'text':
          return [p, e.kind, e.mode ?? 0o644, sha256(e.text)];
        case 'link':
          return [p, e.kind, e.target];
        case 'dir':
          return [p, e.kind, e.mode, e.owner ?? 0];
        case 'tree':
          return [p, e.kind, treeDigest(e.from)];
      }
    });
  return sha256(JSON.stringify({ recipeVersion, name: b.name, config: b.config, files }));
}

/** .dockerignore's rule (moby's patternmatcher): the last pattern matching a path or a parent wins. */
export function dockerignoreMatcher(text: string): (relative: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const exclude = l.startsWith('!');
      const pattern = path.posix
        .normalize((exclude ? l.slice(1) : l).trim().replace(/^\/+/, ''))
        .replace(/\/+$/, '');
      const body = pattern
        .split('/')
        .map((part) =>
          part === '**'
            ? '.*'
            : part
                .replace(/[.+^${}()|[\]\\]/g, '\\$&')
                .replace(/\*/g, '[^/]*')
                .replace(/\?/g, '[^/]'),
        )
        .join('/');
      return { exclude, regex: new RegExp(`^${body}(/.*)?$`) };
    });
  return (relative) => {
    let ignored = false;
    for (const r of rules) if (r.regex.test(relative)) ignored = !r.exclude;
    return ignored;
  };
}

/** What COPY and ADD take from the build context (not --from another stage), as written. */
export function contextSources(dockerfile: string): string[] {
  const lines = dockerfile
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n');
  const sources: string[] = [];
  for (const line of lines) {
    const m = /^\s*(COPY|ADD)\s+(.*)$/i.exec(line);
    if (!m) continue;
    const rest = m[2]!.trim();
    const words = rest.split(/\s+/);
    const flags = words.filter((w) => w.startsWith('--'));
    if (flags.some((f) => f.startsWith('--from'))) continue;
    const operands = rest.includes('[')
      ? (JSON.parse(rest.slice(rest.indexOf('['))) as string[])
      : words.filter((w) => !w.startsWith('--'));
    sources.push(...operands.slice(0, -1));
  }
  return sources;
}

/** The files of the build context the Dockerfile copies, relative to the context, .dockerignore applied. */
function copiedFiles(context: string, dockerfile: string, ignored: (relative: string) => boolean): string[] {
  const files: string[] = [];
  const visit = (rel: string) => {
    if (ignored(rel)) return;
    const st = fs.lstatSync(path.join(context, rel));
    if (st.isDirectory()) for (const name of fs.readdirSync(path.join(context, rel))) visit(`${rel}/${name}`);
    else files.push(rel);
  };
  for (const source of contextSources(dockerfile)) {
    if (/[*?[]/.test(source)) {
      throw new Error(`the Dockerfile copies ${source}: image.ts hashes plain paths only, not patterns`);
    }
    visit(path.posix.normalize(source).replace(/^(\.\/)+|\/+$/g, '') || '.');
  }
  return [...new Set(files)].sort();
}

function gantryKey(
  context: string,
  dockerfile: string,
  dockerignore: string,
  bases: Record<string, string>,
): string {
  const h = crypto.createHash('sha256');
  h.update(JSON.stringify({ recipeVersion, bases }));
  h.update(`Dockerfile\n${dockerfile}\n.dockerignore\n${dockerignore}\n`);
  for (const rel of copiedFiles(context, dockerfile, dockerignoreMatcher(dockerignore))) {
    const full = path.join(context, rel);
    const st = fs.lstatSync(full);
    h.update(
      st.isSymbolicLink()
        ? `L ${rel} ${fs.readlinkSync(full)}\n`
        : `F ${rel} ${(st.mode & 0o111) !== 0 ? 'x' : '-'} ${fileDigest(full)}\n`,
    );
  }
  return h.digest('hex');
}

/** The Dockerfile's default for a global build argument (ARG NAME=value before the first FROM). */
function argDefault(dockerfile: string, name: string): string {
  const value = new RegExp(`^ARG\\s+${name}=(\\S+)`, 'm').exec(dockerfile)?.[1];
  if (!value) throw new Error(`the Dockerfile takes no ${name} build argument with a default`);
  return value;
}

// ---------------------------------------------------------------------------------------------
// Building

/** Lays out a base's files in a fresh root filesystem, as a tar that keeps owners and modes. */
async function writeRootfsTar(b: Base, ctx: string): Promise<void> {
  const root = path.join(ctx, 'rootfs');
  fs.mkdirSync(root, { mode: 0o755 });
  fs.chmodSync(root, 0o755);
  const dirs = (p: string) => fs.mkdirSync(p, { recursive: true, mode: 0o755 });
  for (const [p, e] of Object.entries(b.files).sort(([x], [y]) => (x < y ? -1 : 1))) {
    const dest = path.join(root, p);
    dirs(path.dirname(dest));
    switch (e.kind) {
      case 'file':
        fs.copyFileSync(e.from, dest);
        fs.chmodSync(dest, e.mode ?? fs.statSync(e.from).mode & 0o7777);
        break;
      case 'text':
        fs.writeFileSync(dest, e.text);
        fs.chmodSync(dest, e.mode ?? 0o644);
        break;
      case 'link':
        fs.symlinkSync(e.target, dest);
        break;
      case 'dir':
        dirs(dest);
        fs.chmodSync(dest, e.mode);
        fs.chownSync(dest, e.owner ?? 0, e.owner ?? 0);
        break;
      case 'tree':
        fs.cpSync(e.from, dest, { recursive: true, verbatimSymlinks: true });
        break;
    }
  }
  // Same bytes for the same files: names sorted, one timestamp, numeric owners.
  await run('tar', [
    '--sort=name',
    '--mtime=@0',
    '--numeric-owner',
    '-C',
    root,
    '-cf',
    path.join(ctx, 'rootfs.tar'),
    '.',
  ]);
  fs.rmSync(root, { recursive: true, force: true });
}

interface BuiltBase {
  base: Base;
  key: string;
  layout: string;
  /** Its name in buildah's storage while the Gantry image is built. */
  local: string;
}

async function ensureBase(b: Base, note: Progress): Promise<BuiltBase> {
  const key = baseKey(b);
  const layout = path.join(imagesDir, `gantry-${b.name}-${key.slice(0, 16)}`);
  const built: BuiltBase = { base: b, key, layout, local: `localhost/gantry/${b.name}:${key.slice(0, 16)}` };
  if (layoutExists(layout)) {
    note(`cached: ${layout}`);
    return built;
  }
  fs.mkdirSync(imagesDir, { recursive: true });
  const ctx = fs.mkdtempSync(path.join(imagesDir, 'ctx-'));
  try {
    await writeRootfsTar(b, ctx);
    fs.writeFileSync(
      path.join(ctx, 'Containerfile'),
      ['FROM scratch', 'ADD rootfs.tar /', ...b.config, ''].join('\n'),
    );
    await budToLayout({
      context: ctx,
      file: 'Containerfile',
      layout,
      name: built.local,
      logFile: imageBuildLog,
      note,
    });
  } finally {
    fs.rmSync(ctx, { recursive: true, force: true });
  }
  note(`built: ${layout}`);
  return built;
}

async function buildGantry(
  context: string,
  layout: string,
  tag: string,
  bases: BuiltBase[],
  note: Progress,
): Promise<void> {
  note(`building the Dockerfile with buildah (output: ${imageBuildLog})`);
  const started = Date.now();
  for (const b of bases)
    await run('skopeo', ['copy', '-q', `oci:${b.layout}`, storageRef(b.local)], { logFile: imageBuildLog });
  note(`bases into buildah's storage: ${((Date.now() - started) / 1000).toFixed(1)}s`);
  // A warm npm cache for `npm ci` (what it installs is still exactly package-lock.json), and this
  // machine's CA certificates over the build base's, for the way to the npm registry: both are
  // mounted for RUN steps only and end up in no layer.
  const npmCache = path.join(cacheDir, 'npm');
  fs.mkdirSync(npmCache, { recursive: true });
  // RUN steps run under runc (buildah's default isolation; BUILDAH_ISOLATION=chroot where runc
  // cannot run) in the host's network namespace, where the npm registry is reachable.
  const args = [
    '--pull=never',
    '--network',
    'host',
    ...bases.flatMap((b) => ['--build-arg', `${b.base.arg}=${b.local}`]),
    '-v',
    `${npmCache}:/root/.npm`,
    ...(fs.existsSync(hostCaBundle) ? ['-v', `${hostCaBundle}:${caBundle}:ro`] : []),
  ];
  try {
    await budToLayout({
      context,
      file: 'Dockerfile',
      layout,
      name: `localhost/gantry:${tag}`,
      args,
      logFile: imageBuildLog,
      note,
    });
  } finally {
    for (const b of bases) {
      await run('buildah', [...buildahStorage, 'rmi', '-f', b.local], { logFile: imageBuildLog }).catch(
        () => undefined,
      );
    }
  }
}

/** Gantry images kept in the cache: the newest few (one per worktree or branch in use, say). */
const keptBuilds = 5;

/** Removes all but the keptBuilds most recently used Gantry image layouts. */
function pruneBuilds(current: string, note: Progress): void {
  const builds = fs
    .readdirSync(imagesDir)
    .filter((d) => /^gantry-image-[0-9a-f]{16}$/.test(d))
    .map((d) => path.join(imagesDir, d))
    .filter((d) => d !== current)
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  for (const old of builds.slice(keptBuilds - 1)) {
    fs.rmSync(old, { recursive: true, force: true });
    note(`removed an older build: ${old}`);
  }
}

async function requireTools(): Promise<void> {
  if (process.getuid?.() !== 0) {
    // The bases hold files of other owners (nonroot's home); buildah's storage here is root's.
    throw new PrerequisiteError('the image build needs root: run it as root (for example with sudo -E)');
  }
  for (const [tool, pkg] of [
    ['buildah', 'buildah'],
    ['skopeo', 'skopeo'],
  ] as const) {
    if (!(await succeeds(tool, ['--version']))) {
      throw new PrerequisiteError(`${tool} is missing: apt-get install -y ${pkg}`);
    }
  }
  if (!fs.existsSync(busybox))
    throw new PrerequisiteError(`no ${busybox}: apt-get install -y busybox-static`);
}

export interface BuiltImage {
  /** The OCI layout in the cache. */
  layout: string;
  /** <package version>-<first 12 hex of the input hash>: what the image is pushed as. */
  tag: string;
  /** The manifest's digest. */
  digest: string;
}

/**
 * The Gantry image from the repository's Dockerfile, in an OCI layout in the cache (built unless
 * an image of the same inputs was built before). Needs no cluster.
 */
export async function buildGantryImage(
  opts: {
    out?: Progress;
    steps?: Steps;
    /** The build context (Dockerfile included): this checkout unless given (an older version's sources, say). */
    context?: string;
  } = {},
): Promise<BuiltImage> {
  const context = opts.context ?? repoRoot;
  const steps = opts.steps ?? new Steps(3, opts.out ?? ((l) => console.log(l)));
  await requireTools();
  fs.mkdirSync(path.dirname(imageBuildLog), { recursive: true });
  fs.appendFileSync(imageBuildLog, `\n== ${new Date().toISOString()} image build in ${context}\n`);
  const dockerfile = fs.readFileSync(path.join(context, 'Dockerfile'), 'utf8');
  const dockerignorePath = path.join(context, '.dockerignore');
  const dockerignore = fs.existsSync(dockerignorePath) ? fs.readFileSync(dockerignorePath, 'utf8') : '';
  const standsFor = {
    build: argDefault(dockerfile, 'BUILD_IMAGE'),
    run: argDefault(dockerfile, 'RUN_IMAGE'),
  };
  const h = await hostNode();
  const major = h.version.split('.')[0]!;
  for (const image of Object.values(standsFor)) {
    if (!new RegExp(`node(js)?:?${major}\\b`).test(image)) {
      throw new PrerequisiteError(
        `the Dockerfile's base ${image} is not Node.js ${major}, this machine's (${h.node} ${h.version}): a base made from it would not be equivalent`,
      );
    }
  }
  const ca = caCertificates();
  const build = await steps.step(
    `build base (node ${h.version}, npm, busybox) for ${standsFor.build}`,
    async (note) => ensureBase(await buildBase(h, ca, standsFor.build), note),
  );
  const runtime = await steps.step(`run base (node ${h.version}, no shell) for ${standsFor.run}`, (note) =>
    ensureBase(runBase(h, ca, standsFor.run), note),
  );
  return steps.step('Gantry image from the Dockerfile', async (note) => {
    const key = gantryKey(context, dockerfile, dockerignore, {
      [build.base.arg]: build.key,
      [runtime.base.arg]: runtime.key,
    });
    const pkg = JSON.parse(fs.readFileSync(path.join(context, 'package.json'), 'utf8')) as {
      version: string;
    };
    const tag = `${pkg.version}-${key.slice(0, 12)}`;
    const layout = path.join(imagesDir, `gantry-image-${key.slice(0, 16)}`);
    if (layoutExists(layout)) {
      note(`cached: ${layout}`);
      // Recently used: pruning keeps it.
      const now = new Date();
      fs.utimesSync(layout, now, now);
    } else {
      await buildGantry(context, layout, tag, [build, runtime], note);
      linkSharedBlobs(layout, runtime.layout);
      note(`built: ${layout}`);
      pruneBuilds(layout, note);
    }
    return { layout, tag, digest: layoutDigest(layout) };
  });
}

export interface GantryImage {
  /** 127.0.0.1:5000/gantry:<tag> */
  ref: string;
  /** The manifest's digest in the registry: pull ref@digest to get exactly this image. */
  digest: string;
  layout: string;
}

/** buildGantryImage, then the image pushed to the local registry (which must be up). */
export async function ensureGantryImage(
  opts: { out?: Progress; context?: string } = {},
): Promise<GantryImage> {
  const steps = new Steps(4, opts.out ?? ((l) => console.log(l)));
  const built = await buildGantryImage({ steps, context: opts.context });
  return steps.step(`push to ${registryAddress}`, async () => {
    const up = await fetch(`http://${registryAddress}/v2/`)
      .then((r) => r.ok)
      .catch(() => false);
    if (!up) {
      throw new PrerequisiteError(
        `the local registry on ${registryAddress} does not answer: start the local cluster (npm run cluster:up), or build without pushing (--no-push)`,
      );
    }
    const ref = `${gantryRepository}:${built.tag}`;
    const digestFile = path.join(imagesDir, `digest-${process.pid}`);
    try {
      await run(
        'skopeo',
        [
          'copy',
          '-q',
          '--dest-tls-verify=false',
          '--digestfile',
          digestFile,
          `oci:${built.layout}`,
          `docker://${ref}`,
        ],
        { logFile: imageBuildLog },
      );
      return { ref, digest: fs.readFileSync(digestFile, 'utf8').trim(), layout: built.layout };
    } finally {
      fs.rmSync(digestFile, { force: true });
    }
  });
}
