// A Workload that follows an Image object (imageFrom) on the local cluster's two hosts: it runs the
// digest the Image resolved, and when the Image moves to a new digest that neither host holds, the
// rollout waits until both Hosts report it pulled (the Hosts' and the Containers' records, ordered
// by resourceVersion, say so), then replaces the replicas with never more than maxUnavailable down
// (the Containers' record says so).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Container, Host, Image, Workload } from '../../src/api/v1alpha1/index.js';
import { CriClient } from '../../src/cri/client.js';
import { startGantry, stopGantry } from '../../src/localcluster/gantry.js';
import { getObject, kubectl, kubectlOk, localCluster } from '../support/cluster.js';
import { eventually } from '../support/wait.js';
import { WatchRecorder } from '../support/watch.js';

const cluster = localCluster();
const hostNames = cluster.hosts.map((h) => h.name);
const cri = cluster.hosts.map((h) => new CriClient(h.criSocket));
const ns = `e2e-imagefrom-${process.pid}`;
const { web, web2 } = cluster.images;
const agentArgs = ['--renew-interval-seconds=2', '--report-interval-seconds=5'];

const apply = (manifest: object) => kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(manifest) });

const imageManifest = (image: string) => ({
  apiVersion: 'gantry.dev/v1alpha1',
  kind: 'Image',
  metadata: { name: 'app', namespace: ns },
  spec: { image },
});

const workloadManifest = {
  apiVersion: 'gantry.dev/v1alpha1',
  kind: 'Workload',
  metadata: { name: 'app', namespace: ns },
  spec: {
    replicas: 2,
    selector: { matchLabels: { app: 'app' } },
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 1 } },
    template: {
      metadata: { labels: { app: 'app' } },
      spec: {
        imageFrom: { name: 'app' },
        ports: [{ containerPort: 8080 }],
        healthCheck: { httpGet: { port: 8080 }, intervalSeconds: 1, timeoutSeconds: 1, retries: 2 },
      },
    },
  },
};

const isReady = (c: Container) =>
  c.status?.phase === 'Running' &&
  c.status.conditions?.some((x) => x.type === 'Ready' && x.status === 'True');

async function imageDigest(): Promise<Image> {
  return eventually('Image app to be resolved', async () => {
    const image = await getObject<Image>(['images.gantry.dev', '-n', ns, 'app']);
    const resolved = image?.status?.conditions?.find((c) => c.type === 'Resolved');
    return resolved?.status === 'True' && resolved.observedGeneration === image!.metadata.generation
      ? image
      : undefined;
  });
}

