// npm run bench:scale, part 2 — real scale-out: a Workload of the ~100 MB test image
// (gantry/big:1, one layer of incompressible data) from 0 to 20 replicas on the local cluster's
// real hosts, cold (the image on no host) and warm (pulled beforehand through an Image object):
// time from `kubectl scale` until all 20 are Running.
// Needs the local cluster (npm run cluster:up) with no Gantry running; starts and stops its own.
import os from 'node:os';
import path from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { type Container, type Host, type ImageInput, type WorkloadInput } from '../src/api/v1alpha1/index.js';
import { CriClient } from '../src/cri/client.js';
import { KubeClient, loadKubeConfig } from '../src/kube/client.js';
import { resourceClient } from '../src/kube/resources.js';
import { Informer, restListWatcher } from '../src/kube/informer.js';
import { agentLog, startGantry, stopGantry } from '../src/localcluster/gantry.js';
import { livePid, run, waitFor } from '../src/localcluster/proc.js';
import { imageRef, pushTestImages } from '../src/localcluster/registry.js';
import { localDir, readLocalCluster } from '../src/localcluster/state.js';
import { versions } from '../src/localcluster/versions.js';
import { createLogger } from '../src/obs/logger.js';
import { apiserverWrites, printWritesPer } from './support/apiserver-writes.js';
import { deleteNamespace } from './support/namespaces.js';

const replicas = Number(process.env.BENCH_REPLICAS ?? 20);
const cluster = readLocalCluster();
if (!cluster) throw new Error('the local cluster is not up: npm run cluster:up');
const client = new KubeClient(loadKubeConfig(cluster.kubeconfig));
const core = client.api(CoreV1Api);
const image = imageRef('big');
const ns = `bench-real-${process.pid}`;
const resource = <K extends 'Container' | 'Workload' | 'Image' | 'Host'>(kind: K) =>
  resourceClient(client, kind);
const kubectl = (...args: string[]) =>
  run(path.join(cluster.binDir, 'kubectl'), ['--kubeconfig', cluster.kubeconfig, ...args]);

const workload: WorkloadInput = {
  apiVersion: 'gantry.dev/v1alpha1',
  kind: 'Workload',
  metadata: { name: 'big', namespace: ns },
  spec: {
    replicas: 0,
    selector: { matchLabels: { app: 'big' } },
    template: { metadata: { labels: { app: 'big' } }, spec: { image, terminationGracePeriodSeconds: 5 } },
  },
};
const imageObject: ImageInput = {
  apiVersion: 'gantry.dev/v1alpha1',
  kind: 'Image',
  metadata: { name: 'big', namespace: ns },
  // keep: pulled again should anything remove it before the scale-out.
  spec: { image, keep: true },
};

/** Removes the image from every host, so the next start must pull it. */
async function removeImageEverywhere(): Promise<void> {
  const repo = image.slice(0, image.lastIndexOf(':'));
  for (const h of cluster!.hosts) {
    const cri = new CriClient(h.criSocket);
    const { images } = await cri.listImages();
    const held = images.filter(
      (i) => i.repoTags.includes(image) || i.repoDigests.some((d) => d.startsWith(`${repo}@`)),
    );
    for (const i of held) await cri.removeImage({ image: { image: i.id } });
    cri.close();
  }
}

async function anyHostReportsImage(): Promise<boolean> {
  const repo = image.slice(0, image.lastIndexOf(':'));
  const hosts = (await resource('Host').list()) as Host[];
  return hosts.some((h) =>
    (h.status?.images ?? []).some((i) => (i.names ?? []).some((n) => n.startsWith(repo))),
  );
}

/**
 * Scales the Workload from 0 to `replicas`; the time until each Container was first seen Running,
 * sorted (the last one is the time until all were).
 */
