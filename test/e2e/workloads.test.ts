// Workloads as a user drives them, with kubectl, on the local cluster's two hosts: image-aware
// placement, spread, kubectl scale, Containers shown Terminating while they stop, a rolling update
// watched event by event, rollback by re-applying, the /scale contract an HPA needs, built-in
// autoscaling (and its word when it undoes a manual scale), a host lost and back, and every host
// quiet at once (nothing evicted).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { V1Lease } from '@kubernetes/client-node';
import type { Container, Host, Workload } from '../../src/api/v1alpha1/index.js';
import { CriClient } from '../../src/cri/client.js';
import { hostLeaseName } from '../../src/api/v1alpha1/index.js';
import { labels as runtimeLabels } from '../../src/agent/runtimespec.js';
import { startRuntime, stopRuntime } from '../../src/localcluster/cluster.js';
import { startAgent, startGantry, stopAgent, stopGantry } from '../../src/localcluster/gantry.js';
import { systemNamespace } from '../../src/localcluster/state.js';
import { getObject, kubectl, kubectlOk, localCluster } from '../support/cluster.js';
import { eventually } from '../support/wait.js';
import { WatchRecorder } from '../support/watch.js';

const cluster = localCluster();
const [host1, host2] = cluster.hosts.map((h) => h.name) as [string, string];
const cri = Object.fromEntries(cluster.hosts.map((h) => [h.name, new CriClient(h.criSocket)]));
const ns = `e2e-workloads-${process.pid}`;
const web1 = cluster.images.web;
const web2 = cluster.images.web2;
// A short grace and fast heartbeats and reports, so losing a host takes seconds, not a minute.
const controllerArgs = ['--host-lost-grace=10s', '--autoscale-sync-period=3s'];
const agentArgs = [
  '--renew-interval-seconds=2',
  '--report-interval-seconds=5',
  '--stats-interval-seconds=3',
  '--restart-backoff-seconds=1',
];

interface WorkloadOptions {
  replicas?: number;
  image?: string;
  extra?: Record<string, unknown>;
  template?: Record<string, unknown>;
}

function workloadManifest(name: string, o: WorkloadOptions = {}): string {
  return JSON.stringify({
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Workload',
    metadata: { name, namespace: ns },
    spec: {
      replicas: o.replicas ?? 4,
      selector: { matchLabels: { app: name } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 1 } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          image: o.image ?? web1,
          ports: [{ containerPort: 8080 }],
          healthCheck: { httpGet: { port: 8080 }, intervalSeconds: 1, timeoutSeconds: 1, retries: 2 },
          ...o.template,
        },
      },
      ...o.extra,
    },
  });
}

const apply = (name: string, o?: WorkloadOptions) =>
  kubectlOk(['apply', '-f', '-'], { input: workloadManifest(name, o) });

const isReady = (c: Container) =>
  c.status?.phase === 'Running' &&
  c.status.conditions?.some((x) => x.type === 'Ready' && x.status === 'True');

async function containersOf(workload: string): Promise<Container[]> {
  const out = await kubectlOk([
    'get',
    'containers.gantry.dev',
    '-n',
    ns,
    '-l',
    `gantry.dev/workload=${workload}`,
    '-o',
    'json',
  ]);
  return (JSON.parse(out) as { items: Container[] }).items;
}

const getWorkload = (name: string) => getObject<Workload>(['workloads.gantry.dev', '-n', ns, name]);

/**
 * Waits until the Workload has converged: `replicas` ready at the current generation, no others,
 * and `where` holds for them.
 */
async function converged(
  name: string,
  replicas: number,
  opts: { timeoutMs?: number; where?: (containers: Container[]) => boolean } = {},
): Promise<Container[]> {
  let seen = '';
  return eventually(
    `${name} to have ${replicas} ready replicas and nothing else`,
    async () => {
      const wl = await getWorkload(name);
      const containers = await containersOf(name);
      const s = wl?.status;
      seen = JSON.stringify({
        status: s,
        containers: containers.map((c) => [c.metadata.name, c.status?.phase]),
      });
      const ready = s?.conditions?.find((c) => c.type === 'Ready');
      const done =
        s?.observedGeneration === wl?.metadata.generation &&
        ready?.status === 'True' &&
        s?.readyReplicas === replicas &&
        s?.updatedReplicas === replicas &&
        containers.length === replicas &&
        containers.every(isReady) &&
        (opts.where?.(containers) ?? true);
      return done ? containers : undefined;
    },
    { timeoutMs: opts.timeoutMs ?? 90_000, intervalMs: 500 },
  ).catch((e: Error) => {
    throw new Error(`${e.message}; last: ${seen}`);
  });
}

