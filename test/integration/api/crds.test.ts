// The API against a real kube-apiserver, driven with kubectl as a user would: the CRDs install and
// become Established, the examples apply, discovery (categories, explain, printer columns, field
// selectors, /scale) works, every invalid fixture is refused with its message, and the transition
// rules hold on update.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { kubectl, kubectlOk } from '../../support/cluster.js';
import { eventually } from '../../support/wait.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const crdDir = `${root}crds/`;
const examplesDir = `${root}examples/`;
const fixturesDir = `${root}test/fixtures/invalid/`;
const ns = `gantry-api-it-${Date.now().toString(36)}`;
const exampleHost = 'edge-box-1';
const testHost = `gantry-api-it-${Date.now().toString(36)}`;

/** Runs fn over items with at most `limit` in flight. */
async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]!);
      }
    }),
  );
  return results;
}

async function installCrds(): Promise<void> {
  await kubectlOk([
    'apply',
    '--server-side',
    '--force-conflicts',
    '--field-manager=gantry-api-test',
    '-f',
    crdDir,
  ]);
  await kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', '-f', crdDir]);
}

describe('gantry.dev/v1alpha1 on a real apiserver', () => {
  before(async () => {
    await installCrds();
    await kubectlOk(['create', 'namespace', ns]);
  });

  after(async () => {
    // Objects first: the namespace may stay Terminating, and a running controller may hold finalizers.
    await kubectl(['delete', 'images,containers,workloads,migrations', '--all', '-n', ns, '--wait=false']);
    await kubectl(['delete', 'namespace', ns, '--wait=false', '--ignore-not-found']);
    await kubectl(['delete', 'host', exampleHost, testHost, '--wait=false', '--ignore-not-found']);
  });

  it('installs every CRD with its names, categories and Established condition', async () => {
    const out = await kubectlOk(['get', 'crd', '-l', 'app.kubernetes.io/part-of=gantry', '-o', 'name']);
    assert.deepEqual(out.trim().split('\n').sort(), [
      'customresourcedefinition.apiextensions.k8s.io/builds.gantry.dev',
      'customresourcedefinition.apiextensions.k8s.io/containers.gantry.dev',
      'customresourcedefinition.apiextensions.k8s.io/hosts.gantry.dev',
      'customresourcedefinition.apiextensions.k8s.io/images.gantry.dev',
      'customresourcedefinition.apiextensions.k8s.io/migrations.gantry.dev',
      'customresourcedefinition.apiextensions.k8s.io/workloads.gantry.dev',
    ]);
    // Discovery lags behind CRD creation.
    const resources = await eventually('discovery to list the 6 kinds', async () => {
      const r = await kubectlOk(['api-resources', '--api-group=gantry.dev', '--no-headers']);
      assert.equal(r.trim().split('\n').length, 6);
      return r;
    });
    for (const short of ['img', 'ctr', 'wl', 'hst', 'mig', 'bld'])
      assert.match(resources, new RegExp(`\\b${short}\\b`));
  });

  // Every kind's example: the reference ones and the quickstart's (not the GitOps tools' objects).
  const examples = ['', 'quickstart/'].flatMap((dir) =>
    fs
      .readdirSync(`${examplesDir}${dir}`)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => `${dir}${f}`),
  );

  for (const f of examples) {
    it(`examples/${f} applies with --dry-run=server and then for real`, async () => {
      const file = `${examplesDir}${f}`;
      const dry = await kubectlOk(['apply', '--server-side', '--dry-run=server', '-n', ns, '-f', file]);
      assert.match(dry, /serverside-applied \(server dry run\)/);
      const real = await kubectlOk(['apply', '--server-side', '-n', ns, '-f', file]);
      assert.match(real, /serverside-applied/);
    });
  }

  it('kubectl get gantry lists every kind (category)', async () => {
    const out = await kubectlOk(['get', 'gantry', '-n', ns, '-o', 'name']);
    for (const name of [
      'image.gantry.dev/web',
      'container.gantry.dev/counter',
      'workload.gantry.dev/web',
      `host.gantry.dev/${exampleHost}`,
      'migration.gantry.dev/counter-move-1',
    ]) {
      assert.ok(out.includes(name), `${name} missing from:\n${out}`);
    }
  });

  it('prints the printer columns', async () => {
    const headers: Record<string, string[]> = {
      images: ['NAME', 'REF', 'DIGEST', 'READY', 'DESIRED', 'AGE'],
      containers: ['NAME', 'HOST', 'PHASE', 'IMAGE', 'RESTARTS', 'AGE'],
      workloads: ['NAME', 'DESIRED', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'AGE'],
      migrations: ['NAME', 'CONTAINER', 'FROM', 'TO', 'PHASE', 'DOWNTIME', 'AGE'],
    };
    for (const [plural, want] of Object.entries(headers)) {
      const out = await kubectlOk(['get', plural, '-n', ns]);
      assert.deepEqual(out.split('\n')[0]!.trim().split(/\s+/), want, plural);
    }
    const hosts = await kubectlOk(['get', 'host', exampleHost]);
    assert.deepEqual(hosts.split('\n')[0]!.trim().split(/\s+/), [
      'NAME',
      'READY',
      'RUNTIME',
      'CHECKPOINT',
      'CONTAINERS',
      'AGE',
    ]);
    // The quickstart's web autoscales: no replicas of its own, so the default until its autoscaler acts.
    const workload = await kubectlOk(['get', 'workload', 'web', '-n', ns, '--no-headers']);
    assert.match(workload, /^web\s+1\s/);
  });

  it('kubectl explain describes workload.spec.placement', async () => {
    // The OpenAPI publishing lags behind CRD creation.
    const out = await eventually('kubectl explain to know workload.spec.placement', async () => {
      const text = await kubectlOk(['explain', 'workload.spec.placement']);
      assert.match(text, /maxSkew/);
      return text;
    });
    for (const field of ['nodeSelector', 'maxSkew', 'maxPerHost']) assert.match(out, new RegExp(field));
    assert.match(out, /Where replicas may run and how they spread over Hosts/);
    const nodeName = await kubectlOk(['explain', 'container.spec.nodeName']);
    assert.match(nodeName, /Cannot change once set/);
  });

  const fixtures = fs.readdirSync(fixturesDir).filter((f) => f.endsWith('.yaml'));

  it(`refuses each of the ${fixtures.length} invalid fixtures with its expected message`, async () => {
    const failures = (
      await pool(fixtures, 4, async (f) => {
        const text = fs.readFileSync(`${fixturesDir}${f}`, 'utf8');
        const expect = /^# expect: (.*)$/m.exec(text)![1]!;
        const r = await kubectl(['apply', '--server-side', '--dry-run=server', '-n', ns, '-f', '-'], {
          input: text,
        });
        if (r.code === 0) return `${f}: accepted`;
        if (!r.stderr.includes(expect)) return `${f}: expected "${expect}" in:\n${r.stderr.trim()}`;
        return undefined;
      })
    ).filter((x) => x !== undefined);
    assert.deepEqual(failures, []);
  });

  it('Container: nodeName can be set once, never changed or removed', async () => {
    const manifest = (nodeName?: string) =>
      JSON.stringify({
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Container',
        metadata: { name: 'pinned', namespace: ns },
        spec: { image: '127.0.0.1:5000/gantry/counter:1', ...(nodeName ? { nodeName } : {}) },
      });
    await kubectlOk(['apply', '--server-side', '--field-manager=it', '-f', '-'], { input: manifest() });
    await kubectlOk(['apply', '--server-side', '--field-manager=it', '-f', '-'], {
      input: manifest(testHost),
    });
    const moved = await kubectl(['apply', '--server-side', '--field-manager=it', '-f', '-'], {
      input: manifest(`${testHost}-2`),
    });
    assert.notEqual(moved.code, 0);
    assert.match(moved.stderr, /nodeName cannot be changed once the container is bound to a host/);
    const cleared = await kubectl(['apply', '--server-side', '--field-manager=it', '-f', '-'], {
      input: manifest(),
    });
    assert.notEqual(cleared.code, 0);
    assert.match(cleared.stderr, /nodeName cannot be changed/);
  });

  it('Container: its published ports are fixed once bound; other ports may change', async () => {
    const manifest = (ports: object[]) =>
      JSON.stringify({
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Container',
        metadata: { name: 'published', namespace: ns },
        spec: { image: '127.0.0.1:5000/gantry/web:1', nodeName: `${testHost}-ports`, ports },
      });
    const apply = (ports: object[]) =>
      kubectl(['apply', '--server-side', '--field-manager=it', '-f', '-'], { input: manifest(ports) });
    const published = { containerPort: 8080, hostPort: 8080 };
    assert.equal((await apply([published])).code, 0);
    const exposed = await apply([published, { containerPort: 9090 }]);
    assert.equal(exposed.code, 0, exposed.stderr);
    for (const changed of [
      [{ containerPort: 8080, hostPort: 8081 }],
      [{ ...published, hostIP: '192.0.2.10' }],
      [published, { containerPort: 9090, hostPort: 9090 }],
      [{ containerPort: 8080 }],
    ]) {
      const r = await apply(changed);
      assert.notEqual(r.code, 0, `accepted ${JSON.stringify(changed)}`);
      assert.match(r.stderr, /hostPort and hostIP cannot change once the container is bound to a host/);
    }
  });

  it('Container: agents can select their containers by spec.nodeName (selectableFields)', async () => {
    const mine = await kubectlOk([
      'get',
      'containers',
      '-n',
      ns,
      '--field-selector',
      `spec.nodeName=${testHost}`,
      '-o',
      'name',
    ]);
    assert.equal(mine.trim(), 'container.gantry.dev/pinned');
    const none = await kubectlOk([
      'get',
      'containers',
      '-n',
      ns,
      '--field-selector',
      'spec.nodeName=elsewhere',
      '-o',
      'name',
    ]);
    assert.equal(none.trim(), '');
  });

  it('Workload: kubectl scale works through /scale, and the selector is immutable', async () => {
    await kubectlOk(['scale', 'workload/web', '-n', ns, '--replicas=5']);
    assert.equal(
      await kubectlOk(['get', 'workload', 'web', '-n', ns, '-o', 'jsonpath={.spec.replicas}']),
      '5',
    );
    const scale = JSON.parse(
      await kubectlOk(['get', '--raw', `/apis/gantry.dev/v1alpha1/namespaces/${ns}/workloads/web/scale`]),
    );
    assert.equal(scale.kind, 'Scale');
    assert.equal(scale.spec.replicas, 5);
    const patch = JSON.stringify({ spec: { selector: { matchLabels: { app: 'web', tier: 'x' } } } });
    const r = await kubectl(['patch', 'workload', 'web', '-n', ns, '--type=merge', '-p', patch]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /selector is immutable/);
  });

  it('Migration: the spec is immutable', async () => {
    const r = await kubectl([
      'patch',
      'migration',
      'counter-move-1',
      '-n',
      ns,
      '--type=merge',
      '-p',
      '{"spec":{"timeoutSeconds":60}}',
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /spec is immutable/);
  });

  it('Host: a user can cordon and drain through spec', async () => {
    await kubectlOk(['patch', 'host', exampleHost, '--type=merge', '-p', '{"spec":{"drain":true}}']);
    const spec = JSON.parse(await kubectlOk(['get', 'host', exampleHost, '-o', 'jsonpath={.spec}']));
    assert.deepEqual(spec, { drain: true, maxConcurrentMigrations: 2, unschedulable: true });
  });

  it('status: the subresource accepts a valid status and refuses a malformed condition', async () => {
    const condition = {
      type: 'Ready',
      status: 'True',
      observedGeneration: 1,
      lastTransitionTime: '2025-01-31T12:00:00Z',
      reason: 'Running',
      message: 'running on host',
    };
    const status = { phase: 'Running', restartCount: 0, health: 'Healthy', conditions: [condition] };
    await kubectlOk([
      'patch',
      'container',
      'counter',
      '-n',
      ns,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status }),
    ]);
    const columns = await kubectlOk(['get', 'container', 'counter', '-n', ns, '--no-headers', '-o', 'wide']);
    assert.match(columns, /Running/);
    // What the agent writes while a deleted Container's process stops, as kubectl shows it.
    await kubectlOk([
      'patch',
      'container',
      'counter',
      '-n',
      ns,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { phase: 'Terminating' } }),
    ]);
    // Read under the PHASE header: HOST is blank for a Container not bound to a host.
    const [header, row] = (await kubectlOk(['get', 'container', 'counter', '-n', ns])).split('\n');
    assert.match(row!.slice(header!.indexOf('PHASE')), /^Terminating\s/);
    const bad = { status: { conditions: [{ ...condition, status: 'Yes' }] } };
    const r = await kubectl([
      'patch',
      'container',
      'counter',
      '-n',
      ns,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify(bad),
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Unsupported value: "Yes"/);
    const hostStatus = {
      status: { conditions: [{ ...condition, reason: 'AgentReady' }], runtimeVersion: 'containerd://2.3.7' },
    };
    await kubectlOk([
      'patch',
      'host',
      exampleHost,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify(hostStatus),
    ]);
    const host = await kubectlOk(['get', 'host', exampleHost, '--no-headers']);
    assert.match(host, new RegExp(`^${exampleHost}\\s+True\\s+containerd://2\\.3\\.7`));
  });
});
