// The local OCI registry (Debian's docker-registry on 127.0.0.1:5000) and the test images in it,
// built with buildah FROM scratch out of busybox-static, so no outside registry is ever needed.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { budToLayout, imagesDir, layoutExists } from './buildah.js';
import { livePid, run, startDaemon, waitFor } from './proc.js';

export const registryAddress = '127.0.0.1:5000';

interface TestImage {
  repo: string;
  tag: string;
  /** Which busybox applets the image gets (all, or just these). */
  applets: 'all' | string[];
  files?: Record<string, string>;
  /** A file of this many incompressible (but reproducible) bytes: a big layer to pull. */
  randomFile?: { path: string; bytes: number };
  cmd: string[];
}

// PID 1 in a container ignores SIGTERM unless it handles it, so every command traps TERM and
// exits; otherwise each stop would wait for the whole grace period.
const testImages = {
  pause: {
    repo: 'gantry/pause',
    tag: '1',
    applets: ['sh', 'sleep'],
    cmd: ['/bin/sh', '-c', 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done'],
  },
  web: {
    repo: 'gantry/web',
    tag: '1',
    applets: 'all',
    files: { 'www/index.html': 'gantry web v1\n' },
    cmd: ['/bin/sh', '-c', 'httpd -f -p 8080 -h /www & trap "kill $!; exit 0" TERM INT; wait'],
  },
  web2: {
    repo: 'gantry/web',
    tag: '2',
    applets: 'all',
    files: { 'www/index.html': 'gantry web v2\n' },
    cmd: ['/bin/sh', '-c', 'httpd -f -p 8080 -h /www & trap "kill $!; exit 0" TERM INT; wait'],
  },
  // Counts up once a second in memory and writes the count to /tmp/count and stdout: the state a
  // checkpoint migration must carry over (a restart would begin again at 1). With HOLD_MB=N a
  // second process holds N MiB of written memory, so benchmarks can migrate a heavier process.
  counter: {
    repo: 'gantry/counter',
    tag: '1',
    applets: 'all',
    cmd: [
      '/bin/sh',
      '-c',
      [
        'trap "exit 0" TERM INT',
        '[ -n "$HOLD_MB" ] && awk -v mb="$HOLD_MB" \'BEGIN{x=sprintf("%" mb*1048576 "s",""); system("sleep 2147483647")}\' &',
        'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; echo "count $i"; sleep 1; done',
      ].join('\n'),
    ],
  },
  // About 100 MB of incompressible data in its layer: what bench/scale-real.ts pulls on scale-out.
  big: {
    repo: 'gantry/big',
    tag: '1',
    applets: ['sh', 'sleep'],
    randomFile: { path: 'data/random.bin', bytes: 100 * 1024 * 1024 },
    cmd: ['/bin/sh', '-c', 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done'],
  },
} satisfies Record<string, TestImage>;

export type TestImageName = keyof typeof testImages;

export function imageRef(name: TestImageName): string {
  const i = testImages[name];
  return `${registryAddress}/${i.repo}:${i.tag}`;
}

/**
 * A second registry that requires a login (htpasswd), holding a copy of the web image: what tests
 * of pull secrets and of bad credentials pull from.
 */
export const authRegistry = {
  address: '127.0.0.1:5001',
  username: 'gantry',
  password: 'gantry-registry-secret',
  image: '127.0.0.1:5001/gantry/web:1',
};

interface RegistrySpec {
  name: string;
  address: string;
  /** htpasswd file; none means anonymous access. */
  htpasswd?: string;
}

async function startOneRegistry(r: RegistrySpec, dir: string, pids: string, logs: string): Promise<void> {
  const pidFile = path.join(pids, `${r.name}.pid`);
  const logFile = path.join(logs, `${r.name}.log`);
  if (livePid(pidFile)) return;
  const config = path.join(dir, 'config.yml');
  fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
  fs.writeFileSync(
    config,
    [
      'version: 0.1',
      'log: { level: warn }',
      `storage: { filesystem: { rootdirectory: ${path.join(dir, 'data')} }, delete: { enabled: true } }`,
      `http: { addr: ${r.address} }`,
      ...(r.htpasswd ? [`auth: { htpasswd: { realm: gantry-test, path: ${r.htpasswd} } }`] : []),
      '',
    ].join('\n'),
  );
  const pid = startDaemon('docker-registry', ['serve', config], { pidFile, logFile });
  await waitFor(
    `the registry to answer on ${r.address}`,
    // 401 is an answer too: the authenticated registry wants a login.
    () =>
      fetch(`http://${r.address}/v2/`)
        .then((res) => res.ok || res.status === 401)
        .catch(() => false),
    { pid, logFile, timeoutMs: 30_000 },
  );
}

/** The test registry, and the one that requires a login. */
export async function startRegistries(dir: string, pids: string, logs: string): Promise<void> {
  await startOneRegistry({ name: 'registry', address: registryAddress }, path.join(dir, 'open'), pids, logs);
  const htpasswd = path.join(dir, 'htpasswd');
  await run('htpasswd', ['-Bbc', htpasswd, authRegistry.username, authRegistry.password]);
  await startOneRegistry(
    { name: 'registry-auth', address: authRegistry.address, htpasswd },
    path.join(dir, 'auth'),
    pids,
    logs,
  );
}

const busybox = '/bin/busybox';

function contentKey(img: TestImage): string {
  const h = crypto.createHash('sha256');
  h.update(JSON.stringify(img));
  h.update(fs.readFileSync(busybox));
  return h.digest('hex').slice(0, 16);
}

/** An AES-CTR keystream: as incompressible as random bytes, and the same on every build. */
function writeRandomFile(file: string, bytes: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const cipher = crypto.createCipheriv('aes-256-ctr', Buffer.alloc(32), Buffer.alloc(16));
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(1024 * 1024);
  for (let written = 0; written < bytes; written += chunk.length) {
    fs.writeSync(fd, cipher.update(chunk.subarray(0, Math.min(chunk.length, bytes - written))));
  }
  fs.closeSync(fd);
}

/** Builds the image into an OCI layout in the cache unless that exact content was built before. */
async function buildImage(img: TestImage, logFile: string): Promise<string> {
  const layout = path.join(imagesDir, `${img.repo.replace('/', '-')}-${img.tag}-${contentKey(img)}`);
  if (layoutExists(layout)) return layout;
  const ctx = fs.mkdtempSync(path.join(imagesDir, 'ctx-'));
  const bin = path.join(ctx, 'rootfs', 'bin');
  fs.mkdirSync(bin, { recursive: true });
  fs.mkdirSync(path.join(ctx, 'rootfs', 'tmp'), { recursive: true });
  fs.copyFileSync(busybox, path.join(bin, 'busybox'));
  fs.chmodSync(path.join(bin, 'busybox'), 0o755);
  const applets =
    img.applets === 'all'
      ? (await run(busybox, ['--list'])).split('\n').filter((a) => a && a !== 'busybox')
      : img.applets;
  for (const a of applets) fs.symlinkSync('busybox', path.join(bin, a));
  for (const [file, content] of Object.entries(img.files ?? {})) {
    fs.mkdirSync(path.dirname(path.join(ctx, 'rootfs', file)), { recursive: true });
    fs.writeFileSync(path.join(ctx, 'rootfs', file), content);
  }
  if (img.randomFile) writeRandomFile(path.join(ctx, 'rootfs', img.randomFile.path), img.randomFile.bytes);
  fs.writeFileSync(
    path.join(ctx, 'Containerfile'),
    `FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\nCMD ${JSON.stringify(img.cmd)}\n`,
  );
  await budToLayout({
    context: ctx,
    file: 'Containerfile',
    layout,
    name: `localhost/${img.repo}:${img.tag}`,
    logFile,
  });
  fs.rmSync(ctx, { recursive: true, force: true });
  return layout;
}

/** Builds (first time) and pushes every test image to the registry; answers refs by role. */
export async function pushTestImages(logFile: string): Promise<Record<TestImageName, string>> {
  fs.mkdirSync(imagesDir, { recursive: true });
  const refs = {} as Record<TestImageName, string>;
  for (const [name, img] of Object.entries(testImages) as [TestImageName, TestImage][]) {
    const layout = await buildImage(img, logFile);
    const ref = imageRef(name);
    await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}`, `docker://${ref}`], {
      logFile,
    });
    refs[name] = ref;
  }
  const web = await buildImage(testImages.web, logFile);
  const creds = `${authRegistry.username}:${authRegistry.password}`;
  await run(
    'skopeo',
    [
      'copy',
      '-q',
      '--dest-tls-verify=false',
      '--dest-creds',
      creds,
      `oci:${web}`,
      `docker://${authRegistry.image}`,
    ],
    { logFile },
  );
  return refs;
}
