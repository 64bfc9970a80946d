// A Kubernetes Service in front of a Workload's replicas, on the local cluster's two hosts and its
// kube-proxy: the Service (labelled gantry.dev/select-containers=true) gets EndpointSlices of the
// replicas it selects, and requests to its ClusterIP reach every replica while the Workload scales
// 2 -> 4 -> 2 and rolls out a new template, none failing. A replica failing its health check is
// marked not ready in its slice within interval x retries, and then gets no more requests. The
// slices are checked on the apiserver's record of every change (WatchRecorder), never on samples.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { Container } from '../../src/api/v1alpha1/index.js';
import { CriClient } from '../../src/cri/client.js';
import { startGantry, stopGantry } from '../../src/localcluster/gantry.js';
import { getObject, kubectl, kubectlOk, localCluster } from '../support/cluster.js';
import { getOnce, serveName } from '../support/http.js';
import { eventually } from '../support/wait.js';
import { WatchRecorder } from '../support/watch.js';

const cluster = localCluster();
const cri = Object.fromEntries(cluster.hosts.map((h) => [h.name, new CriClient(h.criSocket)]));
const ns = `e2e-services-${process.pid}`;
const health = { intervalSeconds: 1, retries: 2 };

function workload(replicas: number, revision: string): string {
  return JSON.stringify({
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Workload',
    metadata: { name: 'web', namespace: ns },
    spec: {
      replicas,
      selector: { matchLabels: { app: 'web' } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 1 } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: {
          image: cluster.images.web,
          command: ['/bin/sh', '-c', serveName],
          env: [{ name: 'REVISION', value: revision }],
          ports: [{ name: 'http', containerPort: 8080 }],
          healthCheck: { httpGet: { port: 8080, path: '/healthz' }, timeoutSeconds: 1, ...health },
        },
      },
    },
  });
}

const service = JSON.stringify({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web', namespace: ns, labels: { 'gantry.dev/select-containers': 'true' } },
  spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
});

const applyWorkload = (replicas: number, revision = '1') =>
  kubectlOk(['apply', '-f', '-'], { input: workload(replicas, revision) });

const isReady = (c: Container) =>
  c.status?.phase === 'Running' &&
  c.status.conditions?.some((x) => x.type === 'Ready' && x.status === 'True');

async function containers(): Promise<Container[]> {
  const out = await kubectlOk(['get', 'containers.gantry.dev', '-n', ns, '-o', 'json']);
  return (JSON.parse(out) as { items: Container[] }).items;
}

