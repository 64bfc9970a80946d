// The Host object of this agent: registered at start (labelled kubernetes.io/hostname only: the
// controller copies the Node's labels, controller/hostlabels.ts), a heartbeat Lease renewed every
// few seconds (cheap, like kubelet's node lease), and a status report: runtime, checkpoint
// support, its address, capacity, images, pulls, containers, cordon, the transfer endpoint and key.
// The status is written when it changes and at least every reportIntervalMs (lastHeartbeatTime;
// 5 minutes by default, as the kubelet's node status: liveness is the Lease's job, not this write's).
import os from 'node:os';
import path from 'node:path';
import { CoordinationV1Api, type V1Lease, type V1Node } from '@kubernetes/client-node';
import { hostLeaseName, type Host } from '../api/v1alpha1/index.js';
import { getCondition, metaTime, setCondition, type Condition } from '../kube/conditions.js';
import { isApplyNoop } from '../kube/apply.js';
import type { CustomResourceClient } from '../kube/customresource.js';
import type { KubeClient } from '../kube/client.js';
import { isConflict, isNotFound } from '../kube/errors.js';
import { MicroTime } from '../kube/microtime.js';
import { realClock, sleep } from '../kube/clock.js';
import type { Cache } from '../kube/store.js';
import type { Logger } from '../obs/logger.js';
import { type CheckpointProbeResult, probeCheckpoint } from './checkpoint/probe.js';
import type { CriClient } from '../cri/client.js';
import type { ImagePullState } from './images.js';
import { labels as runtimeLabels, managedByValue } from './runtimespec.js';

export type HostStatus = NonNullable<Host['status']>;

export interface HostReporterOptions {
  host: string;
  fieldManager: string;
  agentVersion: string;
  leaseNamespace: string;
  leaseDurationSeconds: number;
  renewIntervalMs: number;
  reportIntervalMs: number;
  /** Capacity given to Gantry on this machine; defaults to the whole machine. */
  capacity: { cpu: string; memory: string };
  allocatable: { cpu: string; memory: string };
  /** Image for the checkpoint probe's test container. */
  probeImage: string;
  stateDir: string;
  /** Where other agents fetch checkpoints from this one. */
  transferEndpoint: string;
  /** The public half of this agent's transfer key: checkpoints sent here are encrypted for it. */
  transferPublicKey: string;
  /** Where Containers' hostPorts are published (--node-ip); unset: every address. */
  address?: string;
}

export interface HostReporterDeps {
  client: KubeClient;
  cri: CriClient;
  hosts: CustomResourceClient<Host>;
  hostCache: Cache<Host>;
  nodeCache: Cache<V1Node>;
  imagePulls: () => ImagePullState[];
  cpuUsageCores: () => number | undefined;
  workloadUsage: () => HostStatus['workloadUsage'];
  /** Each heartbeat renewal that succeeded, with the time it was sent (the fence counts from it). */
  onRenewed: (sentAt: number) => void;
  log: Logger;
}

export function machineCapacity(): { cpu: string; memory: string } {
  return { cpu: String(os.availableParallelism()), memory: String(os.totalmem()) };
}

export class HostReporter {
  private checkpoint: CheckpointProbeResult | undefined;
  private lastWrite = 0;
  /**
   * The Host exists but its registration failed: an older agent copied the Node's labels itself,
   * and the admission policy refuses to let them go until the controller co-owns them. Retried
   * with each report, never holding up the heartbeat or the status.
   */
  private registerDue = false;
  private wake: (() => void) | undefined;
  /** A poke that came while a report ran: the report may have read the state before the change. */
  private pokedWhileReporting = false;

  constructor(
    private readonly opts: HostReporterOptions,
    private readonly deps: HostReporterDeps,
  ) {}

  /** Asks for a status report soon (something it shows may have changed); written if it did. */
  poke(): void {
    if (this.wake) this.wake();
    else this.pokedWhileReporting = true;
  }

