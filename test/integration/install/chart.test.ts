// The Helm chart with the real helm (built from its Go module) against the real apiserver: lint,
// render with the defaults and with every flag on, server-side dry-run of every object (Pod
// Security admission included), values refused by values.schema.json, and the generated parts
// (CRD templates, plain manifests) being current.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DURATION_PATTERN, kinds, QUANTITY_PATTERN } from '../../../src/api/v1alpha1/index.js';
import { crdName, renderCrds } from '../../../src/api/v1alpha1/crd.js';
import { chartCrdDir, renderChartCrds } from '../../../src/install/crds.js';
import {
  chartDir,
  helm,
  renderChart,
  templateChart,
  templateKubeVersion,
} from '../../../src/install/helm.js';
import { manifestsDir, renderManifests } from '../../../src/install/manifests.js';
import { installCrds } from '../../../src/localcluster/gantry.js';
import { kubectl, kubectlOk, localCluster } from '../../support/cluster.js';
import { find, objectId, parseObjects, repoRoot, runId, type KubeObject } from './support.js';

const id = runId();
const ns = `gantry-chart-${id}`;
const agentNs = `${ns}-agent`;
const release = 'gantry';
const monitoringCrds = path.join(repoRoot, 'test/fixtures/install/monitoring-crds.yaml');
const monitoringCrdNames = [
  'servicemonitors.monitoring.coreos.com',
  'podmonitors.monitoring.coreos.com',
  'prometheusrules.monitoring.coreos.com',
];
let createdMonitoringCrds: string[] = [];

/** Every switch of the chart turned on, and every optional value given. */
function everyFlag(): Record<string, unknown> {
  return {
    commonLabels: { 'example.com/team': 'platform' },
    namespace: { create: true },
    imagePullSecrets: [{ name: 'registry-login' }],
    crds: { enabled: true, keep: true },
    rbac: { aggregateToDefaultRoles: true },
    pullSecrets: { namespaces: [ns], names: ['registry-login'] },
    admissionPolicy: { enabled: true, validationActions: ['Deny', 'Audit'] },
    controller: {
      insecureRegistries: ['registry.local:5000'],
      extraArgs: ['--registry-timeout=20s'],
      extraEnv: [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=384' }],
      serviceAccount: { annotations: { 'example.com/role': 'gantry' } },
      priorityClassName: 'system-cluster-critical',
      tolerations: [{ key: 'example.com/dedicated', operator: 'Exists', effect: 'NoSchedule' }],
      topologySpreadConstraints: [
        {
          maxSkew: 1,
          topologyKey: 'topology.kubernetes.io/zone',
          whenUnsatisfiable: 'ScheduleAnyway',
          labelSelector: { matchLabels: { 'app.kubernetes.io/component': 'controller' } },
        },
      ],
      podAnnotations: { 'example.com/scrape': 'true' },
      podLabels: { 'example.com/tier': 'control' },
    },
    agent: {
      runtime: { mountDirectory: true },
      capacity: { cpu: '2', memory: '4Gi' },
      reserved: { cpu: '250m', memory: '256Mi' },
      cgroupParent: 'gantry.slice',
      extraArgs: ['--pull-concurrency=4'],
      extraEnv: [{ name: 'GANTRY_AGENT_STATS_INTERVAL_SECONDS', value: '15' }],
      priorityClassName: 'system-node-critical',
      tolerations: [{ operator: 'Exists' }],
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [{ matchExpressions: [{ key: 'gantry.dev/host', operator: 'Exists' }] }],
          },
        },
      },
      podAnnotations: { 'example.com/scrape': 'true' },
      podLabels: { 'example.com/tier': 'node' },
    },
    metrics: {
      service: { enabled: true, port: 8080 },
      serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus-stack' } },
      podMonitor: { enabled: true, labels: { release: 'kube-prometheus-stack' } },
      prometheusRule: { enabled: true, labels: { release: 'kube-prometheus-stack' } },
      dashboard: { enabled: true, annotations: { grafana_folder: 'Gantry' } },
    },
  };
}

