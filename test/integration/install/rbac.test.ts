// Least privilege, for real: the chart is installed with helm into the local cluster (its pods
// never start: the chart's default image is in no registry here), then the controller and one
// agent run as processes with exactly the chart's arguments and the tokens of the chart's
// ServiceAccounts - the agent's bound to its Node, as the kubelet binds a pod's token, and with
// every capability dropped, as its securityContext says. They go through a scenario and nothing
// may be forbidden; then kubectl with the agent's token proves what the RBAC rules and the
// ValidatingAdmissionPolicy refuse.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import {
  ApiException,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import type { Host } from '../../../src/api/v1alpha1/index.js';
import { chartDir, helm } from '../../../src/install/helm.js';
import { installCrds } from '../../../src/localcluster/gantry.js';
import { isAlive, startDaemon, stopPid, waitFor } from '../../../src/localcluster/proc.js';
import { getObject, kubectl, kubectlOk, localCluster } from '../../support/cluster.js';
import { kstatus } from '../../support/kstatus.js';
import { eventually } from '../../support/wait.js';
import {
  find,
  freePort,
  parseObjects,
  repoRoot,
  runId,
  writeTokenKubeconfig,
  type KubeObject,
} from './support.js';

const cluster = localCluster();
const id = runId();
const release = `rbac-${id}`;
const fullname = `${release}-gantry`;
const ns = `gantry-rbac-${id}`;
const agentNs = `${ns}-agent`;
const appNs = `${ns}-apps`;
const otherNs = `${ns}-other`;
const elsewhere = `elsewhere-${id}`;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-rbac-'));

interface Proc {
  name: string;
  pid: number;
  log: string;
  metricsPort: number;
  probesPort: number;
  /** Restarts by the watchdog (a pod's restartPolicy Always), with the last log line before each. */
  restarts: string[];
  launch: () => number;
}
const procs: Proc[] = [];
let stopping = false;

/**
 * Restarts a process that exits, as the kubelet restarts a pod's container: the controller exits
 * by design when it loses its Lease (an apiserver restart by another test does that).
 */
const watchdog = setInterval(() => {
  if (stopping) return;
  for (const p of procs) {
    if (isAlive(p.pid)) continue;
    const last = fs.readFileSync(p.log, 'utf8').trimEnd().split('\n').at(-1) ?? '';
    p.restarts.push(last);
    p.pid = p.launch();
  }
}, 1000);
watchdog.unref();
let host = '';
const kc = {
  controller: path.join(work, 'controller.kubeconfig'),
  agent: path.join(work, 'agent.kubeconfig'),
  unbound: path.join(work, 'agent-unbound.kubeconfig'),
};

/** PIDs of agents (anyone's) running for `name`: one host takes one agent. */
function agentsOn(name: string): number[] {
  const mine = new Set(procs.map((p) => p.pid));
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || mine.has(Number(entry))) continue;
    let cmdline: string[];
    try {
      cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (
      cmdline.some((a) => a.endsWith('cmd/agent.ts') || a.endsWith('cmd/agent.js')) &&
      cmdline.includes(`--host-name=${name}`)
    )
      pids.push(Number(entry));
  }
  return pids;
}

/** A host of the local cluster no agent runs on (other tests may be using the shared cluster). */
async function freeHost(): Promise<string> {
  return eventually(
    'a host without a running agent (other tests use the shared cluster)',
    async () => cluster.hosts.map((h) => h.name).find((h) => agentsOn(h).length === 0),
    // Within the 5 minutes test/run.ts gives an integration file.
    { timeoutMs: 2 * 60_000, intervalMs: 5000 },
  );
}

/** args with `--flag=...` replaced (or added) for each entry of `set`. */
function withFlags(args: string[], set: Record<string, string>): string[] {
  const out = args.filter((a) => !Object.keys(set).some((f) => a.startsWith(`--${f}=`)));
  return [...out, ...Object.entries(set).map(([f, v]) => `--${f}=${v}`)];
}

async function start(
  name: 'controller' | 'agent',
  chartArgs: string[],
  set: Record<string, string>,
  dropCapabilities: boolean,
): Promise<Proc> {
  // The image runs dist/cmd/<name>.js; here the same entry point runs from source.
  assert.equal(chartArgs[0], `dist/cmd/${name}.js`);
  const metricsPort = await freePort();
  const probesPort = await freePort();
  const args = withFlags(chartArgs.slice(1), {
    ...set,
    'metrics-bind-address': `127.0.0.1:${metricsPort}`,
    'health-probe-bind-address': `127.0.0.1:${probesPort}`,
  });
  const node = [
    process.execPath,
    '--import',
    'tsx',
    path.join(repoRoot, 'src', 'cmd', `${name}.ts`),
    ...args,
  ];
  // securityContext capabilities.drop [ALL] + allowPrivilegeEscalation false, as a process.
  const setpriv = ['--inh-caps=-all', '--ambient-caps=-all', '--bounding-set=-all', '--no-new-privs'];
  const [cmd, ...rest] = dropCapabilities ? ['setpriv', ...setpriv, ...node] : node;
  const log = path.join(work, `${name}.log`);
  const launch = () =>
    startDaemon(cmd!, rest, { pidFile: path.join(work, `${name}.pid`), logFile: log }, { cwd: repoRoot });
  const pid = launch();
  const proc: Proc = { name, pid, log, metricsPort, probesPort, restarts: [], launch };
  procs.push(proc);
  await waitFor(
    `the ${name} to be ready`,
    () =>
      fetch(`http://127.0.0.1:${probesPort}/readyz`)
        .then((r) => r.ok)
        .catch(() => false),
    { pid, logFile: log, timeoutMs: 120_000 },
  );
  return proc;
}

