// Gantry the way its users run it: `helm install` of charts/gantry onto kubelet nodes, the
// controller as a Deployment under the restricted Pod Security level and the agent as a DaemonSet,
// both from Gantry's image built here; then upgraded from the release before, used, failed over
// and uninstalled. Beside it, a kubelet runs a Pod on the same node for more than ten minutes,
// restarts, and collects images: Gantry's containers live on, in a containerd of their own. Users
// read Containers' logs with `kubectl gantry logs` through the aggregated API server the chart
// installs.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { CoreV1Event, V1Lease, V1Pod } from '@kubernetes/client-node';
import type { Container, Host, Migration, Workload } from '../../src/api/v1alpha1/index.js';
import { CriClient } from '../../src/cri/client.js';
import { labels as runtimeLabels } from '../../src/agent/runtimespec.js';
import { kubeletRuntimeSocket, restartKubelet } from '../../src/localcluster/cluster.js';
import { chartValues, startGantry, stopGantry } from '../../src/localcluster/gantry.js';
import { stopSubresources } from '../../src/localcluster/subresources.js';
import { getObject, kubectl, kubectlOk, localCluster } from '../support/cluster.js';
import { maxOverlap } from '../support/intervals.js';
import { RuntimeRecorder, runIntervals, type RuntimeRun } from '../support/runtime.js';
import { typed, userKubeconfig, userWithRole } from '../support/users.js';
import { eventually } from '../support/wait.js';
import { WatchRecorder } from '../support/watch.js';
import {
  currentRelease,
  gantryRuntimes,
  helmOk,
  nodeScriptIn,
  pods,
  previousRelease,
  readyPods,
  releaseAt,
  requestWithPodToken,
  type Release,
} from './support.js';

const cluster = localCluster();
const hosts = cluster.hosts.map((h) => h.name);
const [host1, host2] = hosts as [string, string];
const release = 'gantry';
const ns = 'gantry-system';
const agentNs = `${ns}-agent`;
const app = 'install-app';
const controllerSelector = 'app.kubernetes.io/component=controller';
const agentSelector = 'app.kubernetes.io/component=agent';
const apiServerSelector = 'app.kubernetes.io/component=subresources';
const apiService = 'v1alpha1.subresources.gantry.dev';
const cri = gantryRuntimes();
let current: Release;

const container = (name: string, spec: Record<string, unknown>, namespace = app) => ({
  apiVersion: 'gantry.dev/v1alpha1',
  kind: 'Container',
  metadata: { name, namespace },
  spec,
});

async function apply(obj: unknown, as?: string): Promise<void> {
  await kubectlOk(['apply', '--server-side', ...(as ? ['--as', as] : []), '-f', '-'], {
    input: JSON.stringify(obj),
  });
}

async function getContainer(name: string): Promise<Container | undefined> {
  return getObject<Container>(['container', '-n', app, name]);
}

async function running(name: string, timeoutMs = 180_000): Promise<Container> {
  return explained(
    [name],
    eventually(
      `Container ${name} Running`,
      async () => {
        const c = await getContainer(name);
        return c?.status?.phase === 'Running' && c.status.containerID ? c : undefined;
      },
      { timeoutMs, intervalMs: 500 },
    ),
  );
}

/** A failed wait says where these Containers stand: their status and Events. */
async function explained<T>(names: string[], wait: Promise<T>): Promise<T> {
  try {
    return await wait;
  } catch (e) {
    const states = await Promise.all(
      names.map(async (n) => `${n}: ${JSON.stringify((await getContainer(n))?.status ?? 'absent')}`),
    );
    throw new Error(`${(e as Error).message}\n${states.join('\n')}\n${await eventsOf(names)}`);
  }
}

/** The counter's value, read inside its container through its host's runtime. */
async function count(c: Container): Promise<number> {
  const r = await cri[c.spec.nodeName!]!.execSync({
    containerId: c.status!.containerID!,
    cmd: ['cat', '/tmp/count'],
    timeout: 5,
  });
  return Number(r.stdout.toString().trim());
}

async function appContainers(): Promise<Container[]> {
  return (await getObject<{ items: Container[] }>(['containers', '-n', app]))?.items ?? [];
}

