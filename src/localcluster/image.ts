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
// The bases are made in imagebases.ts, the Dockerfile and its context are read in dockerfile.ts.
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
import { argDefault, gantryKey } from './dockerfile.js';
import {
  type BuiltBase,
  buildBase,
  busybox,
  caBundle,
  caCertificates,
  ensureBase,
  hostNode,
  runBase,
} from './imagebases.js';
import { imageBuildLog } from './imagecache.js';
import { PrerequisiteError } from './prerequisites.js';
import { run, succeeds } from './proc.js';
import { registryAddress } from './registry.js';
import { type Progress, Steps } from './steps.js';
import { cacheDir } from './versions.js';

export { contextSources, dockerignoreMatcher } from './dockerfile.js';
export { imageBuildLog };

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Where `npm run image:build` pushes: 127.0.0.1:5000/gantry:<version>-<input hash>. */
export const gantryRepository = `${registryAddress}/gantry`;

/** This machine's trust store; it may hold a local CA that the way to the npm registry needs. */
const hostCaBundle = '/etc/ssl/certs/ca-certificates.crt';

// ---------------------------------------------------------------------------------------------
// Building

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