const perHost = (containers: Container[]) =>
  containers.reduce<Record<string, number>>((acc, c) => {
    const h = c.spec.nodeName ?? '-';
    return { ...acc, [h]: (acc[h] ?? 0) + 1 };
  }, {});

async function page(c: Container): Promise<string> {
  const res = await fetch(`http://${c.status!.ip}:8080/`, { signal: AbortSignal.timeout(5_000) });
  return (await res.text()).trim();
}

async function hostHasImage(host: string, image: string): Promise<boolean> {
  const h = await getObject<Host>(['hosts.gantry.dev', host]);
  return (h?.status?.images ?? []).some((i) => (i.names ?? []).includes(image));
}

/**
 * Both Hosts Ready, with heartbeats renewed since `since`: a controller started before its agents
 * may have counted them as lost meanwhile, and tests must not start during that.
 */
async function hostsHealthy(since: number): Promise<void> {
  await eventually(
    'both hosts to renew their heartbeats and be Ready',
    async () => {
      for (const name of [host1, host2]) {
        const lease = await getObject<V1Lease>(['lease', '-n', systemNamespace, hostLeaseName(name)]);
        const host = await getObject<Host>(['hosts.gantry.dev', name]);
        const ready = host?.status?.conditions?.find((c) => c.type === 'Ready');
        if (!(Date.parse(String(lease?.spec?.renewTime)) > since && ready?.status === 'True')) return false;
      }
      return true;
    },
    { timeoutMs: 90_000 },
  );
}

let host2Down = false;
let hostsDown = false;

