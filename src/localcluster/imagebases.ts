// The Dockerfile's two bases, assembled from this machine (image.ts says what each stands in for),
// each built into an OCI layout in the cache named by a hash of what it is made from.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { budToLayout, imagesDir, layoutExists } from './buildah.js';
import { fileDigest, imageBuildLog, recipeVersion, sha256 } from './imagecache.js';
import { PrerequisiteError } from './prerequisites.js';
import { run } from './proc.js';
import type { Progress } from './steps.js';

export const busybox = '/bin/busybox';
/** Debian's Mozilla CA certificates (ca-certificates), the set distroless ships. */
const mozillaCerts = '/usr/share/ca-certificates/mozilla';
export const caBundle = '/etc/ssl/certs/ca-certificates.crt';
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

export interface Base {
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

export interface HostNode {
  /** The node binary running this code, and its version. */
  node: string;
  version: string;
  /** npm's package directory next to it. */
  npm: string;
  /** The shared libraries node loads, where ldd finds them. */
  libraries: string[];
}

export async function hostNode(): Promise<HostNode> {
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

export function caCertificates(): string {
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
export async function buildBase(h: HostNode, ca: string, standsFor: string): Promise<Base> {
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
export function runBase(h: HostNode, ca: string, standsFor: string): Base {
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

export interface BuiltBase {
  base: Base;
  key: string;
  layout: string;
  /** Its name in buildah's storage while the Gantry image is built. */
  local: string;
}

export async function ensureBase(b: Base, note: Progress): Promise<BuiltBase> {
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
