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
import { eventually } from '../../support/wait.js';
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
    subresources: {
      enabled: true,
      replicas: 3,
      apiService: { groupPriorityMinimum: 2000, versionPriority: 20 },
      logLevel: 'debug',
      extraEnv: [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=256' }],
      serviceAccount: { annotations: { 'example.com/role': 'gantry-api' } },
      priorityClassName: 'system-cluster-critical',
      tolerations: [{ key: 'example.com/dedicated', operator: 'Exists', effect: 'NoSchedule' }],
      topologySpreadConstraints: [
        {
          maxSkew: 1,
          topologyKey: 'topology.kubernetes.io/zone',
          whenUnsatisfiable: 'ScheduleAnyway',
          labelSelector: { matchLabels: { 'app.kubernetes.io/component': 'subresources' } },
        },
      ],
      podAnnotations: { 'example.com/scrape': 'true' },
      podLabels: { 'example.com/tier': 'api' },
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
      'APIService',
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
        ['ClusterRole', `${release}-subresources`],
        ['APIService', 'v1alpha1.subresources.gantry.dev'],
        ['PodDisruptionBudget', `${release}-subresources`],
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
    assert.ok(
      !single.some((o) => o.kind === 'PodDisruptionBudget' && o.metadata.name === `${release}-controller`),
    );
    assert.ok(
      podSpec(find(single, 'Deployment', `${release}-controller`)).containers[0]!.args.includes(
        '--leader-elect=false',
      ),
    );
  });

  it('runs the aggregated API server from the same image under the restricted level, 2 replicas, probes, a PDB, behind its Service and APIService', async () => {
    const objects = await parseObjects(await render());
    const name = `${release}-subresources`;
    const deploy = find(objects, 'Deployment', name);
    assert.equal(deploy.metadata.namespace, ns);
    assert.equal((deploy.spec as { replicas: number }).replicas, 2);
    const spec = podSpec(deploy);
    const [c] = spec.containers;
    assert.ok(c);
    assert.equal(spec.serviceAccountName, name);
    assert.deepEqual(spec.securityContext.seccompProfile, { type: 'RuntimeDefault' });
    assert.equal(spec.securityContext.runAsNonRoot, true);
    assert.equal(c.securityContext.runAsNonRoot, true);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] });
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    assert.ok(c.resources.requests?.cpu && c.resources.requests.memory && c.resources.limits?.memory);
    // The image's entry point for it, as dist/cmd/controller.js for the controller.
    assert.equal(c.args[0], 'dist/cmd/subresources.js');
    const agent = podSpec(find(objects, 'DaemonSet', `${release}-agent`)).containers[0]!;
    for (const arg of [
      '--bind-address=:8443',
      '--health-probe-bind-address=:8081',
      `--namespace=${ns}`,
      `--service-name=${name}`,
      '--api-service=v1alpha1.subresources.gantry.dev',
      `--pki-secret=${name}-pki`,
      `--agent-namespace=${agentNs}`,
      `--agent-tls-secret=${release}-agent-tls`,
    ])
      assert.ok(c.args.includes(arg), `server args lack ${arg}: ${c.args.join(' ')}`);
    // The agents serve logs at their pod's IP, with the certificate this server issues them.
    for (const arg of [
      '--stream-bind-address=:9444',
      `--stream-tls-secret=${release}-agent-tls`,
      '--advertise-address=$(POD_IP)',
    ])
      assert.ok(agent.args.includes(arg), `agent args lack ${arg}: ${agent.args.join(' ')}`);
    type Ports = { ports: { name: string; containerPort: number }[] };
    assert.deepEqual(
      (agent as unknown as Ports).ports.find((p) => p.name === 'streams')?.containerPort,
      9444,
    );
    const https = (c as unknown as Ports).ports.find((p) => p.name === 'https');
    assert.equal(https?.containerPort, 8443);
    const pdb = find(objects, 'PodDisruptionBudget', name);
    assert.equal((pdb.spec as { minAvailable: number }).minAvailable, 1);

    // The Service: 443 to its HTTPS port, selecting its pods alone.
    const service = find(objects, 'Service', name);
    const svc = service.spec as {
      selector: Record<string, string>;
      ports: { port: number; targetPort: string }[];
    };
    assert.deepEqual(
      svc.ports.map((p) => [p.port, p.targetPort]),
      [[443, 'https']],
    );
    const podLabels = (deploy.spec as { template: { metadata: { labels: Record<string, string> } } }).template
      .metadata.labels;
    assert.ok(Object.entries(svc.selector).every(([k, v]) => podLabels[k] === v));
    assert.equal(svc.selector['app.kubernetes.io/component'], 'subresources');

    // The APIService, as the local cluster's registration makes it, and without a caBundle: the
    // server writes its CA there, and an upgrade must not take it away.
    const apiService = find(objects, 'APIService', 'v1alpha1.subresources.gantry.dev');
    assert.deepEqual(apiService.spec, {
      group: 'subresources.gantry.dev',
      version: 'v1alpha1',
      service: { name, namespace: ns, port: 443 },
      groupPriorityMinimum: 1000,
      versionPriority: 15,
    });

    // Every user may reach the API; the server's check on gantry.dev decides.
    const access = find(objects, 'ClusterRoleBinding', `${name}-access`);
    assert.deepEqual((access as unknown as { subjects: unknown[] }).subjects, [
      { apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:authenticated' },
    ]);

    // One replica: no budget. Off: none of it, and no stream endpoint on the agents.
    const single = await parseObjects(await render({ subresources: { replicas: 1 } }));
    assert.ok(!single.some((o) => o.kind === 'PodDisruptionBudget' && o.metadata.name === name));
    const off = await parseObjects(await render({ subresources: { enabled: false } }));
    const left = off.filter(
      (o) => o.kind === 'APIService' || o.metadata.labels?.['app.kubernetes.io/component'] === 'subresources',
    );
    assert.deepEqual(left.map(objectId), []);
    const quiet = podSpec(find(off, 'DaemonSet', `${release}-agent`)).containers[0]!;
    assert.ok(!quiet.args.some((a) => a.startsWith('--stream-')), quiet.args.join(' '));
  });

  it('grants the aggregated API server exactly the calls it makes, and users containers/log with view, containers/exec with edit (RBAC, for real)', async () => {
    // Only the RBAC objects, applied for real under a release name of their own (no APIService:
    // one without its server would keep every namespace of the shared cluster from being deleted).
    const api = `api-${id}`;
    const name = `${api}-gantry-subresources`;
    const yaml = await renderChart({
      release: api,
      namespace: ns,
      showOnly: [
        'templates/rbac-subresources.yaml',
        'templates/rbac-aggregate.yaml',
        'templates/serviceaccounts.yaml',
      ],
    });
    const cleanUp = async () => {
      await kubectl(['delete', 'clusterrole,clusterrolebinding', '-l', `app.kubernetes.io/instance=${api}`]);
      await kubectl([
        'delete',
        'rolebinding',
        '-n',
        'kube-system',
        `${name}-auth-reader`,
        '--ignore-not-found',
      ]);
    };
    // The chart's own aggregated roles carry them (the cluster's view and edit may have them from elsewhere).
    type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
    const rendered = await parseObjects(yaml);
    const rulesOf = (role: string) =>
      (find(rendered, 'ClusterRole', role) as unknown as { rules: Rule[] }).rules;
    assert.deepEqual(
      rulesOf(`${api}-gantry-view`).find((r) => r.resources.includes('containers/log')),
      { apiGroups: ['gantry.dev'], resources: ['containers/log'], verbs: ['get'] },
    );
    assert.deepEqual(
      rulesOf(`${api}-gantry-edit`).find((r) => r.resources.includes('containers/exec')),
      { apiGroups: ['gantry.dev'], resources: ['containers/exec'], verbs: ['create', 'get'] },
    );
    try {
      await kubectlOk(['apply', '-f', '-'], { input: yaml });
      const sa = `system:serviceaccount:${ns}:${name}`;
      const can = async (as: string, ...args: string[]) =>
        (await kubectl(['auth', 'can-i', ...args, `--as=${as}`])).stdout.trim();
      const server = (...args: string[]) => can(sa, ...args);
      const apiService = 'apiservices.apiregistration.k8s.io/v1alpha1.subresources.gantry.dev';
      const expected: [string, string[]][] = [
        // index.ts: informers on Containers and Hosts.
        ['yes', ['list', 'containers.gantry.dev', '-A']],
        ['yes', ['watch', 'hosts.gantry.dev', '-A']],
        // authorize.ts: a SubjectAccessReview per request; no TokenReviews (the apiserver authenticates).
        ['yes', ['create', 'subjectaccessreviews.authorization.k8s.io']],
        ['no', ['create', 'tokenreviews.authentication.k8s.io']],
        // frontproxy.ts: the apiserver's front-proxy settings, and no other ConfigMap.
        ['yes', ['get', 'configmaps/extension-apiserver-authentication', '-n', 'kube-system']],
        ['no', ['get', 'configmaps/kube-proxy', '-n', 'kube-system']],
        // pki.ts: its CA into its own APIService only.
        ['yes', ['get', apiService]],
        ['yes', ['patch', apiService]],
        ['no', ['delete', apiService]],
        ['no', ['patch', 'apiservices.apiregistration.k8s.io/v1.apps']],
        // pki.ts: its Secret (read, create, replace) and the agents' TLS Secret, nothing else.
        ['yes', ['create', 'secrets', '-n', ns]],
        ['yes', ['get', `secrets/${name}-pki`, '-n', ns]],
        ['yes', ['update', `secrets/${name}-pki`, '-n', ns]],
        ['no', ['get', 'secrets/other', '-n', ns]],
        ['no', ['list', 'secrets', '-n', ns]],
        ['no', ['delete', `secrets/${name}-pki`, '-n', ns]],
        ['yes', ['create', 'secrets', '-n', agentNs]],
        ['yes', ['get', `secrets/${api}-gantry-agent-tls`, '-n', agentNs]],
        ['yes', ['update', `secrets/${api}-gantry-agent-tls`, '-n', agentNs]],
        ['no', ['get', 'secrets/gantry-migration-x', '-n', agentNs]],
        ['no', ['get', 'secrets', '-n', 'default']],
        // Nothing of the Containers it serves but reading them.
        ['no', ['patch', 'containers.gantry.dev', '-A']],
        ['no', ['list', 'pods', '-A']],
      ];
      for (const [want, args] of expected)
        assert.equal(
          await server(...args),
          want,
          `the server ${want === 'yes' ? 'may not' : 'may'} ${args.join(' ')}`,
        );

      // Any authenticated user reaches the aggregated API's resources; anonymous requests do not.
      // (A SubjectAccessReview: kubectl auth can-i cannot name a group the apiserver does not serve yet.)
      const review = async (
        user: string,
        groups: string[],
        verb: string,
        resource: string,
        subresource = '',
      ) => {
        const out = await kubectlOk(['create', '-o', 'json', '-f', '-'], {
          input: JSON.stringify({
            apiVersion: 'authorization.k8s.io/v1',
            kind: 'SubjectAccessReview',
            spec: {
              user,
              groups,
              resourceAttributes: {
                group: 'subresources.gantry.dev',
                resource,
                subresource,
                verb,
                namespace: 'default',
              },
            },
          }),
        });
        return (JSON.parse(out) as { status: { allowed: boolean } }).status.allowed;
      };
      for (const [verb, resource, sub] of [
        ['get', 'containers', 'log'],
        ['create', 'containers', 'exec'],
        ['get', 'containers', 'exec'],
        ['get', 'containermetrics', ''],
        ['list', 'containermetrics', ''],
      ] as const) {
        const what = `${verb} ${resource}${sub ? `/${sub}` : ''}`;
        assert.ok(await review(`someone-${id}`, ['system:authenticated'], verb, resource, sub), what);
        assert.ok(!(await review('system:anonymous', ['system:unauthenticated'], verb, resource, sub)), what);
      }
      assert.ok(!(await review(`someone-${id}`, ['system:authenticated'], 'delete', 'containers')));
      assert.ok(!(await review(`someone-${id}`, ['system:authenticated'], 'get', 'containers', 'attach')));

      // The check that counts, on gantry.dev: view reads logs, edit also execs (aggregated, as
      // pods/log and pods/exec are in the built-in roles).
      const [viewer, editor] = [`viewer-${id}`, `editor-${id}`];
      await kubectlOk(['create', 'rolebinding', 'v', '-n', ns, '--clusterrole=view', `--user=${viewer}`]);
      await kubectlOk(['create', 'rolebinding', 'e', '-n', ns, '--clusterrole=edit', `--user=${editor}`]);
      const on = (user: string, verb: string, sub: string) =>
        can(user, verb, 'containers.gantry.dev', `--subresource=${sub}`, '-n', ns);
      await eventually(
        'the aggregation controller to give view and edit the rights on logs and exec',
        async () =>
          (await on(viewer, 'get', 'log')) === 'yes' && (await on(editor, 'create', 'exec')) === 'yes'
            ? true
            : undefined,
        { timeoutMs: 60_000, intervalMs: 1000 },
      );
      assert.equal(await on(editor, 'get', 'log'), 'yes');
      assert.equal(await on(editor, 'get', 'exec'), 'yes');
      assert.equal(await on(viewer, 'create', 'exec'), 'no');
      assert.equal(await on(viewer, 'get', 'exec'), 'no');
      assert.equal(
        await can(viewer, 'get', 'containers.gantry.dev', '--subresource=log', '-n', 'default'),
        'no',
      );
    } finally {
      await cleanUp();
    }
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
    // Containers' hostPorts are published on the node's address.
    const nodeIP = c.env?.find((e) => e.name === 'GANTRY_AGENT_NODE_IP');
    assert.equal(nodeIP?.valueFrom?.fieldRef?.fieldPath, 'status.hostIP');
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

    // A builder (agent.buildkit.socket): buildkitd's socket directory and buildctl, and the flags.
    const builder = podSpec(
      find(
        await parseObjects(await render({ agent: { buildkit: { socket: '/run/buildkit/buildkitd.sock' } } })),
        'DaemonSet',
      ),
    );
    assert.deepEqual(builder.volumes?.slice(2, 4), [
      { name: 'buildkit', hostPath: { path: '/run/buildkit', type: 'Directory' } },
      { name: 'buildctl', hostPath: { path: '/usr/local/bin/buildctl', type: 'File' } },
    ]);
    const agent = builder.containers[0]!;
    assert.deepEqual(agent.volumeMounts?.slice(2, 4), [
      { name: 'buildkit', mountPath: '/run/buildkit' },
      { name: 'buildctl', mountPath: '/usr/local/bin/buildctl', readOnly: true },
    ]);
    for (const arg of [
      '--buildkit-socket=unix:///run/buildkit/buildkitd.sock',
      '--buildctl=/usr/local/bin/buildctl',
    ])
      assert.ok(agent.args.includes(arg), `agent args lack ${arg}`);
    assert.ok(!c.args.some((a: string) => a.startsWith('--buildkit-socket')), 'no BuildKit by default');
  });

  it("gives the agent the cluster's DNS for its containers only when agent.clusterDNS is set", async () => {
    const agent = async (values: Record<string, unknown>) =>
      podSpec(find(await parseObjects(await render(values)), 'DaemonSet')).containers[0]!;
    const byDefault = await agent({});
    assert.ok(
      !byDefault.args.some((a: string) => a.startsWith('--cluster-')),
      `by default containers keep their node's resolv.conf: ${byDefault.args.join(' ')}`,
    );
    const withDns = await agent({ agent: { clusterDNS: '10.96.0.10' } });
    for (const arg of ['--cluster-dns=10.96.0.10', '--cluster-domain=cluster.local'])
      assert.ok(withDns.args.includes(arg), `agent args lack ${arg}: ${withDns.args.join(' ')}`);
  });

  it("opens the agents' transfer port to the agents' pods alone, and metrics and probes to metricsFrom (NetworkPolicy)", async () => {
    const objects = await parseObjects(await render());
    const ds = find(objects, 'DaemonSet', `${release}-agent`);
    const template = (ds.spec as { template: { metadata: { labels: Record<string, string> } } }).template;
    const ports = (podSpec(ds).containers[0] as unknown as { ports: { name: string }[] }).ports.map(
      (p) => p.name,
    );
    type Rule = {
      from?: {
        podSelector?: { matchLabels: Record<string, string> };
        namespaceSelector?: { matchLabels: Record<string, string> };
      }[];
      ports: { port: string }[];
    };
    const policy = find(objects, 'NetworkPolicy', `${release}-agent`);
    assert.equal(policy.metadata.namespace, agentNs);
    const spec = policy.spec as { podSelector: { matchLabels: Record<string, string> }; ingress: Rule[] };
    const selects = (labels: Record<string, string>) =>
      Object.entries(labels).every(([k, v]) => template.metadata.labels[k] === v);
    assert.ok(selects(spec.podSelector.matchLabels), "it selects the agents' pods");
    const [transfer, streams, metrics] = spec.ingress;
    assert.deepEqual(
      transfer!.ports.map((p) => p.port),
      ['transfer'],
    );
    assert.equal(transfer!.from?.length, 1);
    assert.ok(selects(transfer!.from![0]!.podSelector!.matchLabels), 'from the agents alone');
    // The stream port (logs) from the aggregated API server's pods alone, in the release namespace.
    const server = find(objects, 'Deployment', `${release}-subresources`);
    const serverLabels = (server.spec as { template: { metadata: { labels: Record<string, string> } } })
      .template.metadata.labels;
    assert.deepEqual(
      streams!.ports.map((p) => p.port),
      ['streams'],
    );
    assert.equal(streams!.from?.length, 1);
    assert.deepEqual(streams!.from![0]!.namespaceSelector, {
      matchLabels: { 'kubernetes.io/metadata.name': ns },
    });
    const fromServer = streams!.from![0]!.podSelector!.matchLabels;
    assert.ok(
      Object.entries(fromServer).every(([k, v]) => serverLabels[k] === v) && !selects(fromServer),
      "from the server's pods, not the agents'",
    );
    assert.deepEqual(
      metrics!.ports.map((p) => p.port),
      ['metrics', 'probes'],
    );
    assert.equal(metrics!.from, undefined, 'metrics from anyone by default');
    for (const rule of spec.ingress)
      for (const p of rule.ports) assert.ok(ports.includes(p.port), `no port ${p.port}`);
    assert.equal(spec.ingress.length, 3, 'nothing else reaches the agents');

    const prometheus = [
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
    ];
    const narrowed = find(
      await parseObjects(await render({ agent: { networkPolicy: { metricsFrom: prometheus } } })),
      'NetworkPolicy',
      `${release}-agent`,
    );
    assert.deepEqual((narrowed.spec as { ingress: Rule[] }).ingress[2]!.from, prometheus);
    const off = await parseObjects(await render({ agent: { networkPolicy: { enabled: false } } }));
    assert.ok(!off.some((o) => o.kind === 'NetworkPolicy'));
    // Without the aggregated API the agents open no stream port.
    const noApi = find(
      await parseObjects(await render({ subresources: { enabled: false } })),
      'NetworkPolicy',
      `${release}-agent`,
    );
    assert.deepEqual(
      (noApi.spec as { ingress: Rule[] }).ingress.map((r) => r.ports.map((p) => p.port)),
      [['transfer'], ['metrics', 'probes']],
    );
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
      ['subresources.enabled as a string', { subresources: { enabled: 'yes' } }],
      ['no replica of the aggregated API server', { subresources: { replicas: 0 } }],
      ['aggregated API replicas as a string', { subresources: { replicas: '2' } }],
      ['unknown key under subresources', { subresources: { leaderElection: { enabled: true } } }],
      ['aggregated API port as a string', { subresources: { port: '8443' } }],
      ['groupPriorityMinimum of 0', { subresources: { apiService: { groupPriorityMinimum: 0 } } }],
      ['a caBundle in the values', { subresources: { apiService: { caBundle: 'LS0t' } } }],
      ['stream port out of range', { agent: { streamPort: 70000 } }],
      ['stream port as a string', { agent: { streamPort: '9444' } }],
      ['cluster DNS by name', { agent: { clusterDNS: 'kube-dns.kube-system' } }],
      ['cluster domain with a trailing dot', { agent: { clusterDomain: 'cluster.local.' } }],
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
      { subresources: { enabled: false } },
      { subresources: { replicas: 1, podDisruptionBudget: { minAvailable: 0 } } },
      { agent: { streamPort: 10250 } },
      { agent: { clusterDNS: 'fd00:10:96::a', clusterDomain: 'corp.example' } },
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
    assert.match(
      plain,
      new RegExp(
        `APIService v1alpha1\\.subresources\\.gantry\\.dev: Deployment ${release}-subresources in ${notesNs} \\(2 replicas`,
      ),
    );
    assert.match(plain, /kubectl get apiservice v1alpha1\.subresources\.gantry\.dev/);
    assert.match(
      await notes('subresources.enabled=false'),
      /API +not installed \(subresources\.enabled=false\)/,
    );
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
