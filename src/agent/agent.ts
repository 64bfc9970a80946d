// The node agent: one per host. It watches the Containers bound to its host (field selector on
// spec.nodeName), the Image objects, its Host and its Node, and turns them into CRI calls; it
// reports back in Container and Host status. No leader election: one agent per host, and every
// step is idempotent, so a restarted agent simply picks up where the runtime is.
import os from 'node:os';
import path from 'node:path';
import type { V1Node } from '@kubernetes/client-node';
import { resourceClient } from '../kube/resources.js';
import {
  type Build,
  type Container,
  type Host,
  type Image,
  type Migration,
  normalizeImageReference,
  parseImageReference,
  quantityNanos,
} from '../api/v1alpha1/index.js';
import { Backoff } from '../kube/backoff.js';
import { realClock, sleep } from '../kube/clock.js';
import type { KubeClient } from '../kube/client.js';
import { EventRecorder } from '../kube/events.js';
import { joinKey, objectKey } from '../kube/keys.js';
import { type Manager, watch } from '../kube/manager.js';
import { parseBindAddress } from '../obs/http.js';
import type { Logger } from '../obs/logger.js';
import { EventsV1Api } from '@kubernetes/client-node';
import { ContainerReconciler } from './containers/reconciler.js';
import { type AgentRuntime, CriClient, CriError } from '../cri/client.js';
import { HealthMonitor } from './health.js';
import { BuildRunner } from './builds.js';
import { Fence } from './fence.js';
import { HostReporter, machineCapacity } from './host.js';
import { ImageGc } from './imagegc.js';
import { ImageWarmer } from './images.js';
import { LogRotator } from './logrotate.js';
import { countContainerPhases, fenced as fencedGauge, observeCriCall } from './metrics.js';
import type { AgentOptions } from './options.js';
import { ImagePuller } from './pull.js';
import { pullAuth } from './pullsecrets.js';
import { secretReader } from '../kube/pullsecrets.js';
import { MigrationSupport } from './containers/migration.js';
import { labels } from './runtimespec.js';
import { serveTransfers, TransferKey } from './transfer.js';
import { StatsCollector } from './stats.js';
import { StreamServer } from './streams.js';

export const agentVersion = '0.1.0';

/** Capacity less what is reserved for the system, in the quantity units Kubernetes uses. */
function allocatable(
  capacity: { cpu: string; memory: string },
  o: AgentOptions,
): { cpu: string; memory: string } {
  const minus = (a: string, b: string, unit: bigint) => {
    const nanos = quantityNanos(a) - quantityNanos(b);
    return nanos <= 0n ? 0n : nanos / unit;
  };
  return {
    cpu: `${minus(capacity.cpu, o.reservedCpu, 1_000_000n)}m`,
    memory: String(minus(capacity.memory, o.reservedMemory, 1_000_000_000n)),
  };
}

/** The first non-internal IPv4 address of this machine: where other agents can reach this one. */
function advertisedAddress(): string {
  const addresses = Object.values(os.networkInterfaces()).flat();
  return addresses.find((a) => a?.family === 'IPv4' && !a.internal)?.address ?? '127.0.0.1';
}

/**
 * Wires the agent's informers, reconcilers and background tasks into `manager`. The runtime is
 * containerd's CRI at --cri-socket unless one is given (the benchmarks' hollow agents give theirs).
 */