async function render(values: Record<string, unknown> = {}, showOnly?: string[]): Promise<string> {
  return renderChart({ release, namespace: ns, values, ...(showOnly ? { showOnly } : {}) });
}

/** Server-side dry run of a YAML stream; the objects as the apiserver would store them, and its warnings. */
async function dryRun(yaml: string): Promise<{ items: KubeObject[]; warnings: string }> {
  const r = await kubectl(
    [
      'apply',
      '--server-side',
      '--force-conflicts',
      '--field-manager=gantry-chart-test',
      '--dry-run=server',
      '-o',
      'json',
      '-f',
      '-',
    ],
    { input: yaml, timeoutMs: 120_000 },
  );
  assert.equal(r.code, 0, `kubectl apply --dry-run=server refused the chart:\n${r.stderr}`);
  const out = JSON.parse(r.stdout) as { kind: string; items?: KubeObject[] } & KubeObject;
  return { items: out.kind === 'List' ? (out.items ?? []) : [out], warnings: r.stderr };
}

type PodSpec = {
  containers: {
    name: string;
    args: string[];
    env?: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
    securityContext: Record<string, unknown>;
    volumeMounts: { name: string; mountPath: string }[];
    livenessProbe: { httpGet: { path: string } };
    readinessProbe: { httpGet: { path: string } };
    resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  }[];
  volumes?: { name: string; hostPath?: { path: string; type: string } }[];
  securityContext: Record<string, unknown>;
  serviceAccountName: string;
};

function podSpec(o: KubeObject): PodSpec {
  return (o.spec as { template: { spec: PodSpec } }).template.spec;
}

