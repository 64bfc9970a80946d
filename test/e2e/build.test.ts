// An Image built from a Dockerfile in a ConfigMap by BuildKit on the local cluster's builder host
// (host-1, buildkitd beside its agent), and a Workload following it (imageFrom): the Image's
// digest is the one the registry serves for the tag, the replicas serve what the Dockerfile put
// in, a changed Dockerfile is a new Build and a new digest the Workload rolls out to while a
// client of its Service sees no request fail, and a Dockerfile that fails leaves the Image Stalled
// with the failing line while the Workload keeps its digest. A build secret used by a RUN step is
// in none of the pushed blobs (layers, config, the registry cache's layers). A watch of Builds
// records one Build per distinct inputs: applying the same spec again, and a controller restart,
// make none. An agent killed during a build does not run it a second time: the restarted agent
// waits for the buildctl still running and reports its result (one attempt, the registry's digest).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import type { V1Service } from '@kubernetes/client-node';
import type { Build, Container, Image } from '../../src/api/v1alpha1/index.js';
import { buildkitLayout } from '../../src/localcluster/buildkit.js';
import {
  agentStateDir,
  startAgent,
  startController,
  startGantry,
  stopAgent,
  stopController,
  stopGantry,
} from '../../src/localcluster/gantry.js';
import { getObject, kubectl, kubectlOk, localCluster } from '../support/cluster.js';
import { getOnce } from '../support/http.js';
import { eventually } from '../support/wait.js';
import { WatchRecorder } from '../support/watch.js';

const cluster = localCluster();
const ns = `e2e-build-${process.pid}`;
const repository = `${cluster.registry}/e2e-build-${process.pid}/app`;
const tag = `${repository}:1`;
const secretValue = `build-secret-${process.pid}-${Date.now()}`;
const agentArgs = ['--renew-interval-seconds=2', '--report-interval-seconds=5'];

const apply = (manifest: object) => kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(manifest) });

/**
 * The Dockerfile of a version: the secret is used (its hash served), the greeting is served. The
 * secret's step names this run (`: <run>`): BuildKit's cache key of a step leaves out the secrets it
 * mounts, so an earlier run's step, with its earlier secret, would be taken from the layer cache.
 */
function dockerfile(version: string, extra = ''): string {
  return [
    `FROM ${cluster.images.web}`,
    'ARG GREETING',
    `RUN --mount=type=secret,id=token : ${ns}; sha256sum /run/secrets/token | cut -c1-64 > /www/token.sha256`,
    `RUN echo "$GREETING ${version}" > /www/index.html`,
    extra,
  ].join('\n');
}

const configMap = (content: string) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'app-src', namespace: ns },
  data: { Dockerfile: content },
});

const imageManifest = {
  apiVersion: 'gantry.dev/v1alpha1',
  kind: 'Image',
  metadata: { name: 'app', namespace: ns },
  spec: {
    image: tag,
    build: {
      context: { configMap: { name: 'app-src' } },
      buildArgs: { GREETING: 'hello from' },
      secrets: [{ id: 'token', secretKeyRef: { name: 'build-token', key: 'token' } }],
    },
  },
};

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
        // The image's httpd, serving 3 s past SIGTERM: the Service withdraws a replica as it stops.
        command: ['/bin/sh', '-c', 'httpd -f -p 8080 -h /www & trap "sleep 3; kill $!; exit 0" TERM; wait'],
        ports: [{ name: 'http', containerPort: 8080 }],
        healthCheck: { httpGet: { port: 8080 }, intervalSeconds: 1, timeoutSeconds: 1, retries: 2 },
      },
    },
  },
};