export function setUpAgent(
  manager: Manager,
  client: KubeClient,
  o: AgentOptions,
  log: Logger,
  runtime?: AgentRuntime,
): void {
  const host = o.hostName;
  const fieldManager = `gantry-agent/${host}`;
  // A given runtime provides just the calls the agent's modules make (AgentRuntime).
  const cri = runtime ? (runtime as CriClient) : new CriClient(o.criSocket, { observer: observeCriCall });
  const containersApi = resourceClient(client, 'Container');
  const imagesApi = resourceClient(client, 'Image');
  const hostsApi = resourceClient(client, 'Host');
  const migrationsApi = resourceClient(client, 'Migration');

  const containers = manager.informer<Container>({
    path: containersApi.collectionPath(),
    fieldSelector: `spec.nodeName=${host}`,
    // Runtime state can change without an API event (an exit the event stream missed).
    resyncPeriodMs: 30_000,
  });
  countContainerPhases(() => containers.cache.list().map((c) => c.status?.phase));
  const images = manager.informer<Image>({ path: imagesApi.collectionPath(), resyncPeriodMs: 60_000 });
  const hosts = manager.informer<Host>({
    path: hostsApi.collectionPath(),
    fieldSelector: `metadata.name=${host}`,
  });
  const nodes = manager.informer<V1Node>({ path: '/api/v1/nodes', fieldSelector: `metadata.name=${host}` });
  const migrations = manager.informer<Migration>({ path: migrationsApi.collectionPath() });
  const transferKey = TransferKey.loadOrCreate(path.join(o.stateDir, 'transfer-key.pem'));
  const migrationSupport = new MigrationSupport(
    {
      host,
      fieldManager,
      stateDir: o.stateDir,
      secretNamespace: o.transferSecretNamespace ?? o.leaseNamespace,
    },
    { client, migrations: migrations.cache, migrationsApi, hostsApi, transferKey },
  );

  const recorder = new EventRecorder({
    api: client.api(EventsV1Api),
    reportingController: 'gantry.dev/agent',
    reportingInstance: fieldManager,
    log,
  });
  const puller = new ImagePuller(cri, {
    concurrency: o.pullConcurrency,
    initialBackoffMs: o.restartBackoffSeconds * 1000,
    maxBackoffMs: o.restartBackoffMaxSeconds * 1000,
    recordFile: path.join(o.stateDir, 'pulled-with.json'),
  });
  const stats = new StatsCollector(cri, log);
  const readSecret = secretReader(client);

  let enqueueContainer: (key: string) => void = () => {};
  let enqueueImage: (key: string) => void = () => {};
  const health = new HealthMonitor(cri, (key) => enqueueContainer(key));

  const transferBind = parseBindAddress(o.transferBindAddress);
  const transferEndpoint = `http://${o.advertiseAddress ?? advertisedAddress()}:${transferBind.port}`;
  const capacity = {
    cpu: o.capacityCpu ?? machineCapacity().cpu,
    memory: o.capacityMemory ?? machineCapacity().memory,
  };
  const warmer = new ImageWarmer({
    cri,
    puller,
    images: images.cache,
    containers: containers.cache,
    hostLabels: () => hosts.cache.get(host)?.metadata.labels ?? {},
    pullAuth: (image) =>
      pullAuth(
        readSecret,
        image.metadata.namespace ?? 'default',
        (image.spec.pullSecrets ?? []).map((s) => s.name),
        image.spec.image,
      ),
    enqueue: (key) => enqueueImage(key),
    onPullsChanged: () => reporter.poke(),
  });
  const fence = new Fence(o.fenceAfterSeconds * 1000, realClock);
  fence.onChange((up) => {
    fencedGauge.set(up ? 1 : 0);
    if (up)
      log.warn('No heartbeat renewal for too long: fencing off this host', {
        fenceAfterSeconds: o.fenceAfterSeconds,
      });
    else log.info('Heartbeat renewed: fence down');
    for (const key of containers.cache.keys()) enqueueContainer(key);
  });
  const reporter = new HostReporter(
    {
      host,
      fieldManager,
      agentVersion,
      leaseNamespace: o.leaseNamespace,
      leaseDurationSeconds: o.leaseDurationSeconds,
      renewIntervalMs: o.renewIntervalSeconds * 1000,
      reportIntervalMs: o.reportIntervalSeconds * 1000,
      capacity,
      allocatable: allocatable(capacity, o),
      probeImage: o.probeImage,
      stateDir: o.stateDir,
      transferEndpoint,
      transferPublicKey: transferKey.publicKey,
      address: o.nodeIp,
    },
    {
      client,
      cri,
      hosts: hostsApi,
      hostCache: hosts.cache,
      nodeCache: nodes.cache,
      imagePulls: () => warmer.pullStates(),
      cpuUsageCores: () => stats.cpuUsageCores(),
      workloadUsage: () => stats.workloadUsage(),
      onRenewed: (sentAt) => fence.renewed(sentAt),
      log,
    },
  );

  const containerReconciler = new ContainerReconciler(
    {
      fieldManager,
      logRoot: path.join(o.stateDir, 'logs'),
      cgroupParent: o.cgroupParent,
      nodeIP: o.nodeIp,
      clusterDns:
        o.clusterDns && o.clusterDomain ? { server: o.clusterDns, domain: o.clusterDomain } : undefined,
      criuConfig: migrationSupport.criuConfig,
      migrationDrainMs: o.migrationDrainSeconds * 1000,
      backoff: {
        initialMs: o.restartBackoffSeconds * 1000,
        maxMs: o.restartBackoffMaxSeconds * 1000,
        resetAfterMs: 600_000,
      },
    },
    {
      cri,
      cache: containers.cache,
      containers: containersApi,
      puller,
      health,
      recorder,
      pullAuth: (c, image) =>
        pullAuth(
          readSecret,
          c.metadata.namespace ?? 'default',
          (c.spec.imagePullSecrets ?? []).map((s) => s.name),
          image,
        ),
      pinnedImage: (namespace, image) => {
        const wanted = normalizeImageReference(image);
        if (parseImageReference(image).digest) return undefined;
        const match = images.cache
          .listByNamespace(namespace)
          .find((i) => i.status?.resolvedImage && normalizeImageReference(i.spec.image) === wanted);
        return match?.status?.resolvedImage;
      },
      enqueue: (key) => enqueueContainer(key),
      migrations: migrationSupport,
      fence,
    },
  );

  const containerController = manager.controller({
    name: 'agent-container',
    kind: 'Container',
    reconciler: containerReconciler,
    workers: 8,
    // A Migration's progress is work for its source and target Containers.
    watches: [watch(containers), watch(migrations, (m) => migrationSupport.containerKeys(m))],
  });
  enqueueContainer = (key) => containerController.enqueue(key);
  const imageController = manager.controller({
    name: 'agent-image',
    kind: 'Image',
    reconciler: warmer,
    workers: 2,
    // A change of the Host's labels can change which Images this host keeps.
    watches: [watch(images), watch(hosts, () => images.cache.list().map((i) => objectKey(i)))],
  });
  enqueueImage = (key) => imageController.enqueue(key);
  if (o.buildkitSocket) {
    const buildsApi = resourceClient(client, 'Build');
    const builds = manager.informer<Build>({
      path: buildsApi.collectionPath(),
      fieldSelector: `spec.nodeName=${host}`,
    });
    manager.controller({
      name: 'agent-build',
      kind: 'Build',
      reconciler: new BuildRunner(
        {
          fieldManager,
          buildkitAddress: o.buildkitSocket,
          buildctl: o.buildctl,
          workDir: path.join(o.stateDir, 'builds'),
        },
        { cache: builds.cache, api: buildsApi, readSecret },
      ),
      // A build holds its worker for its whole run.
      workers: 2,
      watches: [watch(builds)],
    });
  }
  // A spec change (cordon) shows in the next report; the Host's own status writes must not poke,
  // or each write would bring the next one (measured: about one a second per host, at rest).
  hosts.addEventHandler({
    onUpdate: (old, cur) => {
      if (old.metadata.generation !== cur.metadata.generation) reporter.poke();
    },
  });
  // A cordoned Node makes the Host unschedulable. Not on every Node update: a kubelet or the node
  // controller updates the Node's status often.
  nodes.addEventHandler({
    onAdd: () => reporter.poke(),
    onUpdate: (old, cur) => {
      if (!!old.spec?.unschedulable !== !!cur.spec?.unschedulable) reporter.poke();
    },
  });

  manager.add({ name: 'host-reporter', needLeaderElection: false, start: (signal) => reporter.run(signal) });
  manager.add({ name: 'fence', needLeaderElection: false, start: (signal) => fence.run(signal) });
  manager.add({
    name: 'checkpoint-transfer',
    needLeaderElection: false,
    start: async (signal) => {
      const server = await serveTransfers(migrationSupport, transferKey, transferBind);
      log.info('Serving checkpoints to other agents', { ...server.address, endpoint: transferEndpoint });
      await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
      await server.close();
    },
  });
  if (o.streamBindAddress) {
    const streamBind = parseBindAddress(o.streamBindAddress);
    const streams = new StreamServer(
      {
        host,
        fieldManager: `${fieldManager}/streams`,
        bind: streamBind,
        endpoint: `https://${o.advertiseAddress ?? advertisedAddress()}:${streamBind.port}`,
        tlsSecret: { namespace: o.transferSecretNamespace ?? o.leaseNamespace, name: o.streamTlsSecret },
        logRoot: path.join(o.stateDir, 'logs'),
      },
      { containers: containers.cache, cri, stats, readSecret, hosts: hosts.cache, hostsApi, log },
    );
    manager.add({ name: 'streams', needLeaderElection: false, start: (signal) => streams.run(signal) });
  }
  manager.add({
    name: 'container-stats',
    needLeaderElection: false,
    start: (signal) => stats.run(signal, o.statsIntervalSeconds * 1000),
  });
  periodic(
    manager,
    log,
    { name: 'orphan-sweep', failure: 'Orphan sweep failed', everyMs: 30_000, atStart: true },
    async () => {
      const removed = await containerReconciler.sweepOrphans(log);
      if (removed > 0) log.info('Removed runtime objects of deleted Containers', { count: removed });
      warmer.resyncKept();
      migrationSupport.cleanUp();
    },
  );
  const imageGc = new ImageGc(
    {
      highPercent: o.imageGcHighThresholdPercent,
      lowPercent: o.imageGcLowThresholdPercent,
      minAgeMs: o.imageGcMinAgeSeconds * 1000,
    },
    {
      cri,
      containers: containers.cache,
      images: images.cache,
      wants: (i) => warmer.wants(i),
      clock: realClock,
      log,
    },
  );
  periodic(
    manager,
    log,
    {
      name: 'image-gc',
      failure: 'Image garbage collection failed',
      everyMs: o.imageGcIntervalSeconds * 1000,
    },
    () => imageGc.collect(),
  );
  // Its own task, apart from the container reconciler's workers: a round never holds them.
  const logRotator = new LogRotator(
    { maxSizeBytes: o.containerLogMaxSize, maxFiles: o.containerLogMaxFiles },
    { cri, clock: realClock, log },
  );
  periodic(
    manager,
    log,
    {
      name: 'container-log-rotation',
      failure: 'Container log rotation failed',
      everyMs: o.containerLogMonitorIntervalSeconds * 1000,
    },
    () => logRotator.rotateAll(),
  );
  manager.add({
    name: 'runtime-events',
    needLeaderElection: false,
    start: (signal) =>
      followRuntimeEvents(
        cri,
        (key) => enqueueContainer(key),
        () => containers.cache.keys(),
        log,
        signal,
      ),
  });
  manager.add({
    name: 'cri-close',
    needLeaderElection: false,
    start: async (signal) => {
      await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
      health.stopAll();
      await recorder.flush();
      cri.close();
    },
  });
  manager.readiness.add('cri', async () => {
    await cri.version({}, { timeoutMs: 2000 });
  });
}