describe('Helm chart charts/gantry', () => {
  before(async () => {
    await installCrds(localCluster());
    // prometheus-operator's kinds, so ServiceMonitor, PodMonitor and PrometheusRule can be dry-run.
    const existing = await kubectl(['get', 'crd', ...monitoringCrdNames, '-o', 'name', '--ignore-not-found']);
    createdMonitoringCrds = monitoringCrdNames.filter((n) => !existing.stdout.includes(n));
    await kubectlOk(['apply', '--server-side', '--field-manager=gantry-chart-test', '-f', monitoringCrds]);
    await kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', '-f', monitoringCrds]);
    // The two namespaces, for real and labelled as the chart labels them (Pod Security admission
    // then judges the dry-run Deployment and DaemonSet as it would on install).
    const namespaces = await render({ namespace: { create: true } }, ['templates/namespaces.yaml']);
    await kubectlOk(['apply', '-f', '-'], { input: namespaces });
  });

  after(async () => {
    await kubectl(['delete', 'namespace', ns, agentNs, '--wait=false', '--ignore-not-found']);
    if (createdMonitoringCrds.length > 0) {
      await kubectl(['delete', 'crd', ...createdMonitoringCrds, '--wait=false', '--ignore-not-found']);
    }
  });

  it('passes helm lint --strict, with the defaults and with every flag on', async () => {
    for (const set of [[], ['namespace.create=true', 'metrics.serviceMonitor.enabled=true']]) {
      const args = ['lint', '--strict', chartDir, '--kube-version', templateKubeVersion, '--namespace', ns];
      for (const s of set) args.push('--set', s);
      const r = await helm(args);
      assert.equal(r.code, 0, `helm lint failed:\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  it('renders the defaults, and the apiserver accepts every object (server-side dry run)', async () => {
    const yaml = await render();
    const objects = await parseObjects(yaml);
    const kindsRendered = new Set(objects.map((o) => o.kind));
    for (const kind of [
      'CustomResourceDefinition',
      'Namespace',
      'ServiceAccount',
      'ClusterRole',
      'ClusterRoleBinding',
      'Role',
      'RoleBinding',
      'Deployment',
      'DaemonSet',
      'PodDisruptionBudget',
      'Service',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
      'NetworkPolicy',
    ]) {
      assert.ok(kindsRendered.has(kind), `no ${kind} rendered`);
    }
    for (const kind of ['ServiceMonitor', 'PodMonitor', 'PrometheusRule', 'ConfigMap']) {
      assert.ok(!kindsRendered.has(kind), `${kind} is rendered although its flag is off`);
    }
    // The release namespace is Helm's (--create-namespace) unless namespace.create; the agents' is ours.
    assert.deepEqual(
      objects.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name),
      [agentNs],
    );
    const { items, warnings } = await dryRun(yaml);
    assert.deepEqual(items.map(objectId).sort(), objects.map(objectId).sort());
    assert.doesNotMatch(warnings, /PodSecurity/, 'Pod Security admission warned about the defaults');
  });

  for (const variant of ['namespaced pull secrets', 'cluster-wide pull secrets'] as const) {
    it(`renders with every flag on (${variant}), and the apiserver accepts every object`, async () => {
      const values = everyFlag();
      if (variant === 'cluster-wide pull secrets') values.pullSecrets = { clusterWide: true };
      const yaml = await render(values);
      const objects = await parseObjects(yaml);
      for (const [kind, name] of [
        ['ServiceMonitor', `${release}-controller`],
        ['PodMonitor', `${release}-agent`],
        ['PrometheusRule', release],
        ['ConfigMap', `${release}-dashboard`],
        ['ClusterRole', `${release}-view`],
        ['ClusterRole', `${release}-edit`],
        [variant === 'cluster-wide pull secrets' ? 'ClusterRole' : 'Role', `${release}-pull-secrets`],
        ['Namespace', ns],
        ['Namespace', agentNs],
      ] as const) {
        find(objects, kind, name);
      }
      for (const o of objects) {
        assert.equal(
          o.metadata.labels?.['example.com/team'],
          'platform',
          `${objectId(o)} lacks commonLabels`,
        );
      }
      const { items, warnings } = await dryRun(yaml);
      assert.deepEqual(items.map(objectId).sort(), objects.map(objectId).sort());
      assert.doesNotMatch(warnings, /PodSecurity/);
    });
  }

  it('runs the controller under the restricted Pod Security Standard, 2 replicas, leader election, probes', async () => {
    const objects = await parseObjects(await render());
    const deploy = find(objects, 'Deployment', `${release}-controller`);
    assert.equal((deploy.spec as { replicas: number }).replicas, 2);
    const spec = podSpec(deploy);
    const [c] = spec.containers;
    assert.ok(c);
    assert.deepEqual(spec.securityContext.seccompProfile, { type: 'RuntimeDefault' });
    assert.equal(spec.securityContext.runAsNonRoot, true);
    assert.equal(c.securityContext.runAsNonRoot, true);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] });
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    assert.ok(c.resources.requests?.cpu && c.resources.requests.memory && c.resources.limits?.memory);
    assert.equal(c.args[0], 'dist/cmd/controller.js');
    for (const arg of [
      '--leader-elect=true',
      `--leader-election-namespace=${ns}`,
      '--health-probe-bind-address=:8081',
    ])
      assert.ok(c.args.includes(arg), `controller args lack ${arg}: ${c.args.join(' ')}`);
    const pdb = find(objects, 'PodDisruptionBudget', `${release}-controller`);
    assert.equal((pdb.spec as { minAvailable: number }).minAvailable, 1);

    // One replica: no budget (it would block every drain), and election may be off.
    const single = await parseObjects(
      await render({ controller: { replicas: 1, leaderElection: { enabled: false } } }),
    );
    assert.ok(!single.some((o) => o.kind === 'PodDisruptionBudget'));
    assert.ok(podSpec(find(single, 'Deployment')).containers[0]!.args.includes('--leader-elect=false'));
  });

  it("mounts only Gantry's own runtime (its socket directory), the state directory and (read-only) the runtime root into the agent, at the same paths, unprivileged", async () => {
    const objects = await parseObjects(await render());
    const ds = find(objects, 'DaemonSet', `${release}-agent`);
    assert.equal(ds.metadata.namespace, agentNs);
    const spec = podSpec(ds);
    const [c] = spec.containers;
    assert.ok(c);
    assert.deepEqual(spec.volumes, [
      { name: 'runtime', hostPath: { path: '/run/gantry/containerd', type: 'Directory' } },
      { name: 'state', hostPath: { path: '/var/lib/gantry/agent', type: 'DirectoryOrCreate' } },
      { name: 'runtime-root', hostPath: { path: '/var/lib/gantry/containerd', type: 'Directory' } },
    ]);
    assert.deepEqual(c.volumeMounts, [
      { name: 'runtime', mountPath: '/run/gantry/containerd' },
      { name: 'state', mountPath: '/var/lib/gantry/agent' },
      { name: 'runtime-root', mountPath: '/var/lib/gantry/containerd', readOnly: true },
    ]);
    assert.ok(c.args.includes('--cri-socket=/run/gantry/containerd/containerd.sock'));
    assert.ok(!c.args.some((a: string) => a.startsWith('--allow-runtime-shared-with-kubelet')));
    assert.equal(c.securityContext.privileged, false);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] });
    assert.equal(c.securityContext.runAsUser, 0);
    const hostName = c.env?.find((e) => e.name === 'GANTRY_AGENT_HOST_NAME');
    assert.equal(hostName?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');
    for (const arg of ['--state-dir=/var/lib/gantry/agent', `--lease-namespace=${ns}`])
      assert.ok(c.args.includes(arg), `agent args lack ${arg}`);
    // The agents' namespace is labelled for the privileged level; the release namespace for restricted.
    const agentNamespace = find(objects, 'Namespace', agentNs);
    assert.equal(agentNamespace.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'privileged');
    const own = find(
      await parseObjects(await render({ namespace: { create: true } }, ['templates/namespaces.yaml'])),
      'Namespace',
      ns,
    );
    assert.equal(own.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');

    // mountDirectory off: the socket alone; allowSharedWithKubelet passes the agent's flag.
    const socketMount = podSpec(
      find(
        await parseObjects(
          await render({ agent: { runtime: { mountDirectory: false, allowSharedWithKubelet: true } } }),
        ),
        'DaemonSet',
      ),
    );
    assert.deepEqual(socketMount.volumes?.[0], {
      name: 'runtime',
      hostPath: { path: '/run/gantry/containerd/containerd.sock', type: 'Socket' },
    });
    assert.ok(socketMount.containers[0]!.args.includes('--allow-runtime-shared-with-kubelet=true'));

    // No runtime root: no mount (and no image garbage collection).
    const noGc = podSpec(
      find(await parseObjects(await render({ agent: { imageGC: { runtimeRoot: '' } } })), 'DaemonSet'),
    );
    assert.deepEqual(
      noGc.volumes?.map((v) => v.name),
      ['runtime', 'state'],
    );
  });

  it("opens the agents' transfer port to the agents' pods alone, and metrics and probes to metricsFrom (NetworkPolicy)", async () => {
    const objects = await parseObjects(await render());
    const ds = find(objects, 'DaemonSet', `${release}-agent`);
    const template = (ds.spec as { template: { metadata: { labels: Record<string, string> } } }).template;
    const ports = (podSpec(ds).containers[0] as unknown as { ports: { name: string }[] }).ports.map(
      (p) => p.name,
    );
    type Rule = {
      from?: { podSelector?: { matchLabels: Record<string, string> } }[];
      ports: { port: string }[];
    };
    const policy = find(objects, 'NetworkPolicy', `${release}-agent`);
    assert.equal(policy.metadata.namespace, agentNs);
    const spec = policy.spec as { podSelector: { matchLabels: Record<string, string> }; ingress: Rule[] };
    const selects = (labels: Record<string, string>) =>
      Object.entries(labels).every(([k, v]) => template.metadata.labels[k] === v);
    assert.ok(selects(spec.podSelector.matchLabels), "it selects the agents' pods");
    const [transfer, metrics] = spec.ingress;
    assert.deepEqual(
      transfer!.ports.map((p) => p.port),
      ['transfer'],
    );
    assert.equal(transfer!.from?.length, 1);
    assert.ok(selects(transfer!.from![0]!.podSelector!.matchLabels), 'from the agents alone');
    assert.deepEqual(
      metrics!.ports.map((p) => p.port),
      ['metrics', 'probes'],
    );
    assert.equal(metrics!.from, undefined, 'metrics from anyone by default');
    for (const rule of spec.ingress)
      for (const p of rule.ports) assert.ok(ports.includes(p.port), `no port ${p.port}`);
    assert.equal(spec.ingress.length, 2, 'nothing else reaches the agents');

    const prometheus = [
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
    ];
    const narrowed = find(
      await parseObjects(await render({ agent: { networkPolicy: { metricsFrom: prometheus } } })),
      'NetworkPolicy',
      `${release}-agent`,
    );
    assert.deepEqual((narrowed.spec as { ingress: Rule[] }).ingress[1]!.from, prometheus);
    const off = await parseObjects(await render({ agent: { networkPolicy: { enabled: false } } }));
    assert.ok(!off.some((o) => o.kind === 'NetworkPolicy'));
  });

  it('needs the privileged level for the agent only for the documented reasons (host paths, root)', async () => {
    const ds = await render({}, ['templates/agent-daemonset.yaml']);
    const probeNs = `${ns}-pss`;
    await kubectlOk(['create', 'namespace', probeNs]);
    try {
      const verdicts: Record<string, string> = {};
      for (const level of ['baseline', 'restricted']) {
        await kubectlOk([
          'label',
          'namespace',
          probeNs,
          '--overwrite',
          `pod-security.kubernetes.io/warn=${level}`,
        ]);
        const r = await kubectl(['apply', '--dry-run=server', '-n', probeNs, '-f', '-'], {
          input: ds.replaceAll(agentNs, probeNs),
        });
        assert.equal(r.code, 0, r.stderr);
        verdicts[level] = r.stderr;
      }
      // Baseline: host paths only (no privileged container, no host namespaces, no added capabilities).
      assert.match(
        verdicts.baseline!,
        /would violate PodSecurity "baseline:latest": hostPath volumes \(volumes "runtime", "state", "runtime-root"\)\n/,
      );
      // Restricted adds running as root, nothing else (capabilities, seccomp, escalation all comply).
      const restricted =
        /would violate PodSecurity "restricted:latest": (.*)\n/.exec(verdicts.restricted!)?.[1] ?? '';
      const reasons = restricted.split(/, (?=[a-zA-Z]+[ =(!])/).map((s) => s.replace(/ \(.*$/, '').trim());
      assert.deepEqual(
        reasons.sort(),
        ['restricted volume types', 'runAsNonRoot != true', 'runAsUser=0'],
        restricted,
      );
    } finally {
      await kubectl(['delete', 'namespace', probeNs, '--wait=false']);
    }
  });

  it('refuses values that break values.schema.json', async () => {
    const bad: [string, Record<string, unknown>][] = [
      ['unknown key', { replicas: 3 }],
      ['replicas below 1', { controller: { replicas: 0 } }],
      ['replicas as a string', { controller: { replicas: 'two' } }],
      ['several replicas without leader election', { controller: { leaderElection: { enabled: false } } }],
      ['duration without a unit', { controller: { leaderElection: { leaseDuration: '15' } } }],
      ['unknown log level', { controller: { logLevel: 'verbose' } }],
      ['flag without dashes', { controller: { extraArgs: ['log-level=debug'] } }],
      ['bad insecure registry', { controller: { insecureRegistries: ['http://registry'] } }],
      ['crds.enabled as a string', { crds: { enabled: 'yes' } }],
      ['relative socket path', { agent: { runtime: { socket: 'run/containerd/containerd.sock' } } }],
      ['state dir with a trailing slash', { agent: { stateDir: '/var/lib/gantry/' } }],
      ['bad quantity', { agent: { reserved: { cpu: 'lots' } } }],
      ['bad pull policy', { image: { pullPolicy: 'Sometimes' } }],
      ['bad digest', { image: { digest: 'sha256:abc' } }],
      ['bad namespace name', { pullSecrets: { namespaces: ['Team_A'] } }],
      ['Deny with Warn', { admissionPolicy: { validationActions: ['Deny', 'Warn'] } }],
      ['unknown key under agent', { agent: { privileged: true } }],
      ['port out of range', { metrics: { service: { port: 70000 } } }],
      ['bad scrape interval', { metrics: { serviceMonitor: { interval: 'often' } } }],
    ];
    for (const [why, values] of bad) {
      const r = await templateChart({ release, namespace: ns, values });
      assert.notEqual(r.code, 0, `${why}: accepted ${JSON.stringify(values)}`);
      assert.match(r.stderr, /values don't meet the specifications of the schema/, `${why}: ${r.stderr}`);
    }
    const good: Record<string, unknown>[] = [
      { controller: { replicas: 1, leaderElection: { enabled: false } } },
      { admissionPolicy: { validationActions: ['Warn', 'Audit'] } },
      { agent: { capacity: { cpu: '1500m', memory: '' } } },
      { image: { digest: `sha256:${'a'.repeat(64)}` } },
    ];
    for (const values of good) {
      const r = await templateChart({ release, namespace: ns, values });
      assert.equal(r.code, 0, `refused ${JSON.stringify(values)}:\n${r.stderr}`);
    }
  });

  it('uses the same quantity and duration grammar as the API', () => {
    const schema = JSON.parse(fs.readFileSync(path.join(chartDir, 'values.schema.json'), 'utf8')) as {
      definitions: Record<string, { pattern?: string }>;
    };
    assert.equal(schema.definitions.quantity?.pattern, QUANTITY_PATTERN);
    assert.equal(schema.definitions.duration?.pattern, DURATION_PATTERN);
  });

  it('refuses Kubernetes older than 1.32 (kubeVersion)', async () => {
    const r = await helm(['template', release, chartDir, '--kube-version', '1.31.9']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /chart requires kubeVersion: >= 1\.32\.0-0/);
  });

  it('carries the CRDs of crds/, generated from the zod schemas, behind crds.enabled and crds.keep', async () => {
    // The template files are what `npm run gen:crds` writes now.
    const want = renderChartCrds();
    const have = fs.readdirSync(chartCrdDir).filter((f) => f.endsWith('.yaml'));
    assert.deepEqual(have.sort(), [...want.keys()].sort(), 'run `npm run gen:crds`');
    for (const [name, content] of want) {
      const current = fs.readFileSync(path.join(chartCrdDir, name), 'utf8') === content;
      assert.ok(current, `charts/gantry/templates/crds/${name} is stale: run \`npm run gen:crds\``);
    }
    // Rendered, each equals its crds/ file below metadata, byte for byte.
    const rendered = await render(
      {},
      [...want.keys()].map((f) => `templates/crds/${f}`),
    );
    const docs = rendered.split(/^---\n/m).filter((d) => d.includes('kind: CustomResourceDefinition'));
    const crdFiles = renderCrds();
    assert.equal(docs.length, Object.keys(kinds).length);
    for (const def of Object.values(kinds)) {
      const name = crdName(def);
      const doc = docs.find((d) => d.includes(`\n  name: ${name}\n`));
      assert.ok(doc, `no CRD ${name} rendered`);
      const file = crdFiles.get(`${name}.yaml`)!;
      const onDisk = fs.readFileSync(path.join(repoRoot, 'crds', `${name}.yaml`), 'utf8');
      assert.ok(onDisk === file, `crds/${name}.yaml is stale: run \`npm run gen:crds\``);
      const same = doc.slice(doc.indexOf('\nspec:\n')) === onDisk.slice(onDisk.indexOf('\nspec:\n'));
      assert.ok(same, `the chart's ${name} differs from crds/${name}.yaml below metadata`);
    }
    const objects = await parseObjects(rendered);
    for (const o of objects) {
      assert.equal(o.metadata.annotations?.['helm.sh/resource-policy'], 'keep');
      assert.equal(o.metadata.labels?.['app.kubernetes.io/part-of'], 'gantry');
    }
    const loose = await parseObjects(
      await render({ crds: { keep: false } }, ['templates/crds/images.gantry.dev.yaml']),
    );
    assert.equal(loose[0]?.metadata.annotations, undefined);
    const none = await parseObjects(await render({ crds: { enabled: false } }));
    assert.ok(!none.some((o) => o.kind === 'CustomResourceDefinition'));
  });

  it('has current plain manifests (npm run gen:manifests)', async () => {
    const want = await renderManifests();
    assert.deepEqual(fs.readdirSync(manifestsDir).sort(), [...want.keys()].sort());
    for (const [name, content] of want) {
      const current = fs.readFileSync(path.join(manifestsDir, name), 'utf8') === content;
      assert.ok(current, `manifests/${name} is stale: run \`npm run gen:manifests\``);
    }
    // The plain install creates its namespace, labelled restricted, before anything else.
    const objects = await parseObjects(want.get('gantry.yaml')!);
    assert.equal(objects[0]?.kind, 'Namespace');
    assert.equal(objects[0]?.metadata.name, 'gantry-system');
    assert.equal(objects[0]?.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
  });

  it('prints NOTES that say what was installed and what pull secrets may be read', async () => {
    const notesNs = `${ns}-notes`;
    const notes = async (...set: string[]) => {
      // A dry run against the cluster (Helm reads its version there), into a namespace nothing
      // exists in yet; CRDs stay out of it, since the cluster's are not Helm's.
      const args = [
        'install',
        release,
        chartDir,
        '--dry-run=server',
        '--namespace',
        notesNs,
        '--kubeconfig',
        localCluster().kubeconfig,
        '--set',
        'crds.enabled=false',
      ];
      for (const s of set) args.push('--set', s);
      const r = await helm(args);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.slice(r.stdout.indexOf('NOTES:'));
    };
    const plain = await notes();
    assert.match(plain, new RegExp(`DaemonSet ${release}-agent in ${notesNs}-agent`));
    assert.match(plain, /may read no Secrets/);
    assert.match(
      await notes(`pullSecrets.namespaces={${ns}}`),
      new RegExp(`Pull secrets are readable in: ${ns}`),
    );
    assert.match(await notes('admissionPolicy.enabled=false'), /WARNING: admissionPolicy.enabled=false/);
  });

  it('describes the CRDs for Artifact Hub as they are, with examples the apiserver accepts', async () => {
    const chartYaml = fs.readFileSync(path.join(chartDir, 'Chart.yaml'), 'utf8');
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
      version: string;
    };
    assert.match(chartYaml, new RegExp(`^appVersion: "${pkg.version.replaceAll('.', '\\.')}"$`, 'm'));
    const annotations = chartYaml.slice(chartYaml.indexOf('\nannotations:\n') + '\nannotations:\n'.length);
    const [holder] = await parseObjects(
      `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: chart\n  annotations:\n${annotations.replace(/^/gm, '  ')}`,
    );
    const a = holder!.metadata.annotations!;
    const listed = [...(a['artifacthub.io/crds'] ?? '').matchAll(/name: (\S+)/g)].map((m) => m[1]).sort();
    assert.deepEqual(listed, Object.values(kinds).map(crdName).sort());
    const examples = await parseObjects(
      `apiVersion: v1\nkind: List\nitems:\n${(a['artifacthub.io/crdsExamples'] ?? '').replace(/^/gm, '  ')}`,
    );
    assert.deepEqual(examples.map((o) => o.kind).sort(), Object.keys(kinds).sort());
    // In a user's namespace (not the release's, which enforces the restricted level).
    const yaml = examples
      .map((o) =>
        JSON.stringify(o.kind === 'Host' ? o : { ...o, metadata: { ...o.metadata, namespace: 'default' } }),
      )
      .join('\n---\n');
    await kubectlOk(['apply', '--dry-run=server', '-f', '-'], { input: yaml });
  });
});
