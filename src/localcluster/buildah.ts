// buildah as the local cluster uses it: one storage under the cache (the vfs driver works on any
// filesystem), and every image it builds kept as an OCI layout in ~/.cache/gantry/images, named
// by what it is made from, so a later run copies the layout instead of building again.
import fs from 'node:fs';
import path from 'node:path';
import { run } from './proc.js';
import type { Progress } from './steps.js';
import { cacheDir } from './versions.js';

export const imagesDir = path.join(cacheDir, 'images');

const storage = {
  root: path.join(cacheDir, 'buildah', 'root'),
  runroot: path.join(cacheDir, 'buildah', 'run'),
};

/** buildah's global flags for that storage. */
export const buildahStorage = [
  '--root',
  storage.root,
  '--runroot',
  storage.runroot,
  '--storage-driver',
  'vfs',
];

/** The same storage as a skopeo destination, e.g. to load a cached layout for a build to start FROM. */
export function storageRef(name: string): string {
  return `containers-storage:[vfs@${storage.root}+${storage.runroot}]${name}`;
}

/** Whether an OCI layout is complete (it is renamed into place only once written). */
export function layoutExists(layout: string): boolean {
  return fs.existsSync(path.join(layout, 'index.json'));
}

/** The digest of the one manifest in an OCI layout. */
export function layoutDigest(layout: string): string {
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')) as {
    manifests: { digest: string }[];
  };
  const digest = index.manifests[0]?.digest;
  if (!digest) throw new Error(`${layout} holds no image`);
  return digest;
}

export interface BudOptions {
  /** The build context. */
  context: string;
  /** Containerfile or Dockerfile, relative to the context. */
  file: string;
  /** The OCI layout to write; written whole or not at all. */
  layout: string;
  /** The name the image has in buildah's storage while it is built (removed afterwards). */
  name: string;
  /** More `buildah bud` flags (build arguments, network, volumes). */
  args?: string[];
  logFile: string;
  /** Told how long the build and the layout took. */
  note?: Progress;
}

const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)}s`;

/** `buildah bud`, then the image into its OCI layout and out of buildah's storage again. */
export async function budToLayout(opts: BudOptions): Promise<void> {
  fs.mkdirSync(path.dirname(opts.layout), { recursive: true });
  fs.mkdirSync(path.dirname(opts.logFile), { recursive: true });
  const tmpLayout = `${opts.layout}.tmp-${process.pid}`;
  fs.rmSync(tmpLayout, { recursive: true, force: true });
  try {
    let started = Date.now();
    await run(
      'buildah',
      [
        ...buildahStorage,
        'bud',
        '-q',
        '--layers=false',
        '--force-rm',
        ...(opts.args ?? []),
        '-f',
        opts.file,
        '-t',
        opts.name,
        '.',
      ],
      { cwd: opts.context, logFile: opts.logFile },
    );
    opts.note?.(`buildah bud: ${seconds(started)}`);
    started = Date.now();
    await run('buildah', [...buildahStorage, 'push', '-q', opts.name, `oci:${tmpLayout}`], {
      logFile: opts.logFile,
    });
    fs.rmSync(opts.layout, { recursive: true, force: true });
    fs.renameSync(tmpLayout, opts.layout);
    opts.note?.(`into the OCI layout: ${seconds(started)}`);
  } finally {
    fs.rmSync(tmpLayout, { recursive: true, force: true });
    await run('buildah', [...buildahStorage, 'rmi', '-f', opts.name], { logFile: opts.logFile }).catch(
      () => undefined,
    );
  }
}

/** Makes the blobs a layout shares with another (its base's) hard links to that one's: disk once. */
export function linkSharedBlobs(layout: string, other: string): void {
  const dir = (l: string) => path.join(l, 'blobs', 'sha256');
  for (const blob of fs.readdirSync(dir(layout))) {
    const theirs = path.join(dir(other), blob);
    const ours = path.join(dir(layout), blob);
    if (!fs.existsSync(theirs) || fs.statSync(theirs).ino === fs.statSync(ours).ino) continue;
    const tmp = `${ours}.link-${process.pid}`;
    fs.linkSync(theirs, tmp);
    fs.renameSync(tmp, ours);
  }
}