/** Waits until the Workload runs exactly `replicas` ready Containers of `revision`. */
async function converged(replicas: number, revision = '1'): Promise<Container[]> {
  return eventually(
    `web to run ${replicas} ready replicas of revision ${revision} and nothing else`,
    async () => {
      const cs = await containers();
      const current = (c: Container) => c.spec.env?.some((e) => e.value === revision);
      return cs.length === replicas && cs.every((c) => isReady(c) && current(c)) && cs;
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  );
}

/** Gantry's endpoints of the Service in one recorded state: address -> ready. */
function endpoints(slices: ReadonlyMap<string, V1EndpointSlice>): Map<string, boolean> {
  const out = new Map<string, boolean>();
  for (const s of slices.values()) {
    if (s.metadata?.labels?.['endpointslice.kubernetes.io/managed-by'] !== 'gantry.dev') continue;
    for (const e of s.endpoints ?? []) out.set(e.addresses[0]!, e.conditions?.ready === true);
  }
  return out;
}

const readyAddresses = (slices: ReadonlyMap<string, V1EndpointSlice>) =>
  [...endpoints(slices)].filter(([, ready]) => ready).map(([ip]) => ip);

/** Waits until the record shows exactly these Containers' addresses as ready endpoints. */
async function sliceLists(record: WatchRecorder<V1EndpointSlice>, cs: Container[]): Promise<void> {
  const want = cs.map((c) => c.status!.ip!).sort();
  let got: string[] = [];
  await eventually(`the slices to list ${want.join(', ')} as ready`, () => {
    got = readyAddresses(record.current()).sort();
    return JSON.stringify(got) === JSON.stringify(want);
  }).catch((e: Error) => {
    throw new Error(`${e.message}; they list ${got.join(', ') || 'none'}`);
  });
}

let clusterIP = '';

/** One request through the Service's ClusterIP (kube-proxy's rules): the name of the replica that answered. */
async function call(): Promise<string> {
  const res = await getOnce(`http://${clusterIP}/`, 5_000);
  assert.equal(res.status, 200, `${clusterIP} answered ${res.status}: ${res.body}`);
  return res.body;
}

/** Calls until every one of `cs` has answered (kube-proxy follows the slices within a moment). */
async function everyReplicaAnswers(cs: Container[]): Promise<void> {
  const want = new Set(cs.map((c) => c.metadata.name!));
  const seen = new Set<string>();
  await eventually(`${[...want].join(', ')} to answer through the ClusterIP`, async () => {
    seen.add(await call());
    return [...want].every((n) => seen.has(n));
  }).catch((e: Error) => {
    throw new Error(`${e.message}; answered: ${[...seen].join(', ')}`);
  });
}

/**
 * Calls the Service without pause until `during` settles; every call must succeed and be answered
 * by a Container of the Workload. Returns how many calls were made.
 */
async function callThroughout(during: Promise<unknown>): Promise<number> {
  let done = false;
  const settled = during.finally(() => (done = true));
  let calls = 0;
  const failures: string[] = [];
  while (!done) {
    calls++;
    await call()
      .then((name) => assert.match(name, /^web-/))
      .catch((e: unknown) => failures.push(String(e)));
  }
  await settled;
  assert.deepEqual(failures, [], `${failures.length} of ${calls} calls failed`);
  return calls;
}

describe('Services (e2e)', { timeout: 600_000 }, () => {
  let record: WatchRecorder<V1EndpointSlice>;

  before(async () => {
    await startGantry(cluster, { agent: ['--restart-backoff-seconds=1'] });
    await kubectlOk(['create', 'namespace', ns]);
    record = await WatchRecorder.start<V1EndpointSlice>(
      `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
      { labelSelector: 'kubernetes.io/service-name=web' },
    );
  });

  after(async () => {
    await record?.stop().catch(() => undefined);
    await kubectl(['delete', 'namespace', ns, '--wait=true', '--timeout=120s'], { timeoutMs: 150_000 });
    await stopGantry(cluster);
    for (const c of Object.values(cri)) c.close();
  });

  it("lists the ready replicas in the Service's slices and routes to each while scaling and rolling out", async () => {
    await applyWorkload(2);
    await kubectlOk(['apply', '-f', '-'], { input: service });
    clusterIP = (await getObject<V1Service>(['service', '-n', ns, 'web']))!.spec!.clusterIP!;
    let cs = await converged(2);
    await sliceLists(record, cs);
    const [slice] = [...record.current().values()].filter(
      (s) => s.metadata?.labels?.['endpointslice.kubernetes.io/managed-by'] === 'gantry.dev',
    );
    // The named targetPort resolved through the template's ports; the Service owns the slice.
    assert.deepEqual(slice!.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
    assert.equal(slice!.metadata?.ownerReferences?.[0]?.kind, 'Service');
    await everyReplicaAnswers(cs);
    const firstReady = record.events.length;

    const steps: [string, () => Promise<Container[]>][] = [
      ['scale to 4', () => applyWorkload(4).then(() => converged(4))],
      ['scale to 2', () => applyWorkload(2).then(() => converged(2))],
      ['roll out revision 2', () => applyWorkload(2, '2').then(() => converged(2, '2'))],
    ];
    for (const [what, step] of steps) {
      const running = step().then(async (now) => {
        await sliceLists(record, now);
        return now;
      });
      const calls = await callThroughout(running);
      cs = await running;
      await everyReplicaAnswers(cs);
      console.log(
        `${what}: ${calls} calls, none failed; serving ${cs.map((c) => c.metadata.name).join(', ')}`,
      );
    }

    // From the first ready endpoint on, every state the apiserver went through had one.
    let states = 0;
    record.replay((live, event) => {
      if (!event || record.events.indexOf(event) < firstReady) return;
      states++;
      assert.ok(readyAddresses(live).length > 0, `no ready endpoint after ${event.type} of a slice`);
    });
    assert.ok(states > 0, 'scaling and the rollout changed the slices');
  });

  it('marks a replica failing its health check not ready within interval x retries, and stops sending it requests', async () => {
    await applyWorkload(2, '2');
    const [sick, well] = await converged(2, '2');
    const failedAt = Date.now();
    await cri[sick!.spec.nodeName!]!.execSync({
      containerId: sick!.status!.containerID!,
      cmd: ['rm', '/tmp/www/healthz'],
      timeout: 5,
    });
    const marked = await eventually(`${sick!.metadata.name} to be marked not ready`, () =>
      record.events.find(
        (e) =>
          e.receivedAt >= failedAt && endpoints(new Map([['s', e.object]])).get(sick!.status!.ip!) === false,
      ),
    );
    const tookMs = marked.receivedAt - failedAt;
    const boundMs = health.intervalSeconds * health.retries * 1000;
    console.log(`not ready in its slice ${tookMs} ms after its health check began failing`);
    // Up to one interval until the first failing check, plus a check's timeout and the writes.
    assert.ok(tookMs <= boundMs + 3_000, `${tookMs} ms, more than ${boundMs} ms and 3 s of slack`);

    await eventually('kube-proxy to send every request to the healthy replica', async () => {
      for (let i = 0; i < 5; i++) if ((await call()) !== well!.metadata.name) return false;
      return true;
    });
    for (let i = 0; i < 30; i++) assert.equal(await call(), well!.metadata.name);

    await cri[sick!.spec.nodeName!]!.execSync({
      containerId: sick!.status!.containerID!,
      cmd: ['touch', '/tmp/www/healthz'],
      timeout: 5,
    });
    await sliceLists(record, [sick!, well!]);
    await everyReplicaAnswers([sick!, well!]);
  });

  it('deletes its slices when the Service stops selecting Containers', async () => {
    assert.ok(endpoints(record.current()).size > 0, 'the Service has slices of Gantry to begin with');
    await kubectlOk(['label', 'service', '-n', ns, 'web', 'gantry.dev/select-containers-']);
    await eventually('the slices of Gantry to go', () => endpoints(record.current()).size === 0);
  });
});