describe('Workloads (e2e)', { timeout: 600_000 }, () => {
  before(async () => {
    const started = Date.now();
    await startGantry(cluster, { controller: controllerArgs, agent: agentArgs });
    await hostsHealthy(started);
    await kubectlOk(['create', 'namespace', ns]);
  });

  after(async () => {
    if (host2Down) {
      await startRuntime(host2);
      await startAgent(cluster, host2, agentArgs);
    }
    if (hostsDown) await Promise.all([host1, host2].map((h) => startAgent(cluster, h, agentArgs)));
    await kubectl(['delete', 'namespace', ns, '--wait=true', '--timeout=120s'], { timeoutMs: 150_000 });
    await stopGantry(cluster);
    for (const c of Object.values(cri)) c.close();
  });

  it('with equal spread, places a replica on the host that already has the image', async () => {
    // Only host-2 holds web:1, and both Host objects say so before the Workload exists.
    await cri[host1]!.removeImage({ image: { image: web1 } }).catch(() => undefined);
    await cri[host2]!.pullImage({ image: { image: web1 } });
    await eventually(
      'the Hosts to report where web:1 is',
      async () => (await hostHasImage(host2, web1)) && !(await hostHasImage(host1, web1)),
    );
    await apply('local', { replicas: 1 });
    const [c] = await converged('local', 1);
    assert.equal(c!.spec.nodeName, host2, 'host-2 has the image; by name alone host-1 would win');
    await kubectlOk(['delete', 'workload.gantry.dev', '-n', ns, 'local', '--wait=true']);
  });

  it('spreads 4 replicas 2/2, all Ready, each answering HTTP', async () => {
    await apply('web');
    const containers = await converged('web', 4);
    assert.deepEqual(perHost(containers), { [host1]: 2, [host2]: 2 });
    for (const c of containers) assert.equal(await page(c), 'gantry web v1');
    const wl = (await getWorkload('web'))!;
    assert.equal(wl.status?.selector, 'app=web');
    assert.deepEqual(Object.fromEntries((wl.status?.conditions ?? []).map((c) => [c.type, c.status])), {
      Available: 'True',
      Progressing: 'True',
      Ready: 'True',
    });
    const owner = containers[0]!.metadata.ownerReferences?.[0];
    assert.equal(owner?.kind, 'Workload');
    assert.equal(owner?.controller, true);
  });

  it('scales with kubectl scale to 8, to 0 and back to 4', async () => {
    await kubectlOk(['scale', '-n', ns, 'workload.gantry.dev/web', '--replicas=8']);
    assert.deepEqual(perHost(await converged('web', 8)), { [host1]: 4, [host2]: 4 });
    await kubectlOk(['scale', '-n', ns, 'workload.gantry.dev/web', '--replicas=0']);
    await converged('web', 0);
    await kubectlOk(['scale', '-n', ns, 'workload.gantry.dev/web', '--replicas=4']);
    assert.deepEqual(perHost(await converged('web', 4)), { [host1]: 2, [host2]: 2 });
  });

  it('shows the Containers of a scale-down Terminating until their processes are gone', async () => {
    const grace = 5;
    await apply('stubborn', {
      replicas: 2,
      template: {
        // Ignores SIGTERM: each stop takes the whole grace period, then SIGKILL.
        command: ['/bin/sh', '-c', 'trap "" TERM; while :; do sleep 1; done'],
        terminationGracePeriodSeconds: grace,
        healthCheck: undefined,
        ports: undefined,
      },
    });
    await converged('stubborn', 2);
    const recorder = await WatchRecorder.start<Container>(
      `/apis/gantry.dev/v1alpha1/namespaces/${ns}/containers`,
      { labelSelector: 'app=stubborn' },
    );
    try {
      await kubectlOk(['scale', '-n', ns, 'workload.gantry.dev/stubborn', '--replicas=0']);
      await converged('stubborn', 0);
    } catch (e) {
      await recorder.stop().catch(() => undefined);
      throw e;
    }
    await recorder.stop();
    const names = recorder.initial.map((c) => c.metadata.name!);
    assert.equal(names.length, 2);
    for (const name of names) {
      const events = recorder.events.filter((e) => e.object.metadata.name === name);
      const seen = events.map((e) => `${e.type} ${e.object.status?.phase}`).join(', ');
      const first = events.findIndex((e) => e.object.status?.phase === 'Terminating');
      const gone = events.findIndex((e) => e.type === 'DELETED');
      assert.ok(first >= 0 && gone > first, `${name} showed Terminating before it went: ${seen}`);
      const terminating = events[first]!.object;
      assert.ok(terminating.metadata.deletionTimestamp, `${name}: Terminating once deleted`);
      const conditions = Object.fromEntries((terminating.status?.conditions ?? []).map((c) => [c.type, c]));
      assert.equal(conditions.Ready?.status, 'False');
      assert.equal(conditions.Reconciling?.status, 'True', 'kstatus: in progress, not stalled');
      assert.equal(conditions.Stalled, undefined);
      assert.ok(
        events.slice(first, gone).every((e) => e.object.status?.phase === 'Terminating'),
        `${name}: nothing else was said while it stopped: ${seen}`,
      );
      // Shown for the grace period the process took, not for a moment.
      const shownMs = events[gone]!.receivedAt - events[first]!.receivedAt;
      assert.ok(shownMs >= (grace - 1) * 1000, `${name}: Terminating for ${shownMs} ms only`);
    }
    await kubectlOk(['delete', 'workload.gantry.dev', '-n', ns, 'stubborn', '--wait=true']);
  });

  it('rolls out a new image with never more than maxUnavailable replicas unavailable', async () => {
    const before = (await getWorkload('web'))!.status!.currentRevision;
    // Every change of every Container of the Workload, in the apiserver's order, from before the
    // update until it has converged; then the availability after each change is checked.
    const recorder = await WatchRecorder.start<Container>(
      `/apis/gantry.dev/v1alpha1/namespaces/${ns}/containers`,
      {
        labelSelector: 'app=web',
      },
    );
    try {
      await apply('web', { image: web2 });
      const containers = await converged('web', 4);
      for (const c of containers) assert.equal(await page(c), 'gantry web v2');
    } catch (e) {
      await recorder.stop().catch(() => undefined);
      throw e;
    }
    await recorder.stop();
    const violations: string[] = [];
    let maxLive = 0;
    recorder.replay((all, event) => {
      const live = [...all.values()].filter((c) => !c.metadata.deletionTimestamp);
      const available = live.filter(isReady).length;
      maxLive = Math.max(maxLive, live.length);
      const after = event ? `after ${event.type} ${event.object.metadata.name}` : 'before';
      if (available < 3) violations.push(`${after}: ${available} available`);
      if (live.length > 5) violations.push(`${after}: ${live.length} exist`);
    });
    const events = recorder.events.length;
    console.log(`# rolling update: ${events} container events checked, at most ${maxLive} existed at once`);
    assert.deepEqual(violations, []);
    assert.ok(events > 8, `the watch saw the rollout (${events} events)`);

    // GitOps rollback: applying the old manifest brings back the old revision.
    await apply('web');
    const back = await converged('web', 4);
    assert.equal((await getWorkload('web'))!.status!.currentRevision, before);
    for (const c of back) assert.equal(await page(c), 'gantry web v1');
  });

  it('offers /scale as an HPA needs it, and the apiserver accepts an HPA for a Workload', async () => {
    const scale = JSON.parse(
      await kubectlOk(['get', '--raw', `/apis/gantry.dev/v1alpha1/namespaces/${ns}/workloads/web/scale`]),
    ) as { spec: { replicas: number }; status: { replicas: number; selector: string } };
    assert.deepEqual(scale.spec, { replicas: 4 });
    assert.deepEqual(scale.status, { replicas: 4, selector: 'app=web' });
    const hpa = {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: 'web', namespace: ns },
      spec: {
        scaleTargetRef: { apiVersion: 'gantry.dev/v1alpha1', kind: 'Workload', name: 'web' },
        minReplicas: 2,
        maxReplicas: 10,
        metrics: [
          {
            type: 'Resource',
            resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } },
          },
        ],
      },
    };
    const out = await kubectlOk(['apply', '--dry-run=server', '-f', '-'], { input: JSON.stringify(hpa) });
    assert.match(out, /horizontalpodautoscaler.autoscaling\/web created \(server dry run\)/);
  });

  it('autoscales on the CPU use the agents report', async () => {
    // Each replica spins under a 100m quota: 100% of a 100m request, twice the 50% target.
    await apply('busy', {
      replicas: 1,
      template: {
        command: ['/bin/sh', '-c', 'trap "exit 0" TERM; while :; do :; done'],
        resources: { requests: { cpu: '100m' }, limits: { cpu: '100m' } },
        healthCheck: undefined,
        ports: undefined,
      },
      extra: { autoscale: { minReplicas: 1, maxReplicas: 3, targetCPUUtilizationPercent: 50 } },
    });
    await eventually(
      'the autoscaler to take busy to its maximum of 3',
      async () => (await getWorkload('busy'))?.spec.replicas === 3,
      { timeoutMs: 120_000, intervalMs: 1_000 },
    );
    const events = await kubectlOk([
      'get',
      'events',
      '-n',
      ns,
      '--field-selector',
      'reason=SuccessfulRescale',
      '-o',
      'name',
    ]);
    assert.ok(events.trim().length > 0, 'each decision is an event');
    await kubectlOk(['delete', 'workload.gantry.dev', '-n', ns, 'busy', '--wait=true']);
  });

  it('says with a Warning event when the autoscaler undoes a scale made by hand', async () => {
    await apply('floor', {
      replicas: 2,
      template: {
        command: ['/bin/sh', '-c', 'trap "exit 0" TERM; while :; do sleep 1; done'],
        resources: { requests: { cpu: '100m' } },
        healthCheck: undefined,
        ports: undefined,
      },
      extra: { autoscale: { minReplicas: 2, maxReplicas: 3 } },
    });
    await converged('floor', 2);
    await kubectlOk(['scale', '-n', ns, 'workload.gantry.dev/floor', '--replicas=1']);
    const overridden = await eventually(
      'a ManualScaleOverridden event about floor',
      async () => {
        const list = JSON.parse(
          await kubectlOk([
            'get',
            'events',
            '-n',
            ns,
            '--field-selector',
            'reason=ManualScaleOverridden,involvedObject.name=floor',
            '-o',
            'json',
          ]),
        ) as { items: { type: string; message: string }[] };
        return list.items[0];
      },
      { timeoutMs: 60_000, intervalMs: 1_000 },
    );
    assert.equal(overridden.type, 'Warning');
    assert.match(overridden.message, /^spec\.replicas 1, set by kubectl\S*, overridden to 2: /);
    assert.match(overridden.message, /between 2 and 3 \(replicas below minReplicas\)/);
    assert.equal((await getWorkload('floor'))?.spec.replicas, 2);
    await kubectlOk(['delete', 'workload.gantry.dev', '-n', ns, 'floor', '--wait=true']);
  });

  it('replaces the Containers of a lost host on the other one, and cleans up when it returns', async () => {
    await kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Container',
        metadata: { name: 'bare', namespace: ns },
        spec: { image: web1, nodeName: host2 },
      }),
    });
    await eventually('the bare Container to run on host-2', async () => {
      const c = await getObject<Container>(['containers.gantry.dev', '-n', ns, 'bare']);
      return c && isReady(c);
    });
    const started = Date.now();
    host2Down = true;
    await stopAgent(host2, 'SIGKILL');
    await stopRuntime(host2);
    await converged('web', 4, {
      timeoutMs: 120_000,
      where: (containers) => containers.every((c) => c.spec.nodeName === host1),
    });
    const seconds = (Date.now() - started) / 1000;
    console.log(`# host lost: 4 replicas ready on ${host1} ${seconds.toFixed(1)}s after ${host2} stopped`);
    const lost = (await getObject<Host>(['hosts.gantry.dev', host2]))!;
    const ready = lost.status?.conditions?.find((c) => c.type === 'Ready');
    assert.deepEqual([ready?.status, ready?.reason], ['Unknown', 'HeartbeatLost']);
    const bare = (await getObject<Container>(['containers.gantry.dev', '-n', ns, 'bare']))!;
    assert.equal(bare.status?.phase, 'Unknown');
    assert.equal(bare.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'Unknown');

    const restarted = Date.now();
    await startRuntime(host2);
    await startAgent(cluster, host2, agentArgs);
    host2Down = false;
    await hostsHealthy(restarted);
    await eventually(
      'host-2 to remove what ran for the deleted Containers',
      async () => {
        const { items } = await cri[host2]!.listPodSandbox({
          filter: { labelSelector: { [runtimeLabels.namespace]: ns } },
        });
        return items.every((s) => s.metadata?.name === 'bare');
      },
      { timeoutMs: 90_000 },
    );
    await eventually('the bare Container to be Running again on host-2', async () => {
      const c = await getObject<Container>(['containers.gantry.dev', '-n', ns, 'bare']);
      return c && isReady(c);
    });
  });

  it('evicts nothing when every host goes quiet at once, and carries on when they are back', async () => {
    // What a control-plane outage looks like to the controller: no heartbeat from anyone.
    const before = await converged('web', 4);
    const uids = before.map((c) => c.metadata.uid).sort();
    hostsDown = true;
    await Promise.all([host1, host2].map((h) => stopAgent(h, 'SIGKILL')));
    await eventually(
      'both Hosts to be marked Unknown, with nothing evicted',
      async () => {
        for (const name of [host1, host2]) {
          const h = await getObject<Host>(['hosts.gantry.dev', name]);
          const ready = h?.status?.conditions?.find((c) => c.type === 'Ready');
          if (ready?.status !== 'Unknown' || !/nothing is evicted/.test(ready.message)) return false;
        }
        return true;
      },
      { timeoutMs: 60_000 },
    );
    const during = await containersOf('web');
    assert.deepEqual(during.map((c) => c.metadata.uid).sort(), uids, 'the same four Containers');
    assert.ok(
      during.every((c) => !c.metadata.deletionTimestamp && c.status?.phase === 'Unknown'),
      JSON.stringify(during.map((c) => [c.metadata.name, c.status?.phase, c.metadata.deletionTimestamp])),
    );

    const restarted = Date.now();
    await Promise.all([host1, host2].map((h) => startAgent(cluster, h, agentArgs)));
    hostsDown = false;
    await hostsHealthy(restarted);
    const after = await converged('web', 4);
    assert.deepEqual(after.map((c) => c.metadata.uid).sort(), uids, 'adopted, not replaced');
  });
});