async function token(sa: string, namespace: string, boundNode?: string): Promise<string> {
  const args = ['create', 'token', sa, '-n', namespace, '--duration=2h'];
  if (boundNode) args.push('--bound-object-kind=Node', `--bound-object-name=${boundNode}`);
  return (await kubectlOk(args)).trim();
}

async function getJson<T = KubeObject>(args: string[]): Promise<T | undefined> {
  const r = await kubectl(['get', ...args, '-o', 'json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
}

type Condition = { type: string; status: string; reason?: string };
type Status = { phase?: string; observedGeneration?: number; conditions?: Condition[]; [k: string]: unknown };
type GantryObject = KubeObject & {
  metadata: KubeObject['metadata'] & { generation?: number; deletionTimestamp?: string };
  status?: Status;
};

function ready(o: GantryObject | undefined): boolean {
  return o?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

async function waitRunning(namespace: string, name: string): Promise<GantryObject> {
  return eventually(
    `Container ${namespace}/${name} to run`,
    async () => {
      const c = await getJson<GantryObject>(['container', name, '-n', namespace]);
      return c?.status?.phase === 'Running' ? c : undefined;
    },
    { timeoutMs: 180_000, intervalMs: 1000 },
  );
}

async function waitGone(args: string[]): Promise<void> {
  await eventually(
    `${args.join(' ')} to be gone`,
    async () =>
      (await kubectl(['get', ...args, '--ignore-not-found', '-o', 'name'])).stdout.trim() === ''
        ? true
        : undefined,
    { timeoutMs: 120_000, intervalMs: 1000 },
  );
}

/**
 * Server-side apply of `status` on /status with another kubeconfig, as the agent's and the
 * controller's code write status (kubectl patch --subresource would first need get on /status,
 * which neither has).
 */
async function applyStatus(
  kubeconfig: string,
  target: { kind: 'Host' | 'Container' | 'Migration' | 'Build'; name: string; namespace?: string },
  status: object,
  dryRun = false,
): Promise<{ ok: boolean; message: string }> {
  const config = new KubeConfig();
  config.loadFromFile(kubeconfig);
  const api = config.makeApiClient(CustomObjectsApi);
  const params = {
    group: 'gantry.dev',
    version: 'v1alpha1',
    plural: `${target.kind.toLowerCase()}s`,
    name: target.name,
    body: {
      apiVersion: 'gantry.dev/v1alpha1',
      kind: target.kind,
      metadata: { name: target.name, ...(target.namespace ? { namespace: target.namespace } : {}) },
      status,
    },
    fieldManager: 'gantry-rbac-test',
    force: true,
    ...(dryRun ? { dryRun: 'All' } : {}),
  };
  const options = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
  try {
    await (target.namespace
      ? api.patchNamespacedCustomObjectStatus({ ...params, namespace: target.namespace }, options)
      : api.patchClusterCustomObjectStatus(params, options));
    return { ok: true, message: '' };
  } catch (e) {
    if (e instanceof ApiException) return { ok: false, message: String(e.body) };
    throw e;
  }
}

let failed = false;
/** it(), remembering a failure so the logs are kept for it. */
function step(name: string, fn: (t: TestContext) => Promise<unknown>): void {
  it(name, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      failed = true;
      throw e;
    }
  });
}

/** How long this file waits by default: it shares the cluster, and its processes start slowly. */
const slow = { timeoutMs: 120_000, intervalMs: 1000 };

const denied = /ValidatingAdmissionPolicy '[^']+' with binding '[^']+' denied request/;
const controllerFields = /nor other status fields the controller or the (source|target) agent writes/;

describe('RBAC and admission policy of the chart, with the real controller and agent', () => {
  before(async () => {
    await installCrds(cluster);
    host = await freeHost();
    for (const n of [appNs, otherNs]) await kubectlOk(['create', 'namespace', n]);
    // A Host and a Container that belong to another node (no agent runs there).
    await kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Host',
        metadata: { name: elsewhere },
      }),
    });
    const install = await helm([
      'install',
      release,
      chartDir,
      '--kubeconfig',
      cluster.kubeconfig,
      '--namespace',
      ns,
      '--create-namespace',
      // The cluster's CRDs are installed from crds/ (not by Helm); chart.test.ts checks the chart's copy.
      '--set',
      'crds.enabled=false',
      '--set',
      `pullSecrets.namespaces={${appNs}}`,
      '--set',
      `controller.insecureRegistries={${cluster.registry}}`,
      // The aggregated API's APIService is one per cluster, and would stay unavailable here (no pod
      // of this release starts), which keeps namespaces of the shared cluster from being deleted;
      // chart.test.ts checks its server's rights, the install suite runs it from the chart.
      '--set',
      'subresources.enabled=false',
    ]);
    assert.equal(install.code, 0, install.stderr);

    writeTokenKubeconfig(kc.controller, await token(`${fullname}-controller`, ns), 'controller');
    writeTokenKubeconfig(kc.agent, await token(`${fullname}-agent`, agentNs, host), 'agent');
    writeTokenKubeconfig(kc.unbound, await token(`${fullname}-agent`, agentNs), 'agent-unbound');

    const manifest = await helm(['get', 'manifest', release, '-n', ns, '--kubeconfig', cluster.kubeconfig]);
    const objects = await parseObjects(manifest.stdout);
    const argsOf = (kind: string) =>
      (find(objects, kind).spec as { template: { spec: { containers: { args: string[] }[] } } }).template.spec
        .containers[0]!.args;
    await start('controller', argsOf('Deployment'), { kubeconfig: kc.controller }, true);
    const criSocket = cluster.hosts.find((h) => h.name === host)!.criSocket;
    fs.mkdirSync(path.join(work, 'agent-state'));
    await start(
      'agent',
      argsOf('DaemonSet'),
      {
        kubeconfig: kc.agent,
        'host-name': host, // the DaemonSet sets it from spec.nodeName
        'cri-socket': criSocket,
        'state-dir': path.join(work, 'agent-state'),
        'probe-image': cluster.images.counter,
        // The DaemonSet passes $(POD_IP) and a port of the pod; here, this machine.
        'advertise-address': '127.0.0.1',
        'transfer-bind-address': `127.0.0.1:${await freePort()}`,
      },
      true,
    );
  });

  after(async () => {
    // Containers first, while the agent still runs to take its finalizer off.
    await kubectl([
      'delete',
      'containers,workloads,images,migrations',
      '--all',
      '-n',
      appNs,
      '--timeout=60s',
    ]);
    stopping = true;
    clearInterval(watchdog);
    for (const p of procs) await stopPid(p.pid);
    for (const kind of ['containers', 'workloads']) {
      const left = await kubectl(['get', kind, '-n', appNs, '-o', 'name']);
      for (const name of left.stdout.split('\n').filter(Boolean))
        await kubectl(['patch', name, '-n', appNs, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
    }
    await helm(['uninstall', release, '-n', ns, '--kubeconfig', cluster.kubeconfig, '--wait=false']);
    await kubectl([
      'delete',
      'container',
      'bound-elsewhere',
      '-n',
      otherNs,
      '--ignore-not-found',
      '--wait=false',
    ]);
    await kubectl(['delete', 'host', elsewhere, '--ignore-not-found', '--wait=false']);
    await kubectl(['delete', 'namespace', ns, agentNs, appNs, otherNs, '--ignore-not-found', '--wait=false']);
    if (failed) {
      for (const p of procs) {
        const kept = path.join(os.tmpdir(), `gantry-rbac-${id}-${p.name}.log`);
        if (fs.existsSync(p.log)) fs.copyFileSync(p.log, kept);
        console.log(`the ${p.name}'s log is kept in ${kept}`);
      }
    }
    fs.rmSync(work, { recursive: true, force: true });
  });

  step('registers the Host, heartbeats, and runs the checkpoint probe without any capability', async () => {
    await eventually('the heartbeat Lease', () => getJson(['lease', `gantry-host-${host}`, '-n', ns]), slow);
    const h = await eventually(
      'the Host status from this agent, with its checkpoint probe',
      async () => {
        const o = await getJson<GantryObject>(['host', host]);
        return o?.status?.checkpoint ? o : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 1000 },
    );
    assert.ok(ready(h), `Host ${host} is not Ready: ${JSON.stringify(h.status?.conditions)}`);
    // CRIU runs in containerd on the host; the agent, root without capabilities, only asks over CRI.
    assert.ok(
      cluster.checkpoint.works,
      `the cluster's checkpoint probe failed: ${cluster.checkpoint.detail}`,
    );
    const cp = h.status?.checkpoint as { supported: boolean; message?: string };
    assert.equal(cp.supported, true, cp.message);
  });

  step('runs an Image and a Container pinned to its host, then removes the Container', async () => {
    const image = {
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Image',
      metadata: { name: 'web', namespace: appNs },
      spec: { image: cluster.images.web },
    };
    const container = {
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Container',
      metadata: { name: 'web', namespace: appNs },
      spec: { image: cluster.images.web, nodeName: host, ports: [{ containerPort: 8080 }] },
    };
    await kubectlOk(['apply', '-f', '-'], {
      input: `${JSON.stringify(image)}\n---\n${JSON.stringify(container)}`,
    });
    const running = await waitRunning(appNs, 'web');
    assert.ok(ready(running));
    assert.equal(kstatus(running), 'Current');
    // The controller resolved the Image with its own rights (registry, status); kstatus calls it
    // Current once the Hosts hold it too (Reconciling until then).
    const resolved = await eventually(
      'the Image to resolve and be held',
      async () => {
        const i = await getJson<GantryObject>(['image', 'web', '-n', appNs]);
        return i?.status?.resolvedImage && kstatus(i) === 'Current' ? i : undefined;
      },
      slow,
    );
    assert.ok(ready(resolved));
    await kubectlOk(['delete', 'container', 'web', '-n', appNs, '--wait=false']);
    await waitGone(['container', 'web', '-n', appNs]); // the agent took its finalizer off
  });

  step('pulls with a pull secret in a namespace pullSecrets grants', async () => {
    const auth = cluster.authRegistry;
    await kubectlOk([
      'create',
      'secret',
      'docker-registry',
      'registry-login',
      '-n',
      appNs,
      `--docker-server=${auth.address}`,
      `--docker-username=${auth.username}`,
      `--docker-password=${auth.password}`,
    ]);
    const container = {
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Container',
      metadata: { name: 'private', namespace: appNs },
      spec: { image: auth.image, nodeName: host, imagePullSecrets: [{ name: 'registry-login' }] },
    };
    await kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(container) });
    await waitRunning(appNs, 'private');
    await kubectlOk(['delete', 'container', 'private', '-n', appNs, '--wait=false']);
    await waitGone(['container', 'private', '-n', appNs]);
  });

  step('creates, scales and deletes a Workload', async () => {
    const workload = {
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Workload',
      metadata: { name: 'web', namespace: appNs },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'web' } },
        template: { metadata: { labels: { app: 'web' } }, spec: { image: cluster.images.web } },
        // Only the host this test runs an agent on.
        placement: { nodeSelector: { 'kubernetes.io/hostname': host } },
      },
    };
    await kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(workload) });
    const runningReplicas = async (n: number) =>
      eventually(
        `${n} running replicas`,
        async () => {
          const list = await getJson<{ items: GantryObject[] }>(['containers', '-n', appNs, '-l', 'app=web']);
          const running =
            list?.items.filter((c) => c.status?.phase === 'Running' && !c.metadata.deletionTimestamp) ?? [];
          return running.length === n ? running : undefined;
        },
        { timeoutMs: 180_000, intervalMs: 1000 },
      );
    await runningReplicas(1);
    await kubectlOk(['scale', 'workload/web', '-n', appNs, '--replicas=2']);
    await runningReplicas(2);
    const w = await eventually(
      'the Workload to be Ready',
      async () => {
        const o = await getJson<GantryObject>(['workload', 'web', '-n', appNs]);
        return ready(o) && o && kstatus(o) === 'Current' ? o : undefined;
      },
      slow,
    );
    assert.equal(w.status?.readyReplicas, 2);
    await kubectlOk(['delete', 'workload', 'web', '-n', appNs, '--wait=false']);
    await waitGone(['workload', 'web', '-n', appNs]);
    await eventually(
      'its Containers to be gone',
      async () => {
        const list = await getJson<{ items: unknown[] }>(['containers', '-n', appNs, '-l', 'app=web']);
        return list?.items.length === 0 ? true : undefined;
      },
      slow,
    );
  });

  step('was never forbidden anything (logs, events, rest_client_requests_total)', async (t) => {
    // The agent acts on every Container bound to its host. On a shared cluster another test may
    // bind some there too, in namespaces pullSecrets does not grant: refusing their pull secrets
    // is this chart working, not failing. Those lines name their namespace; they are set aside.
    const ours = new Set([ns, agentNs, appNs, otherNs]);
    const foreign = (line: string) => {
      try {
        const namespace = (JSON.parse(line) as { namespace?: string }).namespace;
        return namespace !== undefined && !ours.has(namespace);
      } catch {
        return false;
      }
    };
    for (const p of procs) {
      for (const why of p.restarts)
        t.diagnostic(`the ${p.name} exited and was restarted; its last words: ${why}`);
      assert.ok(p.restarts.length <= 2, `the ${p.name} keeps exiting; its log: ${p.log}`);
      const lines = fs
        .readFileSync(p.log, 'utf8')
        .split('\n')
        .filter((l) => /forbidden/i.test(l));
      const others = lines.filter(foreign);
      assert.deepEqual(
        lines.filter((l) => !foreign(l)),
        [],
        `the ${p.name} was refused something`,
      );
      const metrics = await (await fetch(`http://127.0.0.1:${p.metricsPort}/metrics`)).text();
      assert.match(metrics, /^rest_client_requests_total\{code="20[01]"/m, `the ${p.name} made no request?`);
      const refused = metrics.split('\n').filter((l) => /^rest_client_requests_total\{code="40[13]"/.test(l));
      if (others.length === 0) {
        assert.deepEqual(refused, [], `the ${p.name} got 401/403 answers`);
      } else {
        const where = [...new Set(others.map((l) => (JSON.parse(l) as { namespace: string }).namespace))];
        t.diagnostic(
          `the ${p.name} was refused ${others.length} times for objects of other tests (${where.join(', ')}), ` +
            'so its 403 count is not checked',
        );
      }
    }
    const events = await kubectlOk(['get', 'events.events.k8s.io', '-n', appNs, '-o', 'json']);
    const notes = (JSON.parse(events) as { items: { note?: string; reason?: string }[] }).items;
    assert.ok(notes.length > 0, 'no Events were recorded');
    for (const e of notes) assert.doesNotMatch(`${e.reason} ${e.note}`, /forbidden/i);
    const intruders = agentsOn(host);
    if (intruders.length > 0)
      t.diagnostic(`another agent started on ${host} during the run (pid ${intruders.join(', ')})`);
  });

  step('exports every metric the dashboard and the alerts use', async () => {
    const texts = [
      fs.readFileSync(path.join(chartDir, 'files/dashboards/gantry.json'), 'utf8'),
      fs.readFileSync(path.join(chartDir, 'templates/prometheusrule.yaml'), 'utf8'),
    ];
    const used = new Set(
      texts.flatMap((text) =>
        [...text.matchAll(/([a-z_:][a-z0-9_:]*)\{/g)]
          .map((m) => m[1]!.replace(/_(bucket|count|sum)$/, ''))
          .filter((n) => n.includes('_')),
      ),
    );
    const scraped = (
      await Promise.all(
        procs.map(async (p) => (await fetch(`http://127.0.0.1:${p.metricsPort}/metrics`)).text()),
      )
    ).join('\n');
    const missing = [...used].filter((m) => !new RegExp(`^# TYPE ${m} `, 'm').test(scraped));
    assert.deepEqual(missing, [], 'the dashboard or alerts use metrics neither process exports');
  });

  step('lets an agent read Secrets only where pullSecrets says, and only by name', async () => {
    await kubectlOk(['create', 'secret', 'generic', 'not-for-agents', '-n', otherNs, '--from-literal=k=v']);
    const can = async (config: string, ...args: string[]) =>
      (await kubectl(['auth', 'can-i', ...args], { kubeconfig: config })).stdout.trim();
    for (const config of [kc.agent, kc.controller]) {
      assert.equal(await can(config, 'get', 'secrets', '-n', appNs), 'yes');
      assert.equal(await can(config, 'list', 'secrets', '-n', appNs), 'no');
      assert.equal(await can(config, 'watch', 'secrets', '-n', appNs), 'no');
      assert.equal(await can(config, 'get', 'secrets', '-n', otherNs), 'no');
      assert.equal(await can(config, 'get', 'secrets', '-n', 'kube-system'), 'no');
      assert.equal(await can(config, 'get', 'secrets', '-n', ns), 'no');
      const read = await kubectl(['get', 'secret', 'not-for-agents', '-n', otherNs], { kubeconfig: config });
      assert.notEqual(read.code, 0);
      assert.match(read.stderr, /Forbidden|forbidden/);
    }
  });

  step('gives the agent no rights it does not use', async () => {
    const can = async (...args: string[]) =>
      (await kubectl(['auth', 'can-i', ...args], { kubeconfig: kc.agent })).stdout.trim();
    for (const [verb, resource] of [
      ['create', 'containers.gantry.dev'],
      ['delete', 'containers.gantry.dev'],
      ['update', 'containers.gantry.dev'],
      ['delete', 'hosts.gantry.dev'],
      ['patch', 'workloads.gantry.dev'],
      ['get', 'workloads.gantry.dev'],
      ['patch', 'images.gantry.dev'],
      ['create', 'migrations.gantry.dev'],
      ['create', 'builds.gantry.dev'],
      ['patch', 'builds.gantry.dev'],
      ['patch', 'nodes'],
      ['list', 'pods'],
      ['get', 'configmaps'],
      ['create', 'events'], // core events; it reports through events.k8s.io
    ] as const) {
      assert.equal(await can(verb, resource, '-A'), 'no', `the agent may ${verb} ${resource}`);
    }
    assert.equal(await can('update', 'leases', '-n', ns), 'yes');
    assert.equal(await can('create', 'leases', '-n', 'kube-system'), 'no');
    // Migrations' transfer tokens: the controller writes them in the agents' namespace, agents get them.
    assert.equal(await can('get', 'secrets', '-n', agentNs), 'yes');
    assert.equal(await can('list', 'secrets', '-n', agentNs), 'no');
    assert.equal(await can('create', 'secrets', '-n', agentNs), 'no');
    // The controller reads no Secrets, writes them only for migrations, and touches no workload kinds.
    const ctl = async (...args: string[]) =>
      (await kubectl(['auth', 'can-i', ...args], { kubeconfig: kc.controller })).stdout.trim();
    assert.equal(await ctl('create', 'secrets', '-n', agentNs), 'yes');
    assert.equal(await ctl('delete', 'secrets', '-n', agentNs), 'yes');
    assert.equal(await ctl('get', 'secrets', '-n', agentNs), 'no');
    assert.equal(await ctl('create', 'secrets', '-n', ns), 'no');
    for (const [verb, resource] of [
      ['list', 'secrets'],
      ['create', 'pods'],
      ['create', 'hosts.gantry.dev'],
      ['delete', 'hosts.gantry.dev'],
      ['patch', 'nodes'],
    ] as const) {
      assert.equal(await ctl(verb, resource, '-A'), 'no', `the controller may ${verb} ${resource}`);
    }
  });

  step("gives a Host its Node's labels, which its agent could not", async () => {
    const key = `gantry.test/rbac-${id}`;
    const hostLabel = async () => (await getObject<Host>(['hosts.gantry.dev', host]))?.metadata.labels?.[key];
    try {
      await kubectlOk(['label', 'node', host, `${key}=copied`]);
      await eventually(
        'the controller to copy the label',
        async () => (await hostLabel()) === 'copied' || undefined,
      );
      await kubectlOk(['label', 'node', host, `${key}-`]);
      await eventually('the label to leave the Host with the Node', async () =>
        (await hostLabel()) === undefined ? true : undefined,
      );
    } finally {
      await kubectl(['label', 'node', host, `${key}-`]);
    }
  });

  step(
    "refuses an agent's writes to another host's Host, and to its own Host's labels and spec",
    async () => {
      // RBAC allows patching Hosts; the admission policy narrows that to the agent's own.
      assert.equal(
        (
          await kubectl(['auth', 'can-i', 'patch', 'hosts.gantry.dev'], { kubeconfig: kc.agent })
        ).stdout.trim(),
        'yes',
      );
      const label = ['--type=merge', '-p', '{"metadata":{"labels":{"gantry.dev/test":"x"}}}'];
      const other = await eventually(
        'the policy to take effect',
        async () => {
          const r = await kubectl(['patch', 'host', elsewhere, ...label], { kubeconfig: kc.agent });
          return r.code !== 0 && denied.test(r.stderr) ? r : undefined;
        },
        slow,
      );
      assert.match(other.stderr, new RegExp(`may write only Host ${host}, not ${elsewhere}`));
      const status = await applyStatus(kc.agent, { kind: 'Host', name: elsewhere }, { containers: 7 });
      assert.equal(status.ok, false);
      assert.match(status.message, denied);
      const create = await kubectl(['create', '-f', '-'], {
        kubeconfig: kc.agent,
        input: JSON.stringify({
          apiVersion: 'gantry.dev/v1alpha1',
          kind: 'Host',
          metadata: { name: `${elsewhere}-2` },
        }),
      });
      assert.match(create.stderr, denied);
      // Its own Host: neither labels (they would draw Workloads to it) nor spec (cordon).
      const own = await kubectl(['patch', 'host', host, '--dry-run=server', ...label], {
        kubeconfig: kc.agent,
      });
      assert.match(
        own.stderr,
        /may not change the labels of its Host \(the controller copies labels from the Node\)/,
      );
      const cordon = await kubectl(
        ['patch', 'host', host, '--dry-run=server', '--type=merge', '-p', '{"spec":{"unschedulable":true}}'],
        { kubeconfig: kc.agent },
      );
      assert.match(cordon.stderr, /may not change the spec of its Host/);
      const drained = await applyStatus(
        kc.agent,
        { kind: 'Host', name: host },
        { drain: { phase: 'Drained' } },
        true,
      );
      assert.equal(drained.ok, false);
      assert.match(drained.message, /may not change the drain status of its Host/);
      // The controller is not bound by the policy.
      const ctl = await applyStatus(
        kc.controller,
        { kind: 'Host', name: elsewhere },
        { containers: 7 },
        true,
      );
      assert.equal(ctl.ok, true, ctl.message);
    },
  );

  step(
    "refuses an agent's writes to Containers bound to another host, and to any Container spec",
    async () => {
      const bound = (name: string, nodeName: string, namespace: string) => ({
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Container',
        metadata: { name, namespace },
        spec: { image: cluster.images.web, nodeName },
      });
      await kubectlOk(['apply', '-f', '-'], {
        input: JSON.stringify(bound('bound-elsewhere', elsewhere, otherNs)),
      });
      const finalizer = ['--type=merge', '-p', '{"metadata":{"finalizers":["gantry.dev/runtime-cleanup"]}}'];
      const main = await kubectl(['patch', 'container', 'bound-elsewhere', '-n', otherNs, ...finalizer], {
        kubeconfig: kc.agent,
      });
      assert.match(main.stderr, denied);
      assert.match(main.stderr, new RegExp(`may write only Containers bound to ${host}`));
      const status = await applyStatus(
        kc.agent,
        { kind: 'Container', name: 'bound-elsewhere', namespace: otherNs },
        { phase: 'Running' },
      );
      assert.equal(status.ok, false);
      assert.match(status.message, denied);
      // One bound to its own host: status and finalizer yes, spec no.
      await kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(bound('bound-here', host, appNs)) });
      const own = await applyStatus(
        kc.agent,
        { kind: 'Container', name: 'bound-here', namespace: appNs },
        { phase: 'Pending' },
        true,
      );
      assert.equal(own.ok, true, own.message);
      const fin = await kubectl(
        ['patch', 'container', 'bound-here', '-n', appNs, '--dry-run=server', ...finalizer],
        { kubeconfig: kc.agent },
      );
      assert.equal(fin.code, 0, fin.stderr);
      const spec = await kubectl(
        [
          'patch',
          'container',
          'bound-here',
          '-n',
          appNs,
          '--dry-run=server',
          '--type=merge',
          '-p',
          '{"spec":{"args":["sleep","1"]}}',
        ],
        { kubeconfig: kc.agent },
      );
      assert.match(spec.stderr, /may not change the spec of Container/);
      await kubectlOk(['delete', 'container', 'bound-here', '-n', appNs, '--wait=false']);
      await waitGone(['container', 'bound-here', '-n', appNs]);
    },
  );

  step("refuses an agent's status writes to Builds bound to another host", async () => {
    const build = (name: string, nodeName: string) => ({
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Build',
      metadata: { name, namespace: appNs },
      spec: {
        image: `${cluster.registry}/rbac/app:1`,
        context: { files: { Dockerfile: 'FROM scratch' } },
        nodeName,
      },
    });
    await kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(build('built-elsewhere', elsewhere)) });
    await kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(build('built-here', host)) });
    const other = await applyStatus(
      kc.agent,
      { kind: 'Build', name: 'built-elsewhere', namespace: appNs },
      { phase: 'Running' },
    );
    assert.equal(other.ok, false);
    assert.match(other.message, new RegExp(`may write only Builds bound to ${host}`));
    const own = await applyStatus(
      kc.agent,
      { kind: 'Build', name: 'built-here', namespace: appNs },
      { phase: 'Running' },
      true,
    );
    assert.equal(own.ok, true, own.message);
    await kubectlOk(['delete', 'builds.gantry.dev', 'built-elsewhere', 'built-here', '-n', appNs]);
  });

  step("refuses an agent's writes to Migrations of other hosts, and to their hosts and phase", async () => {
    const migration = async (name: string, sourceHost: string, targetHost: string) => {
      const m = {
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Migration',
        metadata: { name, namespace: appNs },
        spec: { container: `${name}-container`, targetHost },
      };
      await kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(m) });
      const status = JSON.stringify({ status: { phase: 'Checkpointing', sourceHost, targetHost } });
      await kubectlOk([
        'patch',
        'migration',
        name,
        '-n',
        appNs,
        '--subresource=status',
        '--type=merge',
        '-p',
        status,
      ]);
    };
    await migration('from-here', host, elsewhere);
    await migration('elsewhere-only', elsewhere, `${elsewhere}-2`);
    const checkpointed = {
      conditions: [
        {
          type: 'Checkpointed',
          status: 'True',
          reason: 'Checkpointed',
          message: 'test',
          lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
          observedGeneration: 1,
        },
      ],
    };
    const own = await applyStatus(
      kc.agent,
      { kind: 'Migration', name: 'from-here', namespace: appNs },
      checkpointed,
      true,
    );
    assert.equal(own.ok, true, own.message);
    const other = await applyStatus(
      kc.agent,
      { kind: 'Migration', name: 'elsewhere-only', namespace: appNs },
      checkpointed,
      true,
    );
    assert.equal(other.ok, false);
    assert.match(other.message, new RegExp(`may write only Migrations from or to ${host}`));
    const phase = await applyStatus(
      kc.agent,
      { kind: 'Migration', name: 'from-here', namespace: appNs },
      { phase: 'Succeeded' },
      true,
    );
    assert.equal(phase.ok, false);
    assert.match(phase.message, /may not change the hosts or the phase of Migration/);
    // Only its side's part: the source's times and conditions, never the controller's fields (the
    // target to restore into above all) nor the target agent's.
    const ownTimes = await applyStatus(
      kc.agent,
      { kind: 'Migration', name: 'from-here', namespace: appNs },
      {
        ...checkpointed,
        frozenAt: checkpointed.conditions[0]!.lastTransitionTime,
        checkpointSizeBytes: 5,
        checkpointSHA256: 'a'.repeat(64),
      },
      true,
    );
    assert.equal(ownTimes.ok, true, ownTimes.message);
    const condition = (type: string) => ({ conditions: [{ ...checkpointed.conditions[0]!, type }] });
    for (const [what, status, refusal] of [
      ['the target to restore into', { targetContainerUID: 'forged' }, controllerFields],
      ['the message', { message: 'all is well' }, controllerFields],
      ['the start time', { startedAt: checkpointed.conditions[0]!.lastTransitionTime }, controllerFields],
      [
        "the target's restore time",
        { restoredAt: checkpointed.conditions[0]!.lastTransitionTime },
        controllerFields,
      ],
      [
        "the target's condition",
        condition('Restored'),
        /may report only the conditions Checkpointed, Resumed on/,
      ],
      [
        "the controller's condition",
        condition('Ready'),
        /may report only the conditions Checkpointed, Resumed on/,
      ],
    ] as const) {
      const r = await applyStatus(
        kc.agent,
        { kind: 'Migration', name: 'from-here', namespace: appNs },
        status,
        true,
      );
      assert.equal(r.ok, false, `the source agent changed ${what}`);
      assert.match(r.message, denied);
      assert.match(r.message, refusal, what);
    }
    // And the other way round on a Migration to its host.
    await migration('to-here', elsewhere, host);
    const transferred = await applyStatus(
      kc.agent,
      { kind: 'Migration', name: 'to-here', namespace: appNs },
      condition('Transferred'),
      true,
    );
    assert.equal(transferred.ok, true, transferred.message);
    const sourceSide = await applyStatus(
      kc.agent,
      { kind: 'Migration', name: 'to-here', namespace: appNs },
      { frozenAt: checkpointed.conditions[0]!.lastTransitionTime },
      true,
    );
    assert.match(sourceSide.message, controllerFields);
    // The digest the target checks the archive against is the source's word alone.
    const digest = await applyStatus(
      kc.agent,
      { kind: 'Migration', name: 'to-here', namespace: appNs },
      { ...condition('Transferred'), checkpointSHA256: 'b'.repeat(64) },
      true,
    );
    assert.equal(digest.ok, false, 'the target agent published the checkpoint digest');
    assert.match(digest.message, controllerFields);
    const theirs = await applyStatus(
      kc.agent,
      { kind: 'Migration', name: 'to-here', namespace: appNs },
      checkpointed,
      true,
    );
    assert.match(theirs.message, /may report only the conditions Transferred, Restored on/);
    await kubectlOk([
      'delete',
      'migration',
      'from-here',
      'to-here',
      'elsewhere-only',
      '-n',
      appNs,
      '--wait=false',
    ]);
  });

  step("refuses an agent's writes to other Leases and Events in another agent's name", async () => {
    const lease = (name: string, holder: string) =>
      JSON.stringify({
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name, namespace: ns },
        spec: { holderIdentity: holder, leaseDurationSeconds: 40 },
      });
    const foreign = await kubectl(['create', '--dry-run=server', '-f', '-'], {
      kubeconfig: kc.agent,
      input: lease(`gantry-host-${elsewhere}`, elsewhere),
    });
    assert.match(foreign.stderr, denied);
    // Taking over the controller's leader-election Lease. The controller renews it every few
    // seconds, and a replace of a copy it renewed meanwhile is refused as a conflict before
    // admission is asked: read and try again until admission answers.
    const takeover = await eventually(
      'an answer from admission, not a conflict',
      async () => {
        const election = await getJson<KubeObject & { spec: { holderIdentity?: string } }>([
          'lease',
          'gantry-controller',
          '-n',
          ns,
        ]);
        if (!election) return undefined;
        election.spec.holderIdentity = host;
        const r = await kubectl(['replace', '--dry-run=server', '-f', '-'], {
          kubeconfig: kc.agent,
          input: JSON.stringify(election),
        });
        return /Conflict/.test(r.stderr) ? undefined : r;
      },
      slow,
    );
    assert.match(takeover.stderr, denied);
    const event = (instance: string) =>
      JSON.stringify({
        apiVersion: 'events.k8s.io/v1',
        kind: 'Event',
        metadata: { name: `forged.${id}`, namespace: appNs },
        eventTime: new Date().toISOString().replace('Z', '000Z'),
        type: 'Normal',
        reason: 'Started',
        action: 'Start',
        note: 'test',
        reportingController: 'gantry.dev/agent',
        reportingInstance: instance,
        regarding: { apiVersion: 'gantry.dev/v1alpha1', kind: 'Container', name: 'web', namespace: appNs },
      });
    const forged = await kubectl(['create', '--dry-run=server', '-f', '-'], {
      kubeconfig: kc.agent,
      input: event(`gantry-agent/${elsewhere}`),
    });
    assert.match(forged.stderr, denied);
    const honest = await kubectl(['create', '--dry-run=server', '-f', '-'], {
      kubeconfig: kc.agent,
      input: event(`gantry-agent/${host}`),
    });
    assert.equal(honest.code, 0, honest.stderr);
  });

  step('lets an agent token that names no node write nothing', async () => {
    const r = await kubectl(
      [
        'patch',
        'host',
        host,
        '--dry-run=server',
        '--type=merge',
        '-p',
        '{"metadata":{"labels":{"gantry.dev/test":"x"}}}',
      ],
      { kubeconfig: kc.unbound },
    );
    assert.match(r.stderr, denied);
    assert.match(r.stderr, /must name its node/);
  });
});