async function scaleOut(containers: Informer<Container>): Promise<number[]> {
  const started = performance.now();
  const runningAt = new Map<string, number>();
  const see = (c: Container) => {
    if (c.status?.phase === 'Running' && !runningAt.has(c.metadata.name!))
      runningAt.set(c.metadata.name!, performance.now() - started);
  };
  containers.addEventHandler({ onAdd: see, onUpdate: (_, c) => see(c) });
  await kubectl('scale', '-n', ns, 'workload.gantry.dev/big', `--replicas=${replicas}`);
  await waitFor(`${replicas} Containers to be Running`, () => runningAt.size === replicas, {
    timeoutMs: 600_000,
    intervalMs: 50,
    logFile: agentLog(cluster!.hosts[0]!.name),
  });
  return [...runningAt.values()].sort((a, b) => a - b);
}

async function scaleToZero(containers: Informer<Container>): Promise<void> {
  await kubectl('scale', '-n', ns, 'workload.gantry.dev/big', '--replicas=0');
  await waitFor('the Containers to go', () => containers.cache.size === 0, {
    timeoutMs: 300_000,
    intervalMs: 200,
  });
}

async function main(): Promise<void> {
  const gantryPids = ['controller', ...cluster!.hosts.map((h) => `agent-${h.name}`)]
    .map((n) => path.join(localDir, 'pids', `${n}.pid`))
    .filter((f) => livePid(f) !== undefined);
  if (gantryPids.length > 0) throw new Error(`Gantry is running (${gantryPids.join(', ')}): stop it first`);
  // Clusters started before the big image existed get it now (built once, cached).
  await pushTestImages(path.join(localDir, 'logs', 'images.log'));
  await removeImageEverywhere();
  await startGantry(cluster!);
  await core.createNamespace({ body: { metadata: { name: ns } } });
  const log = createLogger({ level: 'error' });
  const containers = new Informer<Container>({
    name: 'bench-real',
    listWatcher: restListWatcher(client, { path: resource('Container').collectionPath(ns) }),
    log,
  });
  containers.start();
  try {
    await containers.waitForSync();
    await resource('Workload').create(workload);
    const coldMs = await scaleOut(containers);
    await scaleToZero(containers);

    await removeImageEverywhere();
    // The Image's count comes from the Hosts' reports: wait until they say the image is gone.
    await waitFor('the Hosts to report the image gone', async () => !(await anyHostReportsImage()), {
      timeoutMs: 120_000,
      intervalMs: 500,
    });
    const images = resource('Image');
    const warmStarted = performance.now();
    await images.create(imageObject);
    await waitFor(
      'the Image to be on every host',
      async () => {
        const i = await images.get({ namespace: ns, name: 'big' });
        return i?.status?.readyHosts === cluster!.hosts.length;
      },
      { timeoutMs: 600_000, intervalMs: 250 },
    );
    const warmingMs = performance.now() - warmStarted;
    const beforeWarm = await apiserverWrites(client);
    const warmMs = await scaleOut(containers);
    const afterWarm = await apiserverWrites(client);

    const fmt = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    console.log(
      `bench:scale (real) — Workload of ${image} (~100 MB layer) from 0 to ${replicas} on ${cluster!.hosts.length} hosts`,
    );
    console.log(
      `conditions: ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, containerd ${versions.containerd}, ` +
        `registry on 127.0.0.1 (loopback), Kubernetes ${versions.kubernetes}; controller and agents with default flags`,
    );
    const times = (ms: number[]) =>
      `first Running after ${fmt(ms[0]!)}, half after ${fmt(ms[Math.ceil(ms.length / 2) - 1]!)}, all after ${fmt(ms.at(-1)!)}`;
    console.log(`cold (no host has the image):      ${times(coldMs)}`);
    console.log(
      `warming through an Image object:   on all hosts after ${fmt(warmingMs)} (ahead of the scale-out)`,
    );
    console.log(`warm (the Image pre-pulled it):    ${times(warmMs)}`);
    printWritesPer(
      'writes (warm scale-out, Workload replicas; includes leases and Host reports)',
      replicas,
      beforeWarm,
      afterWarm,
    );
  } finally {
    await containers.stop();
    await deleteNamespace(core, ns);
    await stopGantry(cluster!);
  }
}

await main();
