// The other ways in, checked where they cannot run: the Flux and Argo CD examples point at the
// chart and their values pass its schema; kind-config.yaml has the shape the README promises; the
// README's helm commands render.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { chartDir, templateChart } from '../../../src/install/helm.js';
import { find, parseObjects, repoRoot, type KubeObject } from './support.js';

const read = (file: string) => fs.readFileSync(path.join(repoRoot, file), 'utf8');

async function rendersWith(values: Record<string, unknown>, namespace: string): Promise<void> {
  const r = await templateChart({ release: 'gantry', namespace, values });
  assert.equal(r.code, 0, `the chart refuses these values:\n${r.stderr}`);
}

describe('GitOps examples, kind and the README', () => {
  it('the Flux example renders: a GitRepository and a HelmRelease of charts/gantry whose values the chart accepts (Flux itself is not run)', async () => {
    const objects = await parseObjects(read('examples/gitops/flux-helmrelease.yaml'));
    const repo = find(objects, 'GitRepository');
    assert.equal(repo.apiVersion, 'source.toolkit.fluxcd.io/v1');
    const release = find(objects, 'HelmRelease') as KubeObject & {
      spec: {
        targetNamespace: string;
        install: { createNamespace: boolean };
        chart: { spec: { chart: string; sourceRef: { kind: string; name: string } } };
        values: Record<string, unknown>;
      };
    };
    assert.equal(release.apiVersion, 'helm.toolkit.fluxcd.io/v2');
    assert.equal(path.resolve(repoRoot, release.spec.chart.spec.chart), path.resolve(chartDir));
    assert.deepEqual(release.spec.chart.spec.sourceRef, { kind: 'GitRepository', name: repo.metadata.name });
    assert.equal(release.spec.install.createNamespace, true);
    // Flux fetches only the chart (the ignore rules keep charts/gantry/).
    assert.match((repo.spec as { ignore: string }).ignore, /!\/charts\/gantry\//);
    await rendersWith(release.spec.values, release.spec.targetNamespace);
  });

  it('the Argo CD example renders: an Application of charts/gantry whose values the chart accepts, applied server-side (Argo CD itself is not run)', async () => {
    const app = find(
      await parseObjects(read('examples/gitops/argocd-application.yaml')),
      'Application',
    ) as KubeObject & {
      spec: {
        source: { path: string; helm: { releaseName: string; valuesObject: Record<string, unknown> } };
        destination: { namespace: string };
        syncPolicy: { syncOptions: string[] };
      };
    };
    assert.equal(app.apiVersion, 'argoproj.io/v1alpha1');
    assert.equal(path.resolve(repoRoot, app.spec.source.path), path.resolve(chartDir));
    assert.ok(app.spec.syncPolicy.syncOptions.includes('CreateNamespace=true'));
    assert.ok(app.spec.syncPolicy.syncOptions.includes('ServerSideApply=true'));
    await rendersWith(app.spec.source.helm.valuesObject, app.spec.destination.namespace);
  });

  it('describes a kind cluster of one control plane and two workers, ready for a local registry', async () => {
    const [cluster] = await parseObjects(read('kind-config.yaml'));
    const c = cluster as unknown as {
      apiVersion: string;
      kind: string;
      nodes: { role: string }[];
      containerdConfigPatches: string[];
    };
    assert.equal(c.apiVersion, 'kind.x-k8s.io/v1alpha4');
    assert.equal(c.kind, 'Cluster');
    assert.deepEqual(
      c.nodes.map((n) => n.role),
      ['control-plane', 'worker', 'worker'],
    );
    assert.match(c.containerdConfigPatches.join('\n'), /config_path = "\/etc\/containerd\/certs\.d"/);
  });

  it('says how to install on kind and that kind cannot run on CI, and its helm commands render', async () => {
    const readme = read('README.md');
    const section = readme.slice(
      readme.indexOf('## Install on a cluster'),
      readme.indexOf('## Container image'),
    );
    assert.match(section, /kind create cluster --config kind-config\.yaml/);
    assert.match(section, /kind cannot run on our CI machines/);
    assert.match(section, /docker push localhost:5001\/gantry:/);
    // The chart's default image is the one the kind steps push.
    assert.match(read('charts/gantry/values.yaml'), /^ {2}repository: localhost:5001\/gantry$/m);
    const commands = [...section.matchAll(/^ {4}helm install ((?:.*\\\n)*.*)$/gm)].map((m) =>
      m[1]!.replace(/\\\n\s*/g, ' '),
    );
    assert.ok(commands.length >= 2, 'no helm install command in the README');
    for (const command of commands) {
      const words = command.match(/'[^']*'|\S+/g)!.map((w) => w.replace(/^'|'$/g, ''));
      const set = words.flatMap((w, i) => (words[i - 1] === '--set' ? [w] : []));
      const namespace = words[words.indexOf('--namespace') + 1]!;
      const r = await templateChart({ release: words[0], namespace, set });
      assert.equal(r.code, 0, `README: helm install ${command}\n${r.stderr}`);
    }
    assert.match(readme, /docs\/operations\.md/);
  });
});
