// A HOLLOW runtime for control-plane benchmarks (kubemark's hollow nodes): it answers the CRI calls
// the agent makes at once, from memory, without running anything, so bench/scale-controlplane.ts
// can put many agents on one machine and measure the controller and the apiserver, not containerd.
// Unit tests of the agent's logic may use it too; integration and e2e tests never do (a unit test
// in test/unit/shape.test.ts fails if one does): they run on real containerd.
// Sandboxes get made-up IPs, containers run until stopped, pulls succeed instantly, stats are zero,
// checkpointing and the event stream are UNIMPLEMENTED (the agent then falls back to its resync).
import { status as grpcStatus } from '@grpc/grpc-js';
import {
  CriError,
  type Container,
  type ContainerEventResponse,
  type ContainerConfig,
  type ContainerState,
  type CriMethod,
  type Image,
  type PodSandbox,
  type PodSandboxConfig,
  type AgentRuntime,
} from '../../src/cri/client.js';

type Labels = Record<string, string>;

interface SimContainer extends Container {
  startedAt: bigint;
  finishedAt: bigint;
}

const nowNanos = (): bigint => BigInt(Date.now()) * 1_000_000n;
const matches = (labels: Labels, selector: Labels | undefined): boolean =>
  Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);

function notFound(method: CriMethod, what: string): CriError {
  return new CriError(method, grpcStatus.NOT_FOUND, `${what} not found`, `${method}: ${what} not found`);
}

export class SimulatedRuntime implements AgentRuntime {
  private readonly sandboxes = new Map<string, PodSandbox & { ip: string }>();
  private readonly containers = new Map<string, SimContainer>();
  private readonly images = new Map<string, Image>();
  private next = 0;

  private id(): string {
    return (++this.next).toString(16).padStart(64, '0');
  }

  async version() {
    return { version: '0.1.0', runtimeName: 'simulated', runtimeVersion: 'v0.0.0', runtimeApiVersion: 'v1' };
  }

  async status() {
    const ready = (type: string) => ({ type, status: true, reason: '', message: '' });
    return { status: { conditions: [ready('RuntimeReady'), ready('NetworkReady')] }, info: {} };
  }

  async runPodSandbox({ config }: { config: PodSandboxConfig }) {
    const id = this.id();
    const n = this.sandboxes.size;
    const { name = '', uid = '', namespace = '', attempt = 0 } = config.metadata;
    this.sandboxes.set(id, {
      id,
      metadata: { name, uid, namespace, attempt },
      state: 'SANDBOX_READY',
      createdAt: nowNanos(),
      labels: config.labels ?? {},
      annotations: config.annotations ?? {},
      runtimeHandler: '',
      ip: `10.254.${Math.floor(n / 250) % 250}.${(n % 250) + 2}`,
    });
    return { podSandboxId: id };
  }

  async stopPodSandbox({ podSandboxId }: { podSandboxId: string }) {
    const s = this.sandboxes.get(podSandboxId);
    if (!s) throw notFound('StopPodSandbox', `sandbox ${podSandboxId}`);
    s.state = 'SANDBOX_NOTREADY';
    for (const c of this.containers.values()) if (c.podSandboxId === podSandboxId) this.exit(c);
  }

  async removePodSandbox({ podSandboxId }: { podSandboxId: string }) {
    this.sandboxes.delete(podSandboxId);
    for (const [id, c] of this.containers) if (c.podSandboxId === podSandboxId) this.containers.delete(id);
  }

  async podSandboxStatus({ podSandboxId }: { podSandboxId: string }) {
    const s = this.sandboxes.get(podSandboxId);
    if (!s) throw notFound('PodSandboxStatus', `sandbox ${podSandboxId}`);
    return {
      status: { ...s, network: { ip: s.ip, additionalIps: [] } },
      info: {},
      containersStatuses: [],
      timestamp: nowNanos(),
    };
  }

  async listPodSandbox(req: { filter?: { id?: string; labelSelector?: Labels } } = {}) {
    const items = [...this.sandboxes.values()].filter(
      (s) => (!req.filter?.id || s.id === req.filter.id) && matches(s.labels, req.filter?.labelSelector),
    );
    return { items: items.map(({ ip: _, ...s }) => s) };
  }

  async createContainer(req: { podSandboxId: string; config: ContainerConfig }) {
    if (!this.sandboxes.has(req.podSandboxId))
      throw notFound('CreateContainer', `sandbox ${req.podSandboxId}`);
    const id = this.id();
    const image = req.config.image.image ?? '';
    this.containers.set(id, {
      id,
      podSandboxId: req.podSandboxId,
      metadata: { name: req.config.metadata.name ?? '', attempt: req.config.metadata.attempt ?? 0 },
      image: { image, annotations: {} },
      imageRef: this.images.get(image)?.id ?? image,
      state: 'CONTAINER_CREATED',
      createdAt: nowNanos(),
      labels: req.config.labels ?? {},
      annotations: req.config.annotations ?? {},
      imageId: this.images.get(image)?.id ?? image,
      startedAt: 0n,
      finishedAt: 0n,
    });
    return { containerId: id };
  }