async function workloadReady(name: string, replicas: number): Promise<void> {
  await eventually(
    `Workload ${name}: ${replicas} ready`,
    async () => {
      const w = await getObject<Workload>(['workload', '-n', app, name]);
      const live = (await appContainers()).filter((c) => c.metadata.labels?.['gantry.dev/workload'] === name);
      return (
        (w?.status?.readyReplicas ?? 0) === replicas &&
        live.filter((c) => !c.metadata.deletionTimestamp).length === replicas &&
        (replicas > 0 || live.length === 0)
      );
    },
    { timeoutMs: 240_000, intervalMs: 1000 },
  );
}

async function leaseHolder(): Promise<string | undefined> {
  return (await getObject<V1Lease>(['lease', '-n', ns, 'gantry-controller']))?.spec?.holderIdentity;
}

/** Runs of the app's containers (by their Container UID), from a runtime record. */
function appRuns(runs: RuntimeRun[]): RuntimeRun[] {
  return runs.filter((r) => r.labels[runtimeLabels.namespace] === app);
}

/** The app's Events about these Containers, one line each, to say why a check failed. */
async function eventsOf(names: string[]): Promise<string> {
  const list = await getObject<{ items: CoreV1Event[] }>(['events', '-n', app]);
  return (list?.items ?? [])
    .filter((e) => names.includes(e.involvedObject.name ?? ''))
    .map(
      (e) =>
        `${e.lastTimestamp ?? e.eventTime} ${e.involvedObject.name} ${e.reason} (${e.source?.component ?? e.reportingComponent}/${e.source?.host ?? e.reportingInstance}): ${e.message}`,
    )
    .join('\n');
}

/** Nothing of the app's containers was created, started or stopped while `work` ran. */
async function untouched(what: string, work: () => Promise<void>): Promise<void> {
  const began = BigInt(Date.now()) * 1_000_000n;
  const runs = appRuns((await RuntimeRecorder.during(cri, work)).runs);
  const changed = runs.filter(
    (r) =>
      (r.createdAt ?? 0n) > began ||
      (r.startedAt ?? 0n) > began ||
      (r.finishedAt !== undefined && r.finishedAt > began),
  );
  assert.deepEqual(
    changed.map(
      (r) => `${r.host}/${r.labels[runtimeLabels.name]}: ${r.events.map((e) => e.type).join(', ')}`,
    ),
    [],
    `${what}: app containers were restarted, started or stopped; their Events:\n${await eventsOf(
      changed.map((r) => r.labels[runtimeLabels.name]!),
    )}`,
  );
  assert.ok(
    runs.some((r) => r.finishedAt === undefined),
    `${what}: the record holds the running app containers`,
  );
}

// ---- Beside the kubelet: set up first, checked last (ten minutes and more later) ----------------

/** When the Pod and the Gantry container beside it both ran. */
let besideSince = 0;
let kubeletRestartedAt = 0;
const besideMinutes = 10;
let besidePod: V1Pod;
let besideContainer: Container;
/** An image only a finished Pod used on host-1's kubelet runtime: its image GC must remove it. */
const unusedKubeletImage = cluster.images.web2;

async function kubeletImages(host: string): Promise<string[]> {
  const k = new CriClient(kubeletRuntimeSocket(host));
  try {
    const { images } = await k.listImages({});
    return images.flatMap((i) => i.repoTags);
  } finally {
    k.close();
  }
}