  /**
   * Creates the Host if it does not exist, with the one label an agent may give it. Labels decide
   * where Workloads go, so the agent copies none: the controller copies the Node's, whose labels
   * the kubelet's NodeRestriction already limits.
   */
  private async register(): Promise<void> {
    const metadata = { name: this.opts.host, labels: { 'kubernetes.io/hostname': this.opts.host } };
    // A write that changes nothing still costs the apiserver a request and every watcher an event.
    if (isApplyNoop({ metadata }, this.deps.hostCache.get(this.opts.host), this.opts.fieldManager)) return;
    await this.deps.hosts.apply(
      { apiVersion: 'gantry.dev/v1alpha1', kind: 'Host', metadata },
      { fieldManager: this.opts.fieldManager },
    );
  }

  /** Probes checkpoint/restore in the background (a few seconds) and reports the answer. */
  probe(): void {
    void probeCheckpoint(this.deps.cri, {
      image: this.opts.probeImage,
      workDir: path.join(this.opts.stateDir, 'checkpoint-probe'),
    })
      .catch((e: unknown): CheckpointProbeResult => ({
        works: false,
        detail: `the probe failed: ${String(e)}`,
      }))
      .then((result) => {
        this.checkpoint = result;
        this.deps.log.info('Checkpoint probe finished', { works: result.works, detail: result.detail });
        this.poke();
      });
  }

  /** Heartbeat and status loops, until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    for (;;) {
      try {
        await this.register();
        break;
      } catch (e) {
        if (this.deps.hostCache.get(this.opts.host)) {
          this.registerDue = true;
          this.deps.log.info('Host registration is retried with the next report', { err: e });
          break;
        }
        this.deps.log.warn('Host registration failed', { err: e });
        await this.sleep(2000, signal);
        if (signal.aborted) return;
      }
    }
    this.probe();
    const heartbeat = this.heartbeatLoop(signal);
    while (!signal.aborted) {
      try {
        await this.report();
      } catch (e) {
        this.deps.log.warn('Host status report failed', { err: e });
      }
      await this.sleep(Math.min(this.opts.reportIntervalMs, 10_000), signal);
    }
    await heartbeat;
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.wake = undefined;
        resolve();
      };
      let timer = setTimeout(done, this.pokedWhileReporting ? 500 : ms);
      this.pokedWhileReporting = false;
      signal.addEventListener('abort', done, { once: true });
      // One timer at a time: a second poke must not leave a timer that ends a later sleep.
      let woken = false;
      this.wake = () => {
        if (woken) return;
        woken = true;
        clearTimeout(timer);
        timer = setTimeout(done, 500); // gather a burst of changes into one write
      };
    });
  }

  private async heartbeatLoop(signal: AbortSignal): Promise<void> {
    const api = this.deps.client.api(CoordinationV1Api);
    const name = hostLeaseName(this.opts.host);
    const namespace = this.opts.leaseNamespace;
    while (!signal.aborted) {
      try {
        const sentAt = realClock.now();
        if (await this.renewLease(api, name, namespace)) this.deps.onRenewed(sentAt);
      } catch (e) {
        this.deps.log.warn('Heartbeat lease renewal failed', { err: e });
      }
      await sleep(realClock, this.opts.renewIntervalMs, signal);
    }
  }

  /** False when someone else wrote the Lease meanwhile: the next round renews. */
  private async renewLease(api: CoordinationV1Api, name: string, namespace: string): Promise<boolean> {
    const spec = {
      holderIdentity: this.opts.host,
      leaseDurationSeconds: this.opts.leaseDurationSeconds,
      renewTime: new MicroTime() as unknown as Date,
    };
    let lease: V1Lease;
    try {
      lease = await api.readNamespacedLease({ name, namespace });
    } catch (e) {
      if (!isNotFound(e)) throw e;
      await api.createNamespacedLease({ namespace, body: { metadata: { name, namespace }, spec } });
      return true;
    }
    try {
      await api.replaceNamespacedLease({
        name,
        namespace,
        body: { ...lease, spec: { ...lease.spec, ...spec } },
      });
      return true;
    } catch (e) {
      if (!isConflict(e)) throw e;
      return false;
    }
  }

