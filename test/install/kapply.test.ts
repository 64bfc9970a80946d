// GitOps for real: the apply-and-wait engine that Flux's kustomize-controller and Config Sync
// build on (sigs.k8s.io/cli-utils, its `kapply` command, built here from its Go module) installs
// manifests/gantry.yaml and the quickstart objects and waits on every one of them by kstatus;
// then it is given a Workload whose image does not exist and must never report it reconciled.
// (Flux's own controllers cannot be built here: their modules are not served.)
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { stopGantry } from '../../src/localcluster/gantry.js';
import { stopSubresources } from '../../src/localcluster/subresources.js';
import { getObject, kubectlOk, localCluster } from '../support/cluster.js';
import { currentRelease, repoRoot } from './support.js';

const run = promisify(execFile);
const cluster = localCluster();
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-kapply-'));
const app = 'gitops-app';

interface KapplyResult {
  code: number;
  out: string;
}

async function kapply(args: string[], timeoutMs = 600_000): Promise<KapplyResult> {
  try {
    const { stdout, stderr } = await run(
      `${cluster.binDir}/kapply`,
      [...args, '--kubeconfig', cluster.kubeconfig],
      { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
    );
    return { code: 0, out: stdout + stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof err.code === 'number' ? err.code : 1,
      out: `${err.stdout ?? ''}${err.stderr ?? ''}`,
    };
  }
}

/** A package directory for kapply: the files, and its inventory (in the app's namespace). */
async function pkg(name: string, files: Record<string, string>): Promise<string> {
  const dir = path.join(work, name);
  fs.mkdirSync(dir, { recursive: true });
  for (const [file, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, file), content);
  const init = await kapply(['init', dir, '--inventory-id', `gantry-test-${name}`, '-n', app]);
  assert.equal(init.code, 0, init.out);
  return dir;
}

/** The lines kapply printed about one object, e.g. `workload.gantry.dev/web reconcile successful`. */
function linesAbout(out: string, id: string): string[] {
  return out.split('\n').filter((l) => l.startsWith(`${id} `));
}

describe('kapply (cli-utils kstatus) installs Gantry and waits on its objects', () => {
  before(async () => {
    if (!cluster.kubelet) throw new Error('this suite needs kubelet nodes (npm run cluster:up)');
    await stopGantry(cluster);
    // The manifests bring the aggregated API server, with the APIService name of the process's.
    await stopSubresources(cluster);
    await kubectlOk(['create', 'namespace', app]).catch(() => undefined);
  });

  after(async () => {
    fs.rmSync(work, { recursive: true, force: true });
  });

  let gantryPkg: string;
  let appPkg: string;

  it('applies manifests/gantry.yaml (the image and registry of this cluster patched in) and waits until all of it is Current', async () => {
    const { image } = await currentRelease();
    const registry = cluster.clusterRegistry;
    // What a GitOps repository's overlay changes: where the image and the registries are.
    const manifest = fs
      .readFileSync(path.join(repoRoot, 'manifests', 'gantry.yaml'), 'utf8')
      .replaceAll(
        'image: localhost:5001/gantry:0.1.0',
        `image: ${image.ref.replace(/:[^:/]+$/, '')}@${image.digest}`,
      )
      .replace('--insecure-registries=', `--insecure-registries=${registry}`)
      .replace('--probe-image=docker.io/library/busybox:1.37', `--probe-image=${cluster.images.counter}`);
    gantryPkg = await pkg('gantry', { 'gantry.yaml': manifest });
    const r = await kapply([
      'apply',
      gantryPkg,
      '--server-side',
      '--inventory-policy=adopt',
      '--reconcile-timeout=5m',
    ]);
    assert.equal(r.code, 0, r.out);
    for (const id of [
      'deployment.apps/gantry-controller',
      'deployment.apps/gantry-subresources',
      'daemonset.apps/gantry-agent',
    ])
      assert.ok(linesAbout(r.out, id).includes(`${id} reconcile successful`), `${id}:\n${r.out}`);
    assert.match(r.out, /reconcile result: \d+ attempted, \d+ successful, 0 skipped, 0 failed, 0 timed out/);
  });

  it('applies the quickstart objects and reports them reconciled only once Gantry says so', async () => {
    const files = Object.fromEntries(
      ['image.yaml', 'container.yaml', 'workload.yaml'].map((f) => [
        f,
        fs
          .readFileSync(path.join(repoRoot, 'examples', 'quickstart', f), 'utf8')
          .replace(/^metadata:\n/m, `metadata:\n  namespace: ${app}\n`),
      ]),
    );
    appPkg = await pkg('app', files);
    const r = await kapply(['apply', appPkg, '--server-side', '--reconcile-timeout=4m']);
    assert.equal(r.code, 0, r.out);
    for (const id of ['image.gantry.dev/web', 'container.gantry.dev/counter', 'workload.gantry.dev/web']) {
      const lines = linesAbout(r.out, id);
      assert.ok(lines.includes(`${id} reconcile successful`), `${id}:\n${r.out}`);
    }
    // And Gantry agrees: Ready, as kubectl shows.
    for (const kind of ['image/web', 'container/counter', 'workload/web']) {
      await kubectlOk(['wait', '-n', app, kind, '--for=condition=Ready', '--timeout=60s']);
    }
  });

  it('never reports a Workload whose image does not exist as reconciled', async () => {
    const broken = await pkg('broken', {
      'workload.yaml': JSON.stringify({
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Workload',
        metadata: { name: 'broken', namespace: app },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: 'broken' } },
          template: {
            metadata: { labels: { app: 'broken' } },
            spec: { image: `${cluster.registry}/gantry/does-not-exist:1` },
          },
        },
      }),
    });
    const r = await kapply(['apply', broken, '--server-side', '--reconcile-timeout=40s']);
    const id = 'workload.gantry.dev/broken';
    const lines = linesAbout(r.out, id);
    assert.ok(!lines.includes(`${id} reconcile successful`), `told a broken rollout succeeded:\n${r.out}`);
    assert.ok(
      lines.includes(`${id} reconcile timeout`) || lines.includes(`${id} reconcile failed`),
      `expected a timeout or failure for ${id}:\n${r.out}`,
    );
    assert.notEqual(r.code, 0, 'kapply exits non-zero');
    const status = await kapply(['status', broken]);
    assert.match(status.out, /InProgress|Failed/, status.out);
    const destroyed = await kapply(['destroy', broken]);
    assert.equal(destroyed.code, 0, destroyed.out);
  });

  it('destroys what it applied, the Gantry objects before Gantry, and keeps the CRDs', async () => {
    const a = await kapply(['destroy', appPkg]);
    assert.equal(a.code, 0, a.out);
    const g = await kapply(['destroy', gantryPkg]);
    assert.equal(g.code, 0, g.out);
    assert.match(
      g.out,
      /customresourcedefinition\.apiextensions\.k8s\.io\/containers\.gantry\.dev delete skipped/,
    );
    assert.ok(await getObject(['crd', 'containers.gantry.dev']), 'the CRDs stay');
    // The other suites expect the namespace they lease in.
    await kubectlOk(['delete', 'namespace', app, '--timeout=120s']);
    await kubectlOk(['create', 'namespace', 'gantry-system']).catch(() => undefined);
  });
});