  async startContainer({ containerId }: { containerId: string }) {
    const c = this.containers.get(containerId);
    if (!c) throw notFound('StartContainer', `container ${containerId}`);
    c.state = 'CONTAINER_RUNNING';
    c.startedAt = nowNanos();
  }

  async stopContainer({ containerId }: { containerId: string }) {
    const c = this.containers.get(containerId);
    if (!c) throw notFound('StopContainer', `container ${containerId}`);
    this.exit(c);
  }

  async removeContainer({ containerId }: { containerId: string }) {
    this.containers.delete(containerId);
  }

  async listContainers(
    req: {
      filter?: {
        id?: string;
        state?: { state: ContainerState };
        podSandboxId?: string;
        labelSelector?: Labels;
      };
    } = {},
  ) {
    const f = req.filter ?? {};
    const containers = [...this.containers.values()].filter(
      (c) =>
        (!f.id || c.id === f.id) &&
        (!f.state || c.state === f.state.state) &&
        (!f.podSandboxId || c.podSandboxId === f.podSandboxId) &&
        matches(c.labels, f.labelSelector),
    );
    return { containers: containers.map(({ startedAt: _s, finishedAt: _f, ...c }) => c) };
  }

  async containerStatus({ containerId }: { containerId: string }) {
    const c = this.containers.get(containerId);
    if (!c) throw notFound('ContainerStatus', `container ${containerId}`);
    const exited = c.state === 'CONTAINER_EXITED';
    return {
      status: {
        id: c.id,
        metadata: c.metadata,
        state: c.state,
        createdAt: c.createdAt,
        startedAt: c.startedAt,
        finishedAt: c.finishedAt,
        exitCode: 0,
        image: c.image,
        imageRef: c.imageRef,
        reason: exited ? 'Completed' : '',
        message: '',
        labels: c.labels,
        annotations: c.annotations,
        mounts: [],
        logPath: '',
        imageId: c.imageId,
      },
      info: {},
    };
  }

  /** Simulated containers write no log (logPath is empty): nothing to reopen. */
  async reopenContainerLog(): Promise<void> {}

  async execSync() {
    return { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), exitCode: 0 };
  }

  async listContainerStats(req: { filter?: { labelSelector?: Labels } } = {}) {
    const running = [...this.containers.values()].filter(
      (c) => c.state === 'CONTAINER_RUNNING' && matches(c.labels, req.filter?.labelSelector),
    );
    const zero = { value: 0n };
    return {
      stats: running.map((c) => ({
        attributes: { id: c.id, metadata: c.metadata, labels: c.labels, annotations: c.annotations },
        cpu: { timestamp: nowNanos(), usageCoreNanoSeconds: zero, usageNanoCores: zero },
        memory: { timestamp: nowNanos(), workingSetBytes: zero },
      })),
    };
  }

  async checkpointContainer(): Promise<void> {
    throw new CriError('CheckpointContainer', grpcStatus.UNIMPLEMENTED, 'simulated', 'not implemented');
  }

  // eslint-disable-next-line require-yield -- the stream is UNIMPLEMENTED, as on containerd 1.6
  async *getContainerEvents(): AsyncGenerator<ContainerEventResponse> {
    throw new CriError('GetContainerEvents', grpcStatus.UNIMPLEMENTED, 'simulated', 'not implemented');
  }

  async listImages() {
    return { images: [...this.images.values()] };
  }

  /** No image filesystem: image garbage collection has nothing to measure and stays idle. */
  async imageFsInfo() {
    return { imageFilesystems: [], containerFilesystems: [] };
  }

  async imageStatus({ image }: { image: { image: string } }) {
    return { image: this.images.get(image.image), info: {} };
  }

  async pullImage({ image }: { image: { image: string } }) {
    const digest = `sha256:${this.id()}`;
    this.images.set(image.image, {
      id: digest,
      repoTags: [image.image],
      repoDigests: [],
      size: 0n,
      username: '',
      pinned: false,
    });
    return { imageRef: digest };
  }

  async removeImage({ image }: { image: { image: string } }) {
    this.images.delete(image.image);
  }

  close(): void {}

  private exit(c: SimContainer): void {
    if (c.state !== 'CONTAINER_RUNNING' && c.state !== 'CONTAINER_CREATED') return;
    c.state = 'CONTAINER_EXITED';
    c.finishedAt = nowNanos();
  }
}
