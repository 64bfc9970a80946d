// The container image for real: the repository's Dockerfile built with buildah by
// `npm run image:build`'s code (or its cached result for the same inputs) and pushed to the local
// registry; then the pushed image itself is checked (its config and every file in its layers) and
// run through CRI on a containerd host of the local cluster, as a node would run it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { CriClient, type PodSandboxConfig } from '../../../src/cri/client.js';
import { renderChart } from '../../../src/install/helm.js';
import { ensureGantryImage, gantryRepository, type GantryImage } from '../../../src/localcluster/image.js';
import { localCluster } from '../../support/cluster.js';
import { find, parseObjects, repoRoot } from './support.js';

const run = promisify(execFile);
const RUN_LABEL = { 'gantry.test/image': String(process.pid) };

const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
  engines: { node: string };
  dependencies: Record<string, string>;
};
const lock = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { dev?: boolean }>;
};
const nodeMajor = /(\d+)/.exec(pkg.engines.node)![1]!;

interface ImageConfig {
  User?: string;
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  Env?: string[];
}

/** What the chart starts: the first argument of the controller's and the agent's container. */
async function chartWorkloads(): Promise<
  Record<'Deployment' | 'DaemonSet', { args: string[]; user?: number }>
> {
  const objects = await parseObjects(
    await renderChart({
      showOnly: ['templates/controller-deployment.yaml', 'templates/agent-daemonset.yaml'],
    }),
  );
  type Pod = {
    securityContext: { runAsUser?: number };
    containers: { args: string[]; securityContext: { runAsUser?: number } }[];
  };
  const of = (kind: string) => {
    const spec = (find(objects, kind).spec as { template: { spec: Pod } }).template.spec;
    const c = spec.containers[0]!;
    return { args: c.args, user: c.securityContext.runAsUser ?? spec.securityContext.runAsUser };
  };
  return { Deployment: of('Deployment'), DaemonSet: of('DaemonSet') };
}

/** A CRI container log (`<time> <stream> <P|F> <text>` lines) as the program's stdout and stderr. */
function readCriLog(file: string): { stdout: string; stderr: string } {
  const out = { stdout: '', stderr: '' };
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^\S+ (stdout|stderr) ([PF]) (.*)$/.exec(line);
    if (m) out[m[1] as 'stdout' | 'stderr'] += m[3]! + (m[2] === 'F' ? '\n' : '');
  }
  return out;
}

