// Gantry's aggregated API server (subresources.gantry.dev: Containers' logs) on the local cluster,
// run as a process of this machine like the controller and agents (gantry.ts). It listens on
// loopback only; the apiserver reaches it through a Service whose endpoint is an in-cluster
// address that network.ts DNATs to that loopback port (an endpoint may not be loopback).
import fs from 'node:fs';
import path from 'node:path';
import {
  type Report,
  ensureRunning,
  logs,
  pids,
  refuseBesideInstalledGantry,
  stopGantryProcess,
  tsEntry,
} from './gantry.js';
import { inClusterSubresources, subresourcesRouted } from './network.js';
import { run } from './proc.js';
import { type LocalCluster, localDir, systemNamespace } from './state.js';

export const subresourcesPorts = { https: inClusterSubresources.port, metrics: 8090, probes: 8091 };
export const subresourcesLog = path.join(logs, 'subresources.log');

/** The APIService of Gantry's aggregated API, and the Service the apiserver reaches it through. */
export const subresourcesRegistration = {
  apiService: 'v1alpha1.subresources.gantry.dev',
  service: 'gantry-subresources',
};

/** Who made the objects of the process's registration (the chart's say Helm). */
const localManager = 'gantry-local-cluster';

/**
 * The APIService, and a Service without selector whose EndpointSlice names the server's in-cluster
 * address (network.ts answers there for its loopback port).
 */
function registration(): object {
  const { apiService, service } = subresourcesRegistration;
  const labels = { 'app.kubernetes.io/part-of': 'gantry', 'app.kubernetes.io/managed-by': localManager };
  const meta = (name: string) => ({ name, namespace: systemNamespace, labels });
  return {
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: meta(service),
        spec: { ports: [{ name: 'https', port: 443, targetPort: subresourcesPorts.https }] },
      },
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          ...meta(`${service}-local`),
          labels: {
            ...labels,
            'kubernetes.io/service-name': service,
            'endpointslice.kubernetes.io/managed-by': localManager,
          },
        },
        addressType: 'IPv4',
        endpoints: [{ addresses: [inClusterSubresources.ip], conditions: { ready: true } }],
        ports: [{ name: 'https', port: subresourcesPorts.https, protocol: 'TCP' }],
      },
      {
        apiVersion: 'apiregistration.k8s.io/v1',
        kind: 'APIService',
        metadata: { name: apiService, labels },
        // caBundle: the server puts its CA there (src/subresources/pki.ts).
        spec: {
          group: 'subresources.gantry.dev',
          version: 'v1alpha1',
          service: { namespace: systemNamespace, name: service, port: 443 },
          groupPriorityMinimum: 1000,
          versionPriority: 15,
        },
      },
    ],
  };
}

const registrationFile = path.join(localDir, 'subresources-registration.json');

/** Does the running apiserver pass users on to aggregated APIs (a front proxy, controlplane.ts)? */
export async function apiserverHasFrontProxy(cluster: LocalCluster): Promise<boolean> {
  const out = await run(path.join(cluster.binDir, 'kubectl'), [
    '--kubeconfig',
    cluster.kubeconfig,
    '-n',
    'kube-system',
    'get',
    'configmap',
    'extension-apiserver-authentication',
    '-o',
    'jsonpath={.data.requestheader-client-ca-file}',
  ]);
  return out.trim() !== '';
}

/**
 * Gantry's aggregated API server (Containers' logs), registered with the apiserver, and waits
 * until the apiserver reports the APIService Available. Not part of startGantry: an APIService
 * left registered without its server keeps every namespace of the shared cluster from finishing
 * deletion, so whoever starts it stops it (stopSubresources). Refuses while Gantry runs installed
 * in the cluster, and where it could never be Available: on an apiserver without a front proxy (one
 * started before controlplane.ts gave it one), or without network.ts's route to its loopback port.
 */