/** A Service in front of the Workload: Gantry writes its EndpointSlices, kube-proxy routes it. */
const serviceManifest = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'app', namespace: ns, labels: { 'gantry.dev/select-containers': 'true' } },
  spec: { selector: { app: 'app' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
};

/** One request of the client: what answered, or why none did. */
interface Outcome {
  startedAt: number;
  answer?: string;
  error?: string;
}

/** Calls `url` without pause and without retries, one connection per request, until stopped. */
function steadyClient(url: string): { outcomes: Outcome[]; stop: () => Promise<Outcome[]> } {
  const outcomes: Outcome[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const startedAt = Date.now();
      try {
        const res = await getOnce(url, 5_000);
        if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${res.body}`);
        outcomes.push({ startedAt, answer: res.body });
      } catch (e) {
        outcomes.push({ startedAt, error: (e as Error).message });
      }
    }
  })();
  return {
    outcomes,
    stop: async () => {
      stopped = true;
      await loop;
      return outcomes;
    },
  };
}

const manifestTypes = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

function registryURL(reference: string, kind: 'manifests' | 'blobs'): string {
  const slash = reference.indexOf('/');
  const at = reference.includes('@') ? reference.indexOf('@') : reference.lastIndexOf(':');
  return `http://${reference.slice(0, slash)}/v2/${reference.slice(slash + 1, at)}/${kind}/${reference.slice(at + 1)}`;
}

async function registryDigest(reference: string): Promise<string> {
  const res = await fetch(registryURL(reference, 'manifests'), {
    method: 'HEAD',
    headers: { accept: manifestTypes },
  });
  const digest = res.headers.get('docker-content-digest');
  assert.ok(res.ok && digest, `the registry has ${reference} (HTTP ${res.status})`);
  return digest;
}

/** Every blob a tag's manifest names (config and layers), decompressed where gzipped. */
async function blobsOf(reference: string): Promise<Buffer[]> {
  const res = await fetch(registryURL(reference, 'manifests'), { headers: { accept: manifestTypes } });
  assert.ok(res.ok, `the registry has ${reference} (HTTP ${res.status})`);
  const manifest = (await res.json()) as { config?: { digest: string }; layers?: { digest: string }[] };
  const digests = [manifest.config?.digest, ...(manifest.layers ?? []).map((l) => l.digest)];
  const blobs: Buffer[] = [];
  for (const digest of digests.filter((d): d is string => !!d)) {
    const blob = await fetch(registryURL(`${repository}@${digest}`, 'blobs'));
    assert.ok(blob.ok, `blob ${digest} of ${reference} (HTTP ${blob.status})`);
    const bytes = Buffer.from(await blob.arrayBuffer());
    blobs.push(bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes);
  }
  return blobs;
}

async function image(): Promise<Image> {
  return (await getObject<Image>(['images.gantry.dev', '-n', ns, 'app']))!;
}

/** The Image once its Build of the current inputs succeeded and it took a digest other than `previous`. */
async function built(previous?: string): Promise<Image> {
  return eventually(
    'the Image to be built',
    async () => {
      const i = await image();
      const resolved = i.status?.conditions?.find((c) => c.type === 'Resolved');
      const done =
        resolved?.status === 'True' && resolved.reason === 'Built' && i.status?.digest !== previous;
      return done ? i : undefined;
    },
    { timeoutMs: 180_000, intervalMs: 500 },
  );
}

const isReady = (c: Container) =>
  c.status?.phase === 'Running' &&
  c.status.conditions?.some((x) => x.type === 'Ready' && x.status === 'True');

async function runningOnly(resolvedImage: string): Promise<Container[]> {
  return eventually(
    `both replicas Ready on ${resolvedImage}, nothing else`,
    async () => {
      const out = await kubectlOk(['get', 'containers.gantry.dev', '-n', ns, '-l', 'app=app', '-o', 'json']);
      const containers = (JSON.parse(out) as { items: Container[] }).items;
      const done =
        containers.length === 2 && containers.every((c) => isReady(c) && c.spec.image === resolvedImage);
      return done ? containers : undefined;
    },
    { timeoutMs: 180_000, intervalMs: 500 },
  );
}

async function page(c: Container, file = ''): Promise<string> {
  const res = await fetch(`http://${c.status!.ip}:8080/${file}`, { signal: AbortSignal.timeout(5_000) });
  return (await res.text()).trim();
}

describe(
  'An Image built by BuildKit on a builder Host, followed by a Workload (e2e)',
  { timeout: 600_000 },
  () => {
    let builds: WatchRecorder<Build>;

    before(async () => {
      const socket = buildkitLayout('host-1').socket;
      assert.ok(
        fs.existsSync(socket),
        `no buildkitd on host-1 (${socket}): the local cluster predates builders; run npm run cluster:up from this checkout`,
      );
      await startGantry(cluster, { agent: agentArgs });
      await kubectlOk(['create', 'namespace', ns]);
      builds = await WatchRecorder.start<Build>(`/apis/gantry.dev/v1alpha1/namespaces/${ns}/builds`);
    });

    after(async () => {
      await builds?.stop().catch(() => undefined);
      await kubectl(['delete', 'namespace', ns, '--wait=true', '--timeout=120s'], { timeoutMs: 150_000 });
      await stopGantry(cluster);
    });

    it('builds, rolls out each new build, keeps the last good digest when one fails, and never builds the same inputs twice', async () => {
      await kubectlOk([
        'create',
        'secret',
        'generic',
        'build-token',
        '-n',
        ns,
        `--from-literal=token=${secretValue}`,
      ]);
      await apply(configMap(dockerfile('v1')));
      await apply(imageManifest);
      const v1 = await built();
      assert.equal(
        v1.status!.digest,
        await registryDigest(tag),
        "the Image's digest is the registry's for the tag",
      );
      const firstBuild = (await getObject<Build>(['builds.gantry.dev', '-n', ns, v1.status!.build!]))!;
      assert.equal(firstBuild.spec.nodeName, 'host-1');
      assert.equal(firstBuild.status?.phase, 'Succeeded');

      await apply(workloadManifest);
      const secretHash = createHash('sha256').update(secretValue).digest('hex');
      for (const c of await runningOnly(v1.status!.resolvedImage!)) {
        assert.equal(await page(c), 'hello from v1');
        assert.equal(await page(c, 'token.sha256'), secretHash, 'the RUN step read the build secret');
      }
      // A client of the Service from here on: no request may fail through the rollouts below.
      await apply(serviceManifest);
      const clusterIP = (await getObject<V1Service>(['service', '-n', ns, 'app']))!.spec!.clusterIP!;
      const url = `http://${clusterIP}/`;
      await eventually(
        'the Service to answer',
        async () => (await getOnce(url, 2_000).catch(() => undefined))?.status === 200,
      );
      const client = steadyClient(url);

      // The secret was usable in the RUN step and is in no blob pushed: the image's, or the cache's.
      for (const ref of [tag, `${repository}:buildcache`]) {
        for (const blob of await blobsOf(ref)) {
          assert.equal(blob.includes(secretValue), false, `the build secret is in a blob of ${ref}`);
        }
      }

      // The same inputs again (and a controller that starts over from a list) make no second Build.
      await apply(configMap(dockerfile('v1')));
      await apply(imageManifest);
      await stopController();
      await startController(cluster);

      await apply(configMap(dockerfile('v2')));
      const v2 = await built(v1.status!.digest);
      assert.notEqual(v2.status!.build, v1.status!.build);
      assert.equal(v2.status!.digest, await registryDigest(tag));
      for (const c of await runningOnly(v2.status!.resolvedImage!))
        assert.equal(await page(c), 'hello from v2');
      const rolledAt = Date.now();
      await eventually('the Service to answer with v2', () =>
        client.outcomes.some((o) => o.startedAt > rolledAt && o.answer === 'hello from v2'),
      );

      await apply(configMap(dockerfile('v3', 'RUN echo broken; exit 3')));
      const failed = await eventually(
        'the Image to be Stalled by the failed build',
        async () => {
          const i = await image();
          const stalled = i.status?.conditions?.find((c) => c.type === 'Stalled');
          return stalled?.status === 'True' && i.status?.build !== v2.status!.build ? i : undefined;
        },
        { timeoutMs: 180_000, intervalMs: 500 },
      );
      const conditions = failed.status!.conditions!;
      const ready = conditions.find((c) => c.type === 'Ready')!;
      const stalled = conditions.find((c) => c.type === 'Stalled')!;
      assert.equal(ready.status, 'False');
      assert.equal(ready.reason, 'BuildFailed');
      assert.match(stalled.message, /RUN echo broken; exit 3 \(Dockerfile:5\)/);
      assert.match(stalled.message, /exit code: 3/);
      assert.equal(failed.status!.digest, v2.status!.digest, 'the Image keeps the last good digest');
      const broken = (await getObject<Build>(['builds.gantry.dev', '-n', ns, failed.status!.build!]))!;
      assert.equal(broken.status?.phase, 'Failed');
      assert.match(broken.status?.logTail ?? '', /broken/);
      // Nothing rolls out: the replicas still run v2's digest.
      for (const c of await runningOnly(v2.status!.resolvedImage!))
        assert.equal(await page(c), 'hello from v2');

      const outcomes = await client.stop();
      const failures = outcomes.filter((o) => o.error);
      assert.deepEqual(failures, [], `of ${outcomes.length} requests through the rollout, these failed`);
      const answers = outcomes.map((o) => o.answer);
      const lastV1 = answers.lastIndexOf('hello from v1');
      assert.ok(
        answers.every((a, i) =>
          i <= lastV1 ? a === 'hello from v1' || a === 'hello from v2' : a === 'hello from v2',
        ),
        `v1, then v2 once v1 stopped answering: ${[...new Set(answers)].join(', ')}`,
      );
      console.log(`rollout v1 -> v2 (and a failed v3 build): ${outcomes.length} requests, none failed`);

      const record = await builds.stop();
      const created = record.filter((e) => e.type === 'ADDED').map((e) => e.object.metadata.name);
      assert.deepEqual(
        created,
        [v1.status!.build, v2.status!.build, failed.status!.build],
        'one Build per distinct inputs, each created once',
      );
    });

    it('finishes a build its agent was killed during, without running it again', async () => {
      const slowTag = `${repository}:slow`;
      await apply({
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Image',
        metadata: { name: 'slow', namespace: ns },
        spec: {
          image: slowTag,
          nodeSelector: { 'gantry.dev/builder': 'true' },
          build: {
            context: {
              files: {
                Dockerfile: `FROM ${cluster.images.web}\nRUN sleep 8 && echo ${ns} > /www/index.html\n`,
              },
            },
          },
        },
      });
      const running = await eventually(
        'the slow Build to run',
        async () => {
          const out = await kubectlOk([
            'get',
            'builds.gantry.dev',
            '-n',
            ns,
            '-l',
            'gantry.dev/image=slow',
            '-o',
            'json',
          ]);
          const [b] = (JSON.parse(out) as { items: Build[] }).items;
          return b?.status?.phase === 'Running' ? b : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 200 },
      );
      const pidFile = `${agentStateDir('host-1')}/builds/${running.metadata.uid}/buildctl.pid`;
      const buildctl = Number(fs.readFileSync(pidFile, 'utf8'));
      await stopAgent('host-1', 'SIGKILL');
      assert.ok(fs.existsSync(`/proc/${buildctl}`), 'the buildctl outlives its agent');
      await startAgent(cluster, 'host-1', agentArgs);

      const done = await eventually(
        'the slow Build to end',
        async () => {
          const b = await getObject<Build>(['builds.gantry.dev', '-n', ns, running.metadata.name!]);
          return b?.status?.phase === 'Succeeded' || b?.status?.phase === 'Failed' ? b : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 500 },
      );
      assert.equal(done.status?.phase, 'Succeeded', done.status?.message);
      assert.equal(done.status?.attempts, 1, 'one run of buildctl');
      assert.equal(done.status?.digest, await registryDigest(slowTag));
      const slow = await eventually('the slow Image to take the digest', async () => {
        const i = await getObject<Image>(['images.gantry.dev', '-n', ns, 'slow']);
        return i?.status?.digest === done.status?.digest ? i : undefined;
      });
      assert.equal(slow.status?.build, running.metadata.name);
    });
  },
);