describe('container image (the Dockerfile, built and run)', () => {
  const cluster = localCluster();
  const host = cluster.hosts[0]!;
  const cri = new CriClient(host.criSocket);
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-image-test-'));
  let image: GantryImage;
  let config: ImageConfig;
  /** Every path in the image's layers, as tar lists them (directories end in '/'). */
  let files: Set<string>;
  let pulledHere = false;

  before(async () => {
    image = await ensureGantryImage({ out: (l) => console.log(`# ${l}`) });
    console.log(`# ${image.ref} ${image.digest}`);
    const inspect = (args: string[]) =>
      run('skopeo', ['inspect', '--tls-verify=false', ...args, `docker://${image.ref}`], {
        maxBuffer: 16 * 1024 * 1024,
      });
    config = (JSON.parse((await inspect(['--config'])).stdout) as { config: ImageConfig }).config;
    // The layers as the registry serves them, copied out and listed.
    const pulled = path.join(workDir, 'layout');
    await run('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${image.ref}`, `oci:${pulled}`]);
    const index = JSON.parse(fs.readFileSync(path.join(pulled, 'index.json'), 'utf8')) as {
      manifests: { digest: string }[];
    };
    assert.equal(index.manifests[0]?.digest, image.digest, 'the registry serves another manifest');
    const blob = (d: string) => path.join(pulled, 'blobs', ...d.split(':'));
    const manifest = JSON.parse(fs.readFileSync(blob(image.digest), 'utf8')) as {
      layers: { digest: string }[];
    };
    files = new Set();
    for (const layer of manifest.layers) {
      const { stdout } = await run('tar', ['-tzf', blob(layer.digest)], { maxBuffer: 64 * 1024 * 1024 });
      for (const f of stdout.split('\n').filter(Boolean)) files.add(f.replace(/^\.\//, ''));
    }
    fs.writeFileSync(
      path.join(workDir, 'passwd'),
      (await run('tar', ['-xzOf', blob(manifest.layers[0]!.digest), 'etc/passwd'])).stdout,
    );
    await cri.version({}, { waitForReady: true, timeoutMs: 20_000 });
  });

  after(async () => {
    try {
      const { items } = await cri.listPodSandbox({ filter: { labelSelector: RUN_LABEL } });
      for (const s of items) {
        await cri.stopPodSandbox({ podSandboxId: s.id });
        await cri.removePodSandbox({ podSandboxId: s.id });
      }
      if (pulledHere) await cri.removeImage({ image: { image: `${gantryRepository}@${image.digest}` } });
    } catch (e) {
      console.error('CRI clean-up failed:', e);
    }
    cri.close();
    fs.rmSync(workDir, { recursive: true, force: true });
  });

  it('keeps the public bases as the Dockerfile defaults, on the Node.js package.json names', () => {
    const dockerfile = fs.readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
    assert.match(
      dockerfile,
      new RegExp(`^ARG BUILD_IMAGE=docker\\.io/library/node:${nodeMajor}-bookworm-slim$`, 'm'),
    );
    assert.match(
      dockerfile,
      new RegExp(`^ARG RUN_IMAGE=gcr\\.io/distroless/nodejs${nodeMajor}-debian12:nonroot$`, 'm'),
    );
    assert.match(dockerfile, /^FROM \$\{BUILD_IMAGE\} AS build$/m);
    assert.match(dockerfile, /^FROM \$\{RUN_IMAGE\}$/m);
  });

  it('is configured to run the controller as 65532:65532, the user the chart runs the controller as', async () => {
    assert.equal(config.User, '65532:65532');
    assert.equal(path.basename(config.Entrypoint?.[0] ?? ''), 'node');
    assert.equal(config.Entrypoint?.[0], '/nodejs/bin/node');
    assert.deepEqual(config.Cmd, ['dist/cmd/controller.js']);
    assert.equal(config.WorkingDir, '/app');
    assert.ok(config.Env?.includes('NODE_ENV=production'), String(config.Env));
    assert.match(fs.readFileSync(path.join(workDir, 'passwd'), 'utf8'), /^nonroot:x:65532:65532:/m);
    const chart = await chartWorkloads();
    assert.equal(chart.Deployment.user, 65532);
    // The agent runs the same image as root (containerd's socket is root's).
    assert.equal(chart.DaemonSet.user, 0);
  });

  it('holds node, the build output and the runtime dependencies, and no shell or package manager', async () => {
    for (const f of [
      'nodejs/bin/node',
      'app/package.json',
      'app/LICENSE',
      'app/dist/cmd/controller.js',
      'app/dist/cmd/agent.js',
      'app/dist/cri/runtime.proto',
    ]) {
      assert.ok(files.has(f), `the image has no /${f}`);
    }
    const chart = await chartWorkloads();
    for (const kind of ['Deployment', 'DaemonSet'] as const) {
      const program = chart[kind].args[0]!;
      assert.ok(files.has(`app/${program}`), `the chart's ${kind} starts ${program}, which the image lacks`);
    }
    const shells = [...files].filter((f) => /(^|\/)(sh|ash|bash|dash|busybox)$/.test(f));
    assert.deepEqual(shells, [], 'a shell in the image');
    const managers = [...files].filter((f) => /(^|\/)(npm|npx|apt|apt-get|dpkg)\/?$/.test(f));
    assert.deepEqual(managers, [], 'a package manager in the image');
    // Only what the run stage copies: no sources, tests, benchmarks, docs or chart.
    for (const dir of ['src', 'test', 'bench', 'docs', 'charts', 'examples', 'node_modules/.cache']) {
      assert.ok(![...files].some((f) => f.startsWith(`app/${dir}/`)), `the image has /app/${dir}`);
    }
  });

  it('has no devDependencies in node_modules (npm prune --omit=dev), and every runtime dependency', () => {
    const devOnly = Object.entries(lock.packages)
      .filter(([p, v]) => p.startsWith('node_modules/') && v.dev)
      .map(([p]) => p);
    assert.ok(devOnly.includes('node_modules/typescript'), 'package-lock.json marks no dev-only packages');
    const present = devOnly.filter((p) => files.has(`app/${p}/`) || files.has(`app/${p}/package.json`));
    assert.deepEqual(present, [], 'dev-only packages in the image');
    for (const name of Object.keys(pkg.dependencies)) {
      assert.ok(files.has(`app/node_modules/${name}/package.json`), `the image lacks the dependency ${name}`);
    }
  });

  it('runs through CRI on a containerd host: the controller answers --help, the agent checks its flags, as 65532', async () => {
    const imageRef = `${gantryRepository}@${image.digest}`;
    pulledHere = (await cri.imageStatus({ image: { image: imageRef } })).image === undefined;
    await cri.pullImage({ image: { image: imageRef } }, { timeoutMs: 120_000 });
    const uid = randomUUID();
    const logDirectory = path.join(workDir, 'logs', uid);
    fs.mkdirSync(logDirectory, { recursive: true });
    const sandboxConfig: PodSandboxConfig = {
      metadata: { name: 'gantry-image-test', uid, namespace: 'gantry-test' },
      hostname: 'gantry-image-test',
      logDirectory,
      labels: RUN_LABEL,
    };
    const { podSandboxId } = await cri.runPodSandbox({ config: sandboxConfig });

    /** Runs the image with these arguments (the image's entrypoint stays) to its end. */
    const runImage = async (name: string, args: string[]) => {
      const { containerId } = await cri.createContainer({
        podSandboxId,
        sandboxConfig,
        config: { metadata: { name }, image: { image: imageRef }, args, logPath: `${name}.log` },
      });
      await cri.startContainer({ containerId });
      const deadline = Date.now() + 60_000;
      for (;;) {
        const { status } = await cri.containerStatus({ containerId });
        if (status?.state === 'CONTAINER_EXITED') {
          return { exitCode: status.exitCode, ...readCriLog(path.join(logDirectory, `${name}.log`)) };
        }
        assert.ok(Date.now() < deadline, `${name} did not exit within 60 s (${status?.state})`);
        await sleep(200);
      }
    };

    const controller = await runImage('controller-help', ['dist/cmd/controller.js', '--help']);
    assert.equal(controller.exitCode, 0, controller.stderr);
    assert.match(controller.stdout, /^Usage: gantry-controller/);
    assert.match(controller.stdout, /--leader-elect/);

    // The agent has no --help: it loads every module and checks its flags before it touches
    // anything, and a bad one ends it with 2 and the reason.
    const agent = await runImage('agent-flags', ['dist/cmd/agent.js', '--host-name=Not_A_Host']);
    assert.equal(agent.exitCode, 2, agent.stdout + agent.stderr);
    assert.match(agent.stderr, /^gantry-agent: invalid options: --host-name: must be a DNS subdomain/);

    const facts = await runImage('whoami', [
      '-e',
      `const fs = require('node:fs');
       console.log(JSON.stringify({ uid: process.getuid(), gid: process.getgid(), cwd: process.cwd(),
         node: process.versions.node, shell: ['/bin/sh', '/usr/bin/sh', '/bin/busybox'].some((f) => fs.existsSync(f)),
         env: process.env.NODE_ENV, certs: fs.existsSync('/etc/ssl/certs/ca-certificates.crt') }));`,
    ]);
    assert.equal(facts.exitCode, 0, facts.stderr);
    const { node, ...observed } = JSON.parse(facts.stdout) as { node: string };
    assert.deepEqual(observed, {
      uid: 65532,
      gid: 65532,
      cwd: '/app',
      shell: false,
      env: 'production',
      certs: true,
    });
    assert.equal(node.split('.')[0], nodeMajor);
  });
});