/** The Workload's Containers once both are Ready and run `image`, and nothing else exists. */
async function runningOnly(image: string): Promise<Container[]> {
  return eventually(
    `both replicas Ready on ${image}, nothing else`,
    async () => {
      const out = await kubectlOk(['get', 'containers.gantry.dev', '-n', ns, '-l', 'app=app', '-o', 'json']);
      const containers = (JSON.parse(out) as { items: Container[] }).items;
      const done = containers.length === 2 && containers.every((c) => isReady(c) && c.spec.image === image);
      return done ? containers : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  );
}

/** The digest the registry serves for a tag (what the Image controller resolves it to). */
async function registryDigest(reference: string): Promise<string> {
  const slash = reference.indexOf('/');
  const colon = reference.lastIndexOf(':');
  const url = `http://${reference.slice(0, slash)}/v2/${reference.slice(slash + 1, colon)}/manifests/${reference.slice(colon + 1)}`;
  const res = await fetch(url, {
    method: 'HEAD',
    headers: {
      accept: [
        'application/vnd.oci.image.index.v1+json',
        'application/vnd.oci.image.manifest.v1+json',
        'application/vnd.docker.distribution.manifest.list.v2+json',
        'application/vnd.docker.distribution.manifest.v2+json',
      ].join(', '),
    },
  });
  const digest = res.headers.get('docker-content-digest');
  assert.ok(res.ok && digest, `the registry has ${reference} (HTTP ${res.status})`);
  return digest;
}

async function page(c: Container): Promise<string> {
  const res = await fetch(`http://${c.status!.ip}:8080/`, { signal: AbortSignal.timeout(5_000) });
  return (await res.text()).trim();
}

describe('A Workload following an Image by digest (e2e)', { timeout: 600_000 }, () => {
  before(async () => {
    await startGantry(cluster, { agent: agentArgs });
    await kubectlOk(['create', 'namespace', ns]);
  });

  after(async () => {
    await kubectl(['delete', 'namespace', ns, '--wait=true', '--timeout=120s'], { timeoutMs: 150_000 });
    await stopGantry(cluster);
    for (const c of cri) c.close();
  });

  it("runs the Image's digest, and rolls out its next one only once both hosts have pulled it", async () => {
    // Neither host holds web:2, by tag or by digest (an earlier run may have left it pulled by
    // digest alone), and both Host objects say so: the new digest has to be pulled.
    const digest2 = await registryDigest(web2);
    const repo = web2.slice(0, web2.lastIndexOf(':'));
    for (const c of cri)
      for (const ref of [web2, `${repo}@${digest2}`])
        await c.removeImage({ image: { image: ref } }).catch(() => undefined);
    await eventually('the Hosts to report web:2 gone', async () => {
      const hosts = await Promise.all(hostNames.map((h) => getObject<Host>(['hosts.gantry.dev', h])));
      return hosts.every((h) => !(h?.status?.images ?? []).some((i) => i.digest === digest2));
    });

    await apply(imageManifest(web));
    const first = (await imageDigest()).status!.resolvedImage!;
    assert.match(first, /@sha256:[0-9a-f]{64}$/);
    await apply(workloadManifest);
    for (const c of await runningOnly(first)) assert.equal(await page(c), 'gantry web v1');
    const before = (await getObject<Workload>(['workloads.gantry.dev', '-n', ns, 'app']))!.status!;

    const base = `/apis/gantry.dev/v1alpha1/namespaces/${ns}`;
    const workloads = await WatchRecorder.start<Workload>(`${base}/workloads`);
    const hosts = await WatchRecorder.start<Host>('/apis/gantry.dev/v1alpha1/hosts');
    const containers = await WatchRecorder.start<Container>(`${base}/containers`, {
      labelSelector: 'app=app',
    });
    let second: string;
    try {
      await apply(imageManifest(web2));
      second = (await imageDigest()).status!.resolvedImage!;
      assert.notEqual(second, first);
      for (const c of await runningOnly(second)) assert.equal(await page(c), 'gantry web v2');
    } finally {
      await Promise.all([workloads.stop(), hosts.stop(), containers.stop()]);
    }

    // The Workload's record: a new revision that waited for the pull with none of its replicas yet.
    const statuses = workloads.events.map((e) => e.object.status).filter((s) => s !== undefined);
    const newRevision = statuses.at(-1)!.currentRevision;
    assert.notEqual(newRevision, before.currentRevision, 'a new digest is a new revision');
    const ready = (s: (typeof statuses)[number]) => s.conditions?.find((c) => c.type === 'Ready');
    // While it waits (a status written then, if the pull took long enough to be seen), nothing of
    // the new digest runs.
    const waited = statuses.filter((s) => ready(s)?.reason === 'PullingImage');
    for (const s of waited) {
      assert.equal(s.currentRevision, newRevision);
      assert.equal(s.updatedReplicas, 0, 'no replica of the new digest while the hosts pull it');
      assert.ok(ready(s)!.message.includes(`still pulling ${second}`), ready(s)!.message);
    }

    // The order of facts: every Host reported the new digest before the first Container of it was
    // created. One etcd serves this cluster, and every resourceVersion is its one revision counter,
    // so resourceVersions order events across kinds here (the API only promises them opaque).
    const rv = (o: { metadata: { resourceVersion?: string } }) => BigInt(o.metadata.resourceVersion!);
    const digest = second.slice(second.indexOf('@') + 1);
    assert.equal(digest, digest2, "the Image resolved web:2 to the registry's digest");
    const firstNew = containers.events.find((e) => e.type === 'ADDED' && e.object.spec.image === second);
    assert.ok(firstNew, 'a Container of the new digest was created');
    for (const name of hostNames) {
      const holds = hosts.events.find(
        (e) =>
          e.object.metadata.name === name && (e.object.status?.images ?? []).some((i) => i.digest === digest),
      );
      assert.ok(holds, `${name} reported ${digest}`);
      assert.ok(
        rv(holds.object) < rv(firstNew.object),
        `${name} reported the digest (resourceVersion ${rv(holds.object)}) before ${firstNew.object.metadata.name} was created (${rv(firstNew.object)})`,
      );
    }

    // The Containers' record: at least one of two available after every change.
    const violations: string[] = [];
    containers.replay((all, event) => {
      const available = [...all.values()].filter((c) => !c.metadata.deletionTimestamp && isReady(c)).length;
      if (available < 1)
        violations.push(`after ${event?.type} ${event?.object.metadata.name}: none available`);
    });
    console.log(
      `# ${statuses.length} Workload statuses, ${waited.length} waiting for the pull; ` +
        `${containers.events.length} Container events checked`,
    );
    assert.deepEqual(violations, []);
    const created = containers.events.filter((e) => e.type === 'ADDED').map((e) => e.object.spec.image);
    assert.ok(created.length >= 2 && created.every((image) => image === second), `created: ${created}`);
  });
});