export async function startSubresources(
  cluster: LocalCluster,
  extraArgs: string[] = [],
  report: Report = (l) => console.error(l),
): Promise<void> {
  await refuseBesideInstalledGantry(cluster);
  const kubectl = [path.join(cluster.binDir, 'kubectl'), '--kubeconfig', cluster.kubeconfig] as const;
  if (!(await apiserverHasFrontProxy(cluster))) {
    throw new Error(
      "kube-apiserver runs without a front proxy (started before controlplane.ts gave it one): Gantry's " +
        'aggregated API could never be reached; restart it (stopApiserver, then startApiserver)',
    );
  }
  if (!(await subresourcesRouted())) {
    throw new Error(
      `no iptables rule routes ${inClusterSubresources.ip}:${inClusterSubresources.port} to loopback (the cluster ` +
        "was brought up before network.ts had it): Gantry's aggregated API could never be reached; run cluster:up again",
    );
  }
  fs.writeFileSync(registrationFile, JSON.stringify(registration(), null, 2));
  await run(kubectl[0], [
    ...kubectl.slice(1),
    'apply',
    '--server-side',
    '--force-conflicts',
    '--field-manager=gantry-local',
    '-f',
    registrationFile,
  ]);
  const argv = [
    process.execPath,
    ...tsEntry('subresources'),
    `--kubeconfig=${cluster.kubeconfig}`,
    `--bind-address=127.0.0.1:${subresourcesPorts.https}`,
    `--metrics-bind-address=127.0.0.1:${subresourcesPorts.metrics}`,
    `--health-probe-bind-address=127.0.0.1:${subresourcesPorts.probes}`,
    `--namespace=${systemNamespace}`,
    `--service-name=${subresourcesRegistration.service}`,
    // Host-process agents read their Secrets where they keep their Leases.
    `--agent-namespace=${systemNamespace}`,
    ...extraArgs,
  ];
  await ensureRunning(
    "Gantry's aggregated API server",
    'subresources',
    { pidFile: path.join(pids, 'subresources.pid'), logFile: subresourcesLog },
    argv,
    subresourcesPorts.probes,
    report,
  );
  await run(kubectl[0], [
    ...kubectl.slice(1),
    'wait',
    '--for=condition=Available',
    '--timeout=60s',
    `apiservice/${subresourcesRegistration.apiService}`,
  ]);
}

/**
 * Deletes the process's registration by name: the APIService, Service and EndpointSlice it applies,
 * but none that Helm made (the chart installs an APIService of the same name and a Service of the
 * same name for release `gantry`, as `npm start` and the install suite do). Objects without a
 * managed-by label are from a checkout before the registration carried one: the process's too.
 */
async function deleteRegistration(cluster: LocalCluster): Promise<void> {
  const kubectl = [path.join(cluster.binDir, 'kubectl'), '--kubeconfig', cluster.kubeconfig] as const;
  const { apiService, service } = subresourcesRegistration;
  const objects: [kind: string, name: string, namespace?: string][] = [
    ['apiservice', apiService],
    ['service', service, systemNamespace],
    ['endpointslice', `${service}-local`, systemNamespace],
  ];
  for (const [kind, name, namespace] of objects) {
    const where = namespace ? ['--namespace', namespace] : [];
    const found = await run(kubectl[0], [
      ...kubectl.slice(1),
      'get',
      kind,
      name,
      ...where,
      '--ignore-not-found',
      '--output=json',
    ]);
    if (found.trim() === '') continue;
    const manager = (JSON.parse(found) as { metadata: { labels?: Record<string, string> } }).metadata
      .labels?.['app.kubernetes.io/managed-by'];
    if (manager !== undefined && manager !== localManager) continue;
    await run(kubectl[0], [
      ...kubectl.slice(1),
      'delete',
      kind,
      name,
      ...where,
      '--ignore-not-found',
      '--wait=false',
    ]);
  }
}

/**
 * Stops the server and unregisters it first, so no APIService is left without a server. The
 * registration goes even when this checkout did not apply it (a server started from another
 * checkout, or its file lost), so that the chart can be installed afterwards: its APIService has
 * the same name.
 */
export async function stopSubresources(cluster: LocalCluster): Promise<void> {
  await deleteRegistration(cluster);
  fs.rmSync(registrationFile, { force: true });
  await stopGantryProcess(path.join(pids, 'subresources.pid'), 'subresources', 'SIGTERM');
}