/**
 * A background task of the agent: `round` every `everyMs` (first at start with `atStart`, else
 * after one interval); a failed round is logged and the next one runs as planned.
 */
function periodic(
  manager: Manager,
  log: Logger,
  task: { name: string; failure: string; everyMs: number; atStart?: boolean },
  round: () => Promise<unknown>,
): void {
  manager.add({
    name: task.name,
    needLeaderElection: false,
    start: async (signal) => {
      if (!task.atStart) await sleep(realClock, task.everyMs, signal);
      while (!signal.aborted) {
        await round().catch((e: unknown) => log.warn(task.failure, { err: e }));
        await sleep(realClock, task.everyMs, signal);
      }
    },
  });
}

/**
 * Enqueues a Container whenever the runtime reports a change of one of its containers, so exits
 * are noticed at once. After the stream breaks (runtime restart) everything is reconciled again,
 * since events may have been missed. Runtimes without the stream rely on the periodic resync.
 */
async function followRuntimeEvents(
  cri: CriClient,
  enqueue: (key: string) => void,
  allKeys: () => string[],
  log: Logger,
  signal: AbortSignal,
): Promise<void> {
  const backoff = new Backoff({ initialMs: 500, maxMs: 10_000 });
  while (!signal.aborted) {
    try {
      for await (const ev of cri.getContainerEvents({}, { signal })) {
        backoff.reset();
        const l = ev.containersStatuses[0]?.labels ?? ev.podSandboxStatus?.labels ?? {};
        const namespace = l[labels.namespace];
        const name = l[labels.name];
        if (namespace && name) enqueue(joinKey({ namespace, name }));
      }
    } catch (e) {
      if (e instanceof CriError && e.isUnimplemented()) {
        log.info('The runtime has no container event stream; relying on periodic resync');
        return;
      }
      log.warn('Runtime event stream ended; reconnecting', { err: e });
    }
    await sleep(realClock, backoff.next(), signal);
    for (const key of allKeys()) enqueue(key);
  }
}
