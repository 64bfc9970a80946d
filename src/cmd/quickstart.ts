// `npm start`: run Gantry and show it working.
//  - Without $KUBECONFIG (or with it pointing at the local cluster): start the local cluster
//    (installing what is missing; the first run builds for many minutes), then Gantry the way its
//    users run it: its image built here and the Helm chart installed on the kubelet nodes. With
//    --no-kubelet (bare containerd hosts, like edge boxes): the controller and an agent per host
//    run as processes of this machine. Either way examples/quickstart is applied.
//  - With $KUBECONFIG pointing at another cluster: install the CRDs there and run the controller
//    here; agents belong on that cluster's nodes (the Helm chart), so none is started.
// Everything started here is stopped by `npm run cluster:down` (or Ctrl-C for the controller
// attached to another cluster).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chartDir, helm } from '../install/helm.js';
import { up } from '../localcluster/cluster.js';
import { agentLog, chartValues, controllerLog, startGantry, stopGantry } from '../localcluster/gantry.js';
import { ensureGantryImage } from '../localcluster/image.js';
import { stopSubresources } from '../localcluster/subresources.js';
import type { LocalCluster } from '../localcluster/state.js';
import { PrerequisiteError } from '../localcluster/prerequisites.js';
import { run } from '../localcluster/proc.js';
import { kubeconfigPath } from '../localcluster/state.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

const { values: flags } = parseArgs({
  allowNegative: true,
  options: { kubelet: { type: 'boolean', default: process.env.GANTRY_KUBELET !== '0' } },
});

/** The chart from this checkout with the image built from it, as `helm upgrade --install`. */
async function installWithHelm(cluster: LocalCluster): Promise<void> {
  console.log("building Gantry's image (npm run image:build; cached once built)");
  const image = await ensureGantryImage();
  // Gantry run as processes before (npm start --no-kubelet, the tests) would compete with the
  // chart's, and the aggregated API server's registration has the names of the chart's APIService
  // and Service: the chart installs that server itself.
  await stopGantry(cluster);
  await stopSubresources(cluster);
  console.log(`installing charts/gantry with ${image.ref}@${image.digest}`);
  const r = await helm(
    [
      '--kubeconfig',
      cluster.kubeconfig,
      'upgrade',
      '--install',
      'gantry',
      chartDir,
      '--namespace',
      'gantry-system',
      ...chartValues(cluster, image),
      // Not in chartValues: the chart of the previous release, which the install suite installs with them, lacks it.
      ...(cluster.dns ? ['--set', `agent.clusterDNS=${cluster.dns.ip}`] : []),
      '--wait',
      '--timeout',
      '5m',
    ],
    { timeoutMs: 600_000 },
  );
  if (r.code !== 0) throw new Error(`helm upgrade --install failed:\n${r.stderr}`);
}

async function onLocalCluster(): Promise<void> {
  const hosts = Number(process.env.GANTRY_HOSTS ?? 2);
  const shape = flags.kubelet ? 'kubelet nodes' : 'bare hosts (no kubelet)';
  console.log(
    `starting the local cluster with ${hosts} ${shape} (the first run builds binaries for many minutes)`,
  );
  const cluster = await up({ hosts, kubelet: flags.kubelet });
  // The cluster's own helm and kubectl.
  process.env.PATH = `${cluster.binDir}:${process.env.PATH}`;
  if (cluster.kubelet) {
    await installWithHelm(cluster);
  } else {
    console.log('starting Gantry: CRDs, the controller and an agent per host, as processes');
    await startGantry(cluster);
  }
  const kubectl = path.join(cluster.binDir, 'kubectl');
  await run(kubectl, [
    '--kubeconfig',
    cluster.kubeconfig,
    'apply',
    '-f',
    path.join(repoRoot, 'examples', 'quickstart'),
  ]);
  console.log(`
Gantry is running on the local cluster (${cluster.hosts.map((h) => h.name).join(', ')}).
checkpoint/restore: ${cluster.checkpoint.works ? 'works' : `does not work here (${cluster.checkpoint.detail})`}

  export KUBECONFIG=${cluster.kubeconfig} PATH=${cluster.binDir}:$PATH
  kubectl get gantry                                   # everything Gantry, at a glance
  kubectl get ctr -o wide                              # containers: host, phase, IP, health
  curl http://$(kubectl get ctr -l app=web -o jsonpath='{.items[0].status.ip}'):8080/
  kubectl scale workload/web --replicas=5 && kubectl get wl -w   # web autoscales: back to 2 soon
  kubectl events --for workload/web                    # ...and why (ManualScaleOverridden)
  npm run logs -- default/counter --tail 5            # a container's output
  kubectl apply -f examples/migration.yaml && kubectl get mig -w   # move the counter to the other host
  kubectl get mig counter-move-1 -o jsonpath='{.status.targetContainer}'   # its new name
  kubectl patch host host-1 --type merge -p '{"spec":{"drain":true}}'   # empty a host

logs: ${
    cluster.kubelet
      ? 'kubectl logs -n gantry-system deploy/gantry-controller; kubectl logs -n gantry-system-agent ds/gantry-agent'
      : `${controllerLog}, ${agentLog('host-1')}`
  }
stop: npm run cluster:down`);
}

/** Another cluster: CRDs there, the controller here in the foreground (agents come with the chart). */
async function onOtherCluster(kubeconfig: string): Promise<void> {
  const kubectl = process.env.KUBECTL ?? 'kubectl';
  console.log(`using the cluster of ${kubeconfig}: installing the CRDs`);
  await run(kubectl, [
    '--kubeconfig',
    kubeconfig,
    'apply',
    '--server-side',
    '--force-conflicts',
    '-f',
    path.join(repoRoot, 'crds'),
  ]);
  await run(kubectl, ['--kubeconfig', kubeconfig, 'create', 'namespace', 'gantry-system']).catch(
    () => undefined,
  );
  console.log(`running the controller here (Ctrl-C stops it). Agents run on the cluster's nodes: install the
Helm chart for them (README: "Install on a cluster"); then kubectl apply -f examples/quickstart`);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(repoRoot, 'src/cmd/controller.ts'), `--kubeconfig=${kubeconfig}`],
    {
      stdio: 'inherit',
    },
  );
  await new Promise<void>((resolve) => child.on('exit', () => resolve()));
}

async function main(): Promise<void> {
  const kubeconfig = process.env.KUBECONFIG;
  if (kubeconfig && path.resolve(kubeconfig) !== kubeconfigPath) await onOtherCluster(kubeconfig);
  else await onLocalCluster();
}

main().catch((e: unknown) => {
  console.error(e instanceof PrerequisiteError ? `error: ${e.message}` : e);
  process.exit(1);
});