  private async observe(): Promise<HostStatus> {
    const [version, runtimeStatus, { images }, { containers }] = await Promise.all([
      this.deps.cri.version(),
      this.deps.cri.status(),
      this.deps.cri.listImages(),
      this.deps.cri.listContainers({
        filter: {
          state: { state: 'CONTAINER_RUNNING' },
          labelSelector: { [runtimeLabels.managedBy]: managedByValue },
        },
      }),
    ]);
    // The two conditions CRI requires; runtimes add informational ones (deprecation warnings).
    const notReady = (runtimeStatus.status?.conditions ?? []).filter(
      (c) => (c.type === 'RuntimeReady' || c.type === 'NetworkReady') && !c.status,
    );
    const host = this.deps.hostCache.get(this.opts.host);
    const node = this.deps.nodeCache.get(this.opts.host);
    let conds = host?.status?.conditions ?? [];
    const keep = (type: string) => getCondition(conds, type);
    conds = [keep('Ready'), keep('Schedulable')].filter((c): c is Condition => !!c);
    conds = setCondition(conds, {
      type: 'Ready',
      status: notReady.length === 0 ? 'True' : 'False',
      reason: notReady.length === 0 ? 'RuntimeReady' : notReady[0]!.reason || 'RuntimeNotReady',
      message: notReady.map((c) => `${c.type}: ${c.message}`).join('; '),
    });
    const cordoned = host?.spec.unschedulable
      ? 'HostCordoned'
      : node?.spec?.unschedulable
        ? 'NodeCordoned'
        : '';
    conds = setCondition(conds, {
      type: 'Schedulable',
      status: cordoned ? 'False' : 'True',
      reason: cordoned || 'Schedulable',
      message: cordoned === 'NodeCordoned' ? `Node ${this.opts.host} is cordoned` : '',
    });
    const cpu = this.deps.cpuUsageCores();
    const workloadUsage = this.deps.workloadUsage();
    return {
      runtimeVersion: `${version.runtimeName}://${version.runtimeVersion.replace(/^v/, '')}`,
      runtime: {
        name: version.runtimeName,
        version: version.runtimeVersion,
        apiVersion: version.runtimeApiVersion,
      },
      ...(this.opts.address ? { address: this.opts.address } : {}),
      ...(this.checkpoint
        ? { checkpoint: { supported: this.checkpoint.works, message: this.checkpoint.detail } }
        : {}),
      capacity: this.opts.capacity,
      allocatable: this.opts.allocatable,
      images: images
        .map((i) => ({
          names: [...i.repoTags, ...i.repoDigests].slice(0, 16),
          digest: digestOfImage(i.repoDigests) ?? i.id,
          sizeBytes: Number(i.size),
        }))
        .sort((a, b) => b.sizeBytes - a.sizeBytes)
        .slice(0, 256),
      imagePulls: this.deps.imagePulls(),
      containers: containers.length,
      ...(cpu !== undefined ? { cpuUsageCores: Math.round(cpu * 100) / 100 } : {}),
      ...(workloadUsage ? { workloadUsage } : {}),
      transferEndpoint: this.opts.transferEndpoint,
      transferPublicKey: this.opts.transferPublicKey,
      agentVersion: this.opts.agentVersion,
      conditions: conds,
    };
  }

  private async report(): Promise<void> {
    if (this.registerDue) {
      this.registerDue = false;
      await this.register().catch((e: unknown) => {
        this.registerDue = true;
        this.deps.log.info('Host registration is retried with the next report', { err: e });
      });
    }
    const status = await this.observe();
    const live = this.deps.hostCache.get(this.opts.host);
    const due = Date.now() - this.lastWrite >= this.opts.reportIntervalMs;
    const unchanged = isApplyNoop(
      { status: { ...status, lastHeartbeatTime: live?.status?.lastHeartbeatTime } },
      live,
      this.opts.fieldManager,
      'status',
    );
    if (unchanged && !due) return;
    await this.deps.hosts.applyStatus(
      { name: this.opts.host },
      { ...status, lastHeartbeatTime: metaTime(new Date()) },
      { fieldManager: this.opts.fieldManager },
    );
    this.lastWrite = Date.now();
  }
}

/** The manifest digest in a runtime's repo digests (repo@sha256:...). */
function digestOfImage(repoDigests: string[]): string | undefined {
  const d = repoDigests[0];
  return d ? d.slice(d.lastIndexOf('@') + 1) : undefined;
}