describe('Gantry installed by Helm on kubelet nodes', () => {
  before(async () => {
    if (!cluster.kubelet)
      throw new Error(
        'the local cluster runs without kubelets; this suite needs kubelet nodes (npm run cluster:up)',
      );
    // Gantry run as host processes by other suites would compete with the chart's agents, and the
    // aggregated API server's registration has the names of the chart's APIService and Service.
    await stopGantry(cluster);
    await stopSubresources(cluster);
    await kubectlOk(['create', 'namespace', app]).catch(() => undefined);
    await kubectlOk([
      'label',
      '--overwrite',
      'namespace',
      ns,
      'pod-security.kubernetes.io/enforce=restricted',
    ]);
    // The other suites installed the CRDs with kubectl; Helm takes over objects that carry its
    // ownership metadata (docs/operations.md: moving from the plain manifests to Helm).
    const crds = await kubectlOk(['get', 'crd', '-l', 'app.kubernetes.io/part-of=gantry', '-o', 'name']);
    for (const crd of crds.split('\n').filter(Boolean)) {
      await kubectlOk(['label', '--overwrite', crd, 'app.kubernetes.io/managed-by=Helm']);
      await kubectlOk([
        'annotate',
        '--overwrite',
        crd,
        `meta.helm.sh/release-name=${release}`,
        `meta.helm.sh/release-namespace=${ns}`,
      ]);
    }
  });

  after(async () => {
    for (const c of Object.values(cri)) c.close();
  });

  it('runs a Pod on host-1, and leaves an image it used unused on the kubelet runtime', async () => {
    // A Pod that used an image once and finished, so the image lingers unused on the kubelet's runtime.
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'used-once', namespace: app },
      spec: {
        nodeName: host1,
        restartPolicy: 'Never',
        containers: [{ name: 'c', image: unusedKubeletImage, command: ['/bin/true'] }],
      },
    });
    await eventually('the used-once Pod to finish', async () => {
      const p = await getObject<V1Pod>(['pod', '-n', app, 'used-once']);
      return p?.status?.phase === 'Succeeded';
    });
    await kubectlOk(['delete', 'pod', '-n', app, 'used-once']);
    assert.ok(
      (await kubeletImages(host1)).includes(unusedKubeletImage),
      'the image is on the kubelet runtime',
    );
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'beside', namespace: app },
      spec: {
        nodeName: host1,
        containers: [
          {
            name: 'c',
            image: cluster.images.counter,
            securityContext: { allowPrivilegeEscalation: false },
          },
        ],
      },
    });
    besidePod = await eventually('the beside Pod Running', async () => {
      const p = await getObject<V1Pod>(['pod', '-n', app, 'beside']);
      return p?.status?.phase === 'Running' ? p : undefined;
    });
  });

  it(`upgrades from the chart and image of ${previousRelease} while containers run: none restarted, none lost, CRDs upgraded, agents one node at a time`, async () => {
    const previous = await releaseAt(previousRelease);
    current = await currentRelease();
    // The chart of then defaulted to the kubelet's own containerd; the kubelet would remove
    // Gantry's containers there, so it is pointed at Gantry's (as its docs said to).
    await helmOk([
      'install',
      release,
      previous.chart,
      '--namespace',
      ns,
      ...chartValues(cluster, previous.image),
      '--set',
      'agent.runtime.socket=/run/gantry/containerd/containerd.sock',
      '--set',
      'agent.imageGC.runtimeRoot=/var/lib/gantry/containerd',
      '--wait',
      '--timeout',
      '5m',
    ]);
    await readyPods(agentNs, agentSelector, hosts.length);
    await eventually('every Host Ready', async () => {
      const list = await getObject<{ items: Host[] }>(['hosts']);
      return hosts.every((h) =>
        list?.items.some(
          (x) =>
            x.metadata.name === h &&
            x.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        ),
      );
    });

    await apply(container('beside', { image: cluster.images.web, nodeName: host1 }));
    await apply(container('counter', { image: cluster.images.counter, nodeName: host1 }));
    await apply({
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Workload',
      metadata: { name: 'web', namespace: app },
      spec: {
        replicas: 3,
        selector: { matchLabels: { app: 'web' } },
        template: { metadata: { labels: { app: 'web' } }, spec: { image: cluster.images.web } },
      },
    });
    besideContainer = await running('beside');
    besideSince = Date.now();
    const counter = await running('counter');
    await workloadReady('web', 3);
    const before = await count(counter);

    const agentPods = await WatchRecorder.start<V1Pod>(`/api/v1/namespaces/${agentNs}/pods`);
    await untouched('the upgrade', async () => {
      await helmOk([
        'upgrade',
        release,
        current.chart,
        '--namespace',
        ns,
        ...chartValues(cluster, current.image),
        '--wait',
        '--timeout',
        '5m',
      ]);
      await eventually('the agent DaemonSet rolled out', async () => {
        const ds = await getObject<{ status: Record<string, number>; metadata: { generation: number } }>([
          'daemonset',
          '-n',
          agentNs,
          `${release}-agent`,
        ]);
        const s = ds?.status ?? {};
        return (
          s.observedGeneration === ds?.metadata.generation &&
          s.updatedNumberScheduled === hosts.length &&
          s.numberReady === hosts.length
        );
      });
      await readyPods(agentNs, agentSelector, hosts.length);
    });
    const events = await agentPods.stop();
    // Replayed in order: at no moment were two nodes without a Ready agent.
    const readyOn = new Map<string, Set<string>>();
    let worst = 0;
    for (const e of events) {
      const node = e.object.spec?.nodeName ?? '';
      const name = e.object.metadata?.name ?? '';
      const set = readyOn.get(node) ?? new Set<string>();
      readyOn.set(node, set);
      const isReady =
        e.type !== 'DELETED' &&
        !e.object.metadata?.deletionTimestamp &&
        (e.object.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
      if (isReady) set.add(name);
      else set.delete(name);
      worst = Math.max(
        worst,
        hosts.filter((h) => (readyOn.get(h)?.size ?? 0) === 0 && readyOn.has(h)).length,
      );
    }
    assert.ok(events.length > 0, 'the agents were replaced');
    assert.ok(worst <= 1, `agents were down on ${worst} nodes at once during the upgrade`);

    // Still the same processes, and the counter counted on.
    const after = await running('counter');
    assert.equal(after.status?.containerID, counter.status?.containerID);
    assert.ok((await count(after)) > before, 'the counter kept counting');
    assert.equal((await running('beside')).status?.containerID, besideContainer.status?.containerID);
    // The CRDs are this checkout's: the status default came with this release.
    const crd = await getObject<{
      spec: {
        versions: { schema: { openAPIV3Schema: { properties: { status: { default?: unknown } } } } }[];
      };
    }>(['crd', 'containers.gantry.dev']);
    assert.deepEqual(crd?.spec.versions[0]?.schema.openAPIV3Schema.properties.status.default, {});
  });

  it("serves Containers' logs and exec through the chart's aggregated API: Available, logs read by a user bound to view with kubectl gantry logs, refused to one without the right, exec by one bound to edit; helm upgrade keeps its caBundle", async () => {
    type APIService = {
      spec: { caBundle?: string; service?: { namespace: string; name: string; port: number } };
      status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
    };
    const available = async () => {
      const a = await getObject<APIService>(['apiservice', apiService]);
      return a?.status?.conditions?.find((c) => c.type === 'Available')?.status === 'True' ? a : undefined;
    };
    await readyPods(ns, apiServerSelector, 2);
    const registered = await eventually(`APIService ${apiService} Available`, available, {
      timeoutMs: 180_000,
      intervalMs: 1000,
    }).catch(async (e: unknown) => {
      const a = await getObject<APIService>(['apiservice', apiService]);
      throw new Error(`${(e as Error).message}: ${JSON.stringify(a?.status?.conditions)}`);
    });
    assert.deepEqual(registered.spec.service, { namespace: ns, name: `${release}-subresources`, port: 443 });
    // The caBundle is the CA the server keeps in its Secret (the chart renders none).
    const pki = await getObject<{ data: Record<string, string> }>([
      'secret',
      '-n',
      ns,
      `${release}-subresources-pki`,
    ]);
    assert.equal(registered.spec.caBundle, pki?.data['ca.crt']);
    // Every agent serves logs at its pod's address, with the certificate that server issued it.
    const agents = await readyPods(agentNs, agentSelector, hosts.length);
    await eventually('every agent to publish its stream endpoint', async () => {
      const list = await getObject<{ items: Host[] }>(['hosts']);
      return agents.every((p) => {
        const h = list?.items.find((x) => x.metadata.name === p.spec?.nodeName);
        return h?.metadata.annotations?.['gantry.dev/stream-endpoint'] === `https://${p.status?.podIP}:9444`;
      });
    });

    const marker = `helm-logs-${Date.now()}`;
    await apply(
      container('talker', {
        image: cluster.images.web,
        command: ['/bin/sh', '-c'],
        args: [`echo "${marker} stdout"; echo "${marker} stderr" >&2; while :; do sleep 1; done`],
      }),
    );
    await running('talker');
    const reader = await userWithRole(app, 'reader', 'view');
    const stranger = await userKubeconfig(app, 'stranger');
    const read = await eventually(
      'kubectl gantry logs to print both lines',
      async () => {
        const r = await typed(reader, ['gantry', 'logs', 'talker']);
        return r.code === 0 &&
          r.stdout.includes(`${marker} stdout\n`) &&
          r.stdout.includes(`${marker} stderr\n`)
          ? r
          : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 1000 },
    ).catch(async (e: unknown) => {
      const r = await typed(reader, ['gantry', 'logs', 'talker']);
      throw new Error(`${(e as Error).message}; last answer (${r.code}): ${r.stderr}${r.stdout}`);
    });
    assert.equal(read.stderr, '');
    // Let through by the apiserver (every authenticated user may reach the group), refused by the
    // server's own check on gantry.dev, in the apiserver's words.
    const refused = await typed(stranger, ['gantry', 'logs', 'talker']);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      new RegExp(
        `^Error from server \\(Forbidden\\): User "system:serviceaccount:${app}:stranger" cannot get resource "containers/log" in API group "gantry.dev" in the namespace "${app}"`,
      ),
    );
    assert.doesNotMatch(refused.stdout + refused.stderr, new RegExp(marker));

    // exec from the agent's pod to Gantry's containerd on that node (its exec streams listen on
    // the node's address), for a user bound to edit; the exit code comes back.
    const editor = await userWithRole(app, 'editor', 'edit');
    const executed = await typed(editor, [
      'gantry',
      'exec',
      'talker',
      '--',
      '/bin/sh',
      '-c',
      `echo ${marker}; exit 4`,
    ]);
    assert.equal(executed.code, 4, executed.stderr);
    assert.equal(executed.stdout, `${marker}\n`);
    const execRefused = await typed(reader, ['gantry', 'exec', 'talker', '--', 'true']);
    assert.equal(execRefused.code, 1);
    assert.match(execRefused.stderr, /cannot create resource "containers\/exec" in API group "gantry.dev"/);

    // An upgrade as docs/operations.md says, that changes the APIService: Helm's patch removes only
    // what the previous manifest had, so the caBundle the server wrote stays.
    await helmOk([
      'upgrade',
      release,
      current.chart,
      '--namespace',
      ns,
      '--reset-then-reuse-values',
      '--set',
      'subresources.apiService.versionPriority=16',
      '--wait',
      '--timeout',
      '5m',
    ]);
    const after = await getObject<APIService & { spec: { versionPriority: number } }>([
      'apiservice',
      apiService,
    ]);
    assert.equal(after?.spec.versionPriority, 16, 'the upgrade patched the APIService');
    assert.equal(after?.spec.caBundle, registered.spec.caBundle, 'helm upgrade changed the caBundle');
    assert.ok(await available(), 'the APIService is Available after helm upgrade');
    assert.equal((await typed(reader, ['gantry', 'logs', 'talker'])).code, 0);
    await kubectlOk(['delete', 'container', '-n', app, 'talker', '--wait=false']);
  });

  it("restarts host-1's kubelet, now collecting images above 2% disk use: nothing of Gantry's is touched", async () => {
    // This machine's disk is far above 2% used: from now on the kubelet's image GC removes every
    // image no Pod uses, at its next round (every 5 minutes).
    const readyCondition = async () => {
      const n = await getObject<{
        status: { conditions: { type: string; status: string; lastHeartbeatTime: string }[] };
      }>(['node', host1]);
      return n?.status.conditions.find((c) => c.type === 'Ready');
    };
    // A restarted kubelet posts its Node's status at once; the time has whole seconds, so the
    // new report is told by a heartbeat newer than the last one before the restart.
    const before = Date.parse((await readyCondition())!.lastHeartbeatTime);
    await untouched('the kubelet restart', async () => {
      kubeletRestartedAt = Date.now();
      await restartKubelet(host1, { highPercent: 2, lowPercent: 1 });
      await eventually(
        `${host1}'s kubelet to report again`,
        async () => {
          const ready = await readyCondition();
          return ready?.status === 'True' && Date.parse(ready.lastHeartbeatTime) > before;
        },
        { timeoutMs: 120_000, intervalMs: 1000 },
      );
    });
  });

  it('runs the controller as two replicas under the restricted level, one leading, and an agent on every node', async () => {
    const controllers = await readyPods(ns, controllerSelector, 2);
    const holder = await eventually('a leader', leaseHolder);
    assert.ok(
      controllers.some((p) => holder.startsWith(p.metadata!.name!)),
      `the Lease holder ${holder} is one of the controller pods`,
    );
    const labels = (await getObject<{ metadata: { labels: Record<string, string> } }>(['namespace', ns]))
      ?.metadata.labels;
    assert.equal(labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
    // The level is enforced: a root pod is refused there.
    const root = await kubectl(
      ['run', 'root-probe', '-n', ns, '--image', cluster.images.web, '--restart=Never', '--dry-run=server'],
      {},
    );
    assert.notEqual(root.code, 0);
    assert.match(root.stderr, /violates PodSecurity "restricted/);
    const agents = await readyPods(agentNs, agentSelector, hosts.length);
    assert.deepEqual(agents.map((p) => p.spec?.nodeName).sort(), [...hosts].sort());
  });

  it('confines each agent to its node with the token its kubelet projected (the admission policy, for real)', async () => {
    const agents = await readyPods(agentNs, agentSelector, hosts.length);
    const onHost1 = agents.find((p) => p.spec?.nodeName === host1)!.metadata!.name!;
    const patch = (host: string) =>
      requestWithPodToken(
        'PATCH',
        `/apis/gantry.dev/v1alpha1/hosts/${host}/status`,
        { status: {} },
        'application/merge-patch+json',
      );
    const other = (await nodeScriptIn(agentNs, onHost1, patch(host2))).trim();
    assert.match(other, /^403 /, `writing ${host2}'s Host from ${host1}'s agent: ${other}`);
    assert.match(other, /node-restriction/);
    const own = (await nodeScriptIn(agentNs, onHost1, patch(host1))).trim();
    assert.match(own, /^200/, `writing its own Host's status: ${own}`);
  });

  it('runs a Container that answers on its address, and that its agent (in a pod) finds healthy', async () => {
    await apply(
      container('answers', {
        image: cluster.images.web,
        ports: [{ containerPort: 8080 }],
        // Checked from the agent's pod, across the node's routes to Gantry's bridge.
        healthCheck: { httpGet: { port: 8080 }, intervalSeconds: 2, timeoutSeconds: 2 },
      }),
    );
    const c = await running('answers');
    await explained(
      ['answers'],
      eventually('answers Ready (healthy)', async () => {
        const x = await getContainer('answers');
        return (
          x?.status?.health === 'Healthy' &&
          x.status.conditions?.some((k) => k.type === 'Ready' && k.status === 'True')
        );
      }),
    );
    const body = await eventually('an answer over HTTP', async () => {
      const r = await fetch(`http://${c.status!.ip}:8080/`).catch(() => undefined);
      return r?.ok ? r.text() : undefined;
    });
    assert.equal(body, 'gantry web v1\n');
  });

  it('scales a Workload 0 -> 10 -> 0', async () => {
    await apply({
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Workload',
      metadata: { name: 'many', namespace: app },
      spec: {
        replicas: 0,
        selector: { matchLabels: { app: 'many' } },
        template: {
          metadata: { labels: { app: 'many' } },
          spec: { image: cluster.images.web, terminationGracePeriodSeconds: 5 },
        },
      },
    });
    await kubectlOk(['scale', '-n', app, 'workload/many', '--replicas=10']);
    await workloadReady('many', 10);
    await kubectlOk(['scale', '-n', app, 'workload/many', '--replicas=0']);
    await workloadReady('many', 0);
    await eventually('no runtime container of many left', async () => {
      for (const client of Object.values(cri)) {
        const { containers } = await client.listContainers({
          filter: { labelSelector: { [runtimeLabels.namespace]: app } },
        });
        if (containers.some((x) => x.labels[runtimeLabels.name]?.startsWith('many-'))) return false;
      }
      return true;
    });
  });

  it('moves the counter to the other node by checkpoint, and it keeps its count', async () => {
    const source = await running('counter');
    const before = await count(source);
    await apply({
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Migration',
      metadata: { name: 'move-counter', namespace: app },
      spec: { container: 'counter', mode: 'Checkpoint', fallback: 'None', targetHost: host2 },
    });
    const m = await eventually(
      'the Migration to end',
      async () => {
        const x = await getObject<Migration>(['migration', '-n', app, 'move-counter']);
        return ['Succeeded', 'Failed', 'RolledBack'].includes(x?.status?.phase ?? '') ? x : undefined;
      },
      { timeoutMs: 180_000 },
    );
    assert.equal(m.status?.phase, 'Succeeded', m.status?.message);
    const target = await running(m.status!.targetContainer!);
    assert.equal(target.spec.nodeName, host2);
    const after = await count(target);
    assert.ok(after >= before, `the count went back: ${before} before, ${after} after`);
  });

  it('drains a node: its containers move, the Host says Drained', async () => {
    const onHost2 = (await appContainers()).filter((c) => c.spec.nodeName === host2);
    assert.ok(onHost2.length > 0, 'something runs on host-2 to drain');
    await kubectlOk(['patch', 'host', host2, '--type', 'merge', '-p', '{"spec":{"drain":true}}']);
    try {
      await eventually(
        `${host2} Drained`,
        async () => {
          const h = await getObject<Host>(['host', host2]);
          const left = (await appContainers()).filter((c) => c.spec.nodeName === host2);
          return h?.status?.drain?.phase === 'Drained' && left.length === 0;
        },
        { timeoutMs: 300_000, intervalMs: 1000 },
      );
      await workloadReady('web', 3);
    } finally {
      await kubectlOk(['patch', 'host', host2, '--type', 'merge', '-p', '{"spec":{"drain":false}}']);
    }
  });

  it('survives the loss of the leading controller pod: the other leads, nothing runs twice', async () => {
    const holder = await eventually('a leader', leaseHolder);
    const leader = (await readyPods(ns, controllerSelector, 2)).find((p) =>
      holder.startsWith(p.metadata!.name!),
    )!;
    const recorder = await RuntimeRecorder.start(cri);
    await kubectlOk(['delete', 'pod', '-n', ns, leader.metadata!.name!, '--wait=false']);
    // Work for whoever leads next.
    await kubectlOk(['scale', '-n', app, 'workload/web', '--replicas=5']);
    const next = await eventually(
      'another controller pod to lead',
      async () => {
        const h = await leaseHolder();
        return h && !h.startsWith(leader.metadata!.name!) ? h : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
    await workloadReady('web', 5);
    await kubectlOk(['scale', '-n', app, 'workload/web', '--replicas=3']);
    await workloadReady('web', 3);
    const runs = appRuns(await recorder.stop());
    const byUid = new Map<string, RuntimeRun[]>();
    for (const r of runs)
      byUid.set(r.labels[runtimeLabels.uid]!, [...(byUid.get(r.labels[runtimeLabels.uid]!) ?? []), r]);
    for (const [uid, list] of byUid) {
      const overlap = maxOverlap(runIntervals(list));
      assert.ok(
        overlap.count <= 1,
        `Container ${uid} ran ${overlap.count} times at once (new leader ${next})`,
      );
    }
    const webRuns = runs.filter((r) => r.labels[runtimeLabels.name]?.startsWith('web-'));
    assert.ok(maxOverlap(runIntervals(webRuns)).count <= 5, 'never more web replicas than asked for');
    await readyPods(ns, controllerSelector, 2);
  });

  it('replaces a deleted agent pod, which adopts its containers: none restarted, none lost', async () => {
    const agent = (await readyPods(agentNs, agentSelector, hosts.length)).find(
      (p) => p.spec?.nodeName === host1,
    )!;
    const before = (await appContainers()).map((c) => `${c.metadata.name} ${c.status?.containerID}`).sort();
    await untouched('the agent pod replacement', async () => {
      await kubectlOk(['delete', 'pod', '-n', agentNs, agent.metadata!.name!]);
      const replaced = await readyPods(agentNs, agentSelector, hosts.length);
      assert.ok(!replaced.some((p) => p.metadata?.name === agent.metadata?.name));
      // The new agent has looked at everything (its first report comes after its caches synced).
      await eventually('host-1 Ready again, reported by the new agent', async () => {
        const h = await getObject<Host>(['host', host1]);
        const ready = h?.status?.conditions?.find((c) => c.type === 'Ready');
        return ready?.status === 'True' && Date.parse(ready.lastTransitionTime) > 0;
      });
      await workloadReady('web', 3);
    });
    const after = (await appContainers()).map((c) => `${c.metadata.name} ${c.status?.containerID}`).sort();
    assert.deepEqual(after, before);
  });

  it('lets a namespace editor create Containers and Workloads, and a viewer only read them', async () => {
    await kubectlOk(['create', 'rolebinding', 'alice-edit', '-n', app, '--clusterrole=edit', '--user=alice']);
    await kubectlOk(['create', 'rolebinding', 'bob-view', '-n', app, '--clusterrole=view', '--user=bob']);
    await apply(container('by-alice', { image: cluster.images.web }), 'alice');
    await apply(
      {
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Workload',
        metadata: { name: 'alices', namespace: app },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'alices' } },
          template: { metadata: { labels: { app: 'alices' } }, spec: { image: cluster.images.web } },
        },
      },
      'alice',
    );
    await running('by-alice');
    const seen = await kubectlOk(['get', 'containers,workloads', '-n', app, '--as', 'bob', '-o', 'name']);
    assert.match(seen, /container\.gantry\.dev\/by-alice/);
    assert.match(seen, /workload\.gantry\.dev\/alices/);
    const refused = await kubectl(['delete', 'container', 'by-alice', '-n', app, '--as', 'bob']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /forbidden: User "bob" cannot delete resource "containers"/);
    const elsewhere = await kubectl(['get', 'containers', '-n', 'default', '--as', 'alice']);
    assert.match(elsewhere.stderr, /forbidden/);
  });

  it(`kept the Pod and the Gantry container beside the kubelet running for ${besideMinutes} minutes, through its restart and image GC`, async () => {
    const waitMs = besideSince + besideMinutes * 60_000 - Date.now();
    if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
    // The kubelet's image GC ran (every 5 minutes): the unused image left its runtime...
    await eventually(
      `the kubelet of ${host1} to collect ${unusedKubeletImage}`,
      async () => !(await kubeletImages(host1)).includes(unusedKubeletImage),
      { timeoutMs: 6 * 60_000, intervalMs: 5000 },
    );
    // ...while the Pod and Gantry's container ran on, the same processes.
    const pod = await getObject<V1Pod>(['pod', '-n', app, 'beside']);
    assert.equal(pod?.status?.phase, 'Running');
    const podContainer = pod?.status?.containerStatuses?.[0];
    assert.equal(podContainer?.restartCount, 0);
    assert.equal(podContainer?.containerID, besidePod.status?.containerStatuses?.[0]?.containerID);
    const beside = await running('beside');
    assert.equal(beside.status?.containerID, besideContainer.status?.containerID);
    assert.equal(beside.status?.restartCount ?? 0, 0);
    const { status } = await cri[host1]!.containerStatus({ containerId: beside.status!.containerID! });
    assert.equal(status?.state, 'CONTAINER_RUNNING');
    assert.ok(
      Number(status!.startedAt / 1_000_000n) < kubeletRestartedAt,
      'running since before the kubelet restart',
    );
    await restartKubelet(host1);
  });

  it('helm uninstall keeps the CRDs and every Gantry object, and says so', async () => {
    // Deleted while the agents can still take their finalizers off; `beside` is kept.
    for (const w of ['web', 'many', 'alices'])
      await kubectl(['delete', 'workload', '-n', app, w, '--wait=true']);
    const out = await helmOk(['uninstall', release, '--namespace', ns, '--wait']);
    assert.match(out, /kept due to the resource policy/);
    for (const kind of ['containers', 'workloads', 'images', 'hosts', 'migrations'])
      assert.ok(await getObject(['crd', `${kind}.gantry.dev`]), `CRD ${kind} kept`);
    assert.ok(await getContainer('beside'), 'the Container object is kept');
    // No APIService left without its server (it would keep namespaces from being deleted).
    assert.equal(await getObject(['apiservice', apiService]), undefined);
    assert.equal(
      (await pods(agentNs, agentSelector)).filter((p) => !p.metadata?.deletionTimestamp).length,
      0,
    );
    // Gantry as host processes takes the objects over again and cleans up.
    await startGantry(cluster);
    await kubectlOk(['delete', 'namespace', app, '--timeout=180s']);
    await stopGantry(cluster);
  });
});
