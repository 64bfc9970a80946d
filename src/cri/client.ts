// A typed client for the Kubernetes Container Runtime Interface (runtime.v1) over a unix socket.
//
// Conventions:
// - Field names are camelCase (proto-loader keepCase: false); enums are their upstream names.
// - Every 64-bit integer is a bigint in responses (CRI timestamps are unix nanoseconds, beyond 2^53);
//   requests take a bigint or a number. nanosToDate / nanosToSeconds convert.
// - Responses carry every scalar, list and map (proto3 defaults); an absent sub-message is undefined.
// - Every unary call has a deadline; failures are CriErrors with the gRPC status code.
// - One channel serves both services. grpc-js reconnects it by itself when the runtime restarts;
//   calls made while the runtime is down fail at once with UNAVAILABLE unless they ask waitForReady,
//   which also waits out a runtime that listens but is still starting (containerd answers
//   UNAVAILABLE "server is not initialized yet" for a moment after a restart).
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { LOADER_OPTIONS, SCHEMA_FILE } from './schema.js';

// ---------------------------------------------------------------------------------------------
// Messages

type Labels = Record<string, string>;
/** A 64-bit integer in a request: a bigint, or a number when it is known to fit. */
export type Int64Input = bigint | number;
/** T with the keys K made optional (request-side view of a message the runtime also returns). */
type Loose<T, K extends keyof T> = Omit<T, K> & Partial<Pick<T, K>>;

export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';
export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type MountPropagation =
  'PROPAGATION_PRIVATE' | 'PROPAGATION_HOST_TO_CONTAINER' | 'PROPAGATION_BIDIRECTIONAL';
export type PodSandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
export type ContainerState =
  'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';
export type ContainerEventType =
  | 'CONTAINER_CREATED_EVENT'
  | 'CONTAINER_STARTED_EVENT'
  | 'CONTAINER_STOPPED_EVENT'
  | 'CONTAINER_DELETED_EVENT';

export interface ImageSpec {
  image: string;
  annotations: Labels;
}
export type ImageSpecInput = Loose<ImageSpec, 'annotations'>;

export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt: number;
}

export interface ContainerMetadata {
  name: string;
  attempt: number;
}

export interface Mount {
  containerPath: string;
  hostPath: string;
  readonly: boolean;
  propagation: MountPropagation;
}
export type MountInput = Loose<Mount, 'readonly' | 'propagation'>;

/** cpuPeriod/cpuQuota in microseconds, cpuShares relative, memoryLimitInBytes in bytes. */
export interface LinuxContainerResources {
  cpuPeriod: bigint;
  cpuQuota: bigint;
  cpuShares: bigint;
  memoryLimitInBytes: bigint;
  oomScoreAdj: bigint;
}
export type LinuxContainerResourcesInput = { [K in keyof LinuxContainerResources]?: Int64Input };

export interface KeyValue {
  key: string;
  value: string;
}

export interface NamespaceOption {
  network?: NamespaceMode;
  /** Gantry sends CONTAINER, as kubelet does: left unset, containers share the sandbox's PID namespace. */
  pid?: NamespaceMode;
  ipc?: NamespaceMode;
  targetId?: string;
}

export interface PortMapping {
  protocol?: Protocol;
  containerPort: number;
  hostPort?: number;
  hostIp?: string;
}

export interface PodSandboxConfig {
  metadata: Loose<PodSandboxMetadata, 'attempt'>;
  hostname?: string;
  /** Directory for the containers' logs; each container's logPath is relative to it. */
  logDirectory?: string;
  portMappings?: PortMapping[];
  labels?: Labels;
  annotations?: Labels;
  linux?: {
    cgroupParent?: string;
    securityContext?: { namespaceOptions?: NamespaceOption };
  };
}

export interface ContainerConfig {
  metadata: Loose<ContainerMetadata, 'attempt'>;
  image: ImageSpecInput;
  command?: string[];
  args?: string[];
  workingDir?: string;
  envs?: KeyValue[];
  mounts?: MountInput[];
  labels?: Labels;
  annotations?: Labels;
  logPath?: string;
  linux?: {
    resources?: LinuxContainerResourcesInput;
    securityContext?: { privileged?: boolean; namespaceOptions?: NamespaceOption };
  };
}

export interface AuthConfig {
  username?: string;
  password?: string;
  auth?: string;
  /** A URL (e.g. http://127.0.0.1:5000), not a bare host:port. */
  serverAddress?: string;
  identityToken?: string;
  registryToken?: string;
}

// Requests

export interface VersionRequest {
  version?: string;
}
export interface StatusRequest {
  verbose?: boolean;
}
export interface RunPodSandboxRequest {
  config: PodSandboxConfig;
  runtimeHandler?: string;
}
export interface StopPodSandboxRequest {
  podSandboxId: string;
}
export interface RemovePodSandboxRequest {
  podSandboxId: string;
}
export interface PodSandboxStatusRequest {
  podSandboxId: string;
  verbose?: boolean;
}
export interface ListPodSandboxRequest {
  filter?: { id?: string; state?: { state: PodSandboxState }; labelSelector?: Labels };
}
export interface CreateContainerRequest {
  podSandboxId: string;
  config: ContainerConfig;
  /** The sandbox's config as it was run: the runtime takes the log directory from it. */
  sandboxConfig: PodSandboxConfig;
}
export interface StartContainerRequest {
  containerId: string;
}
export interface StopContainerRequest {
  containerId: string;
  /** Seconds between SIGTERM and SIGKILL. */
  timeout?: Int64Input;
}
export interface RemoveContainerRequest {
  containerId: string;
}
export interface ListContainersRequest {
  filter?: { id?: string; state?: { state: ContainerState }; podSandboxId?: string; labelSelector?: Labels };
}
export interface ContainerStatusRequest {
  containerId: string;
  verbose?: boolean;
}
export interface UpdateContainerResourcesRequest {
  containerId: string;
  linux?: LinuxContainerResourcesInput;
  annotations?: Labels;
}
export interface ReopenContainerLogRequest {
  containerId: string;
}
export interface ExecSyncRequest {
  containerId: string;
  cmd: string[];
  /** Seconds; the runtime kills the command after it and answers DEADLINE_EXCEEDED. 0: no limit. */
  timeout?: Int64Input;
}
export interface ContainerStatsRequest {
  containerId: string;
}
export interface ListContainerStatsRequest {
  filter?: { id?: string; podSandboxId?: string; labelSelector?: Labels };
}
export interface CheckpointContainerRequest {
  containerId: string;
  /** Path of the checkpoint archive on the runtime's host. */
  location: string;
  /** Seconds. */
  timeout?: Int64Input;
}
export type GetEventsRequest = Record<string, never>;
export interface ListImagesRequest {
  filter?: { image?: ImageSpecInput };
}
export interface ImageStatusRequest {
  image: ImageSpecInput;
  verbose?: boolean;
}
export interface PullImageRequest {
  image: ImageSpecInput;
  auth?: AuthConfig;
  sandboxConfig?: PodSandboxConfig;
}
export interface RemoveImageRequest {
  image: ImageSpecInput;
}
export type ImageFsInfoRequest = Record<string, never>;

// Responses

export interface VersionResponse {
  version: string;
  runtimeName: string;
  runtimeVersion: string;
  runtimeApiVersion: string;
}
export interface RuntimeCondition {
  type: string;
  status: boolean;
  reason: string;
  message: string;
}
export interface StatusResponse {
  status?: { conditions: RuntimeCondition[] };
  info: Labels;
}
export interface RunPodSandboxResponse {
  podSandboxId: string;
}
export interface PodSandboxNetworkStatus {
  ip: string;
  additionalIps: { ip: string }[];
}
export interface PodSandboxStatus {
  id: string;
  metadata?: PodSandboxMetadata;
  state: PodSandboxState;
  createdAt: bigint;
  network?: PodSandboxNetworkStatus;
  labels: Labels;
  annotations: Labels;
  runtimeHandler: string;
}
export interface PodSandboxStatusResponse {
  status?: PodSandboxStatus;
  info: Labels;
  containersStatuses: ContainerStatus[];
  timestamp: bigint;
}
export interface PodSandbox {
  id: string;
  metadata?: PodSandboxMetadata;
  state: PodSandboxState;
  createdAt: bigint;
  labels: Labels;
  annotations: Labels;
  runtimeHandler: string;
}
export interface ListPodSandboxResponse {
  items: PodSandbox[];
}
export interface CreateContainerResponse {
  containerId: string;
}
export interface Container {
  id: string;
  podSandboxId: string;
  metadata?: ContainerMetadata;
  image?: ImageSpec;
  imageRef: string;
  state: ContainerState;
  createdAt: bigint;
  labels: Labels;
  annotations: Labels;
  imageId: string;
}
export interface ListContainersResponse {
  containers: Container[];
}
export interface ContainerStatus {
  id: string;
  metadata?: ContainerMetadata;
  state: ContainerState;
  /** Unix nanoseconds; 0 when the event has not happened (see nanosToDate). */
  createdAt: bigint;
  startedAt: bigint;
  finishedAt: bigint;
  exitCode: number;
  image?: ImageSpec;
  imageRef: string;
  /** Why the container is in its state, e.g. OOMKilled, Error, Completed. */
  reason: string;
  message: string;
  labels: Labels;
  annotations: Labels;
  mounts: Mount[];
  logPath: string;
  resources?: { linux?: LinuxContainerResources };
  imageId: string;
}
export interface ContainerStatusResponse {
  status?: ContainerStatus;
  info: Labels;
}
export interface ExecSyncResponse {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
}
export interface UInt64Value {
  value: bigint;
}
export interface CpuUsage {
  timestamp: bigint;
  /** Cumulative CPU time in nanoseconds. */
  usageCoreNanoSeconds?: UInt64Value;
  /** CPU use in nanocores, averaged since the previous sample (0 or absent on the first one). */
  usageNanoCores?: UInt64Value;
}
export interface MemoryUsage {
  timestamp: bigint;
  workingSetBytes?: UInt64Value;
  availableBytes?: UInt64Value;
  usageBytes?: UInt64Value;
  rssBytes?: UInt64Value;
  pageFaults?: UInt64Value;
  majorPageFaults?: UInt64Value;
}
export interface FilesystemUsage {
  timestamp: bigint;
  fsId?: { mountpoint: string };
  usedBytes?: UInt64Value;
  inodesUsed?: UInt64Value;
}
export interface ContainerStats {
  attributes?: { id: string; metadata?: ContainerMetadata; labels: Labels; annotations: Labels };
  cpu?: CpuUsage;
  memory?: MemoryUsage;
  writableLayer?: FilesystemUsage;
}
export interface ContainerStatsResponse {
  stats?: ContainerStats;
}
export interface ListContainerStatsResponse {
  stats: ContainerStats[];
}
export interface ContainerEventResponse {
  containerId: string;
  containerEventType: ContainerEventType;
  createdAt: bigint;
  podSandboxStatus?: PodSandboxStatus;
  containersStatuses: ContainerStatus[];
}
export interface Image {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  size: bigint;
  uid?: { value: bigint };
  username: string;
  spec?: ImageSpec;
  pinned: boolean;
}
export interface ListImagesResponse {
  images: Image[];
}
export interface ImageStatusResponse {
  /** Absent when the runtime does not have the image. */
  image?: Image;
  info: Labels;
}
export interface PullImageResponse {
  imageRef: string;
}
export interface ImageFsInfoResponse {
  imageFilesystems: FilesystemUsage[];
  containerFilesystems: FilesystemUsage[];
}

// ---------------------------------------------------------------------------------------------
// Time helpers

/** A CRI timestamp (unix nanoseconds) as a Date, to the millisecond; undefined for 0 (unset). */
export function nanosToDate(ns: bigint): Date | undefined {
  return ns === 0n ? undefined : new Date(Number(ns / 1_000_000n));
}

/** Nanoseconds (a duration or a CPU-time counter) as seconds. */
export function nanosToSeconds(ns: bigint): number {
  // Split first: Number(ns) alone would lose precision beyond 2^53 ns (about 104 days).
  return Number(ns / 1_000_000_000n) + Number(ns % 1_000_000_000n) / 1e9;
}

// ---------------------------------------------------------------------------------------------
// Methods, errors, options

const RUNTIME_METHODS = [
  'Version',
  'Status',
  'RunPodSandbox',
  'StopPodSandbox',
  'RemovePodSandbox',
  'PodSandboxStatus',
  'ListPodSandbox',
  'CreateContainer',
  'StartContainer',
  'StopContainer',
  'RemoveContainer',
  'ListContainers',
  'ContainerStatus',
  'UpdateContainerResources',
  'ReopenContainerLog',
  'ExecSync',
  'ContainerStats',
  'ListContainerStats',
  'CheckpointContainer',
  'GetContainerEvents',
] as const;
const IMAGE_METHODS = ['ListImages', 'ImageStatus', 'PullImage', 'RemoveImage', 'ImageFsInfo'] as const;
export type CriMethod = (typeof RUNTIME_METHODS)[number] | (typeof IMAGE_METHODS)[number];

function statusName(code: grpc.status): string {
  return grpc.status[code] ?? String(code);
}

/** A failed CRI call: the gRPC status code plus the runtime's own message. */
export class CriError extends Error {
  override readonly name = 'CriError';

  constructor(
    /** The RPC (or 'waitForReady'). */
    readonly method: CriMethod | 'waitForReady',
    readonly code: grpc.status,
    /** The runtime's message, or grpc-js's for transport failures. */
    readonly details: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** The status code's name, e.g. NOT_FOUND: a stable label for metrics and logs. */
  get codeName(): string {
    return statusName(this.code);
  }
  isNotFound(): boolean {
    return this.code === grpc.status.NOT_FOUND;
  }
  /** The runtime is unreachable (down, restarting, wrong socket). Worth retrying. */
  isUnavailable(): boolean {
    return this.code === grpc.status.UNAVAILABLE;
  }
  isDeadlineExceeded(): boolean {
    return this.code === grpc.status.DEADLINE_EXCEEDED;
  }
  /** The runtime does not implement the RPC (e.g. GetContainerEvents or CheckpointContainer on containerd 1.6). */
  isUnimplemented(): boolean {
    return this.code === grpc.status.UNIMPLEMENTED;
  }
  isCancelled(): boolean {
    return this.code === grpc.status.CANCELLED;
  }
}

/** One finished CRI call, for gantry_cri_call_duration_seconds{method,result}. */
export interface CriCallEvent {
  method: CriMethod;
  code: grpc.status;
  /** 'OK' or the failure's status name. */
  codeName: string;
  /** For the GetContainerEvents stream: how long the stream was open. */
  seconds: number;
}

export interface CriClientOptions {
  /** Deadline of calls without an entry in timeoutsMs. Default 10 s. */
  defaultTimeoutMs?: number;
  /** Per-method deadlines; merged over DEFAULT_TIMEOUTS_MS. */
  timeoutsMs?: Partial<Record<CriMethod, number>>;
  /** Called after every call; must be cheap, and its exceptions are ignored. */
  observer?: (event: CriCallEvent) => void;
}

export interface CriCallOptions {
  /** Overrides the method's deadline for this call. */
  timeoutMs?: number;
  /** Cancels the call (it then fails with CANCELLED). */
  signal?: AbortSignal;
  /** Wait (up to the deadline) for the runtime to be reachable and serving instead of failing fast. */
  waitForReady?: boolean;
}

export interface CriStreamOptions {
  /** Ends the stream; the iteration then finishes without an error. */
  signal?: AbortSignal;
  waitForReady?: boolean;
}

export const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * Methods that can legitimately take longer than the default. StopContainer, ExecSync and
 * CheckpointContainer additionally get their request's own timeout (seconds) added, since the
 * runtime spends up to that long before answering.
 */
export const DEFAULT_TIMEOUTS_MS: Readonly<Partial<Record<CriMethod, number>>> = {
  // kubelet bounds pulls by progress, not time; a 10 GB image has been seen to take ~2 min.
  PullImage: 15 * 60_000,
  // The dump writes the container's whole memory.
  CheckpointContainer: 5 * 60_000,
  // May pull the sandbox image and run CNI plugins.
  RunPodSandbox: 60_000,
};

// A cap on deadlines: grpc-js throws on absurdly distant ones, and no CRI call should take a day.
const MAX_TIMEOUT_MS = 24 * 3600_000;

// Reconnect quickly: connecting to a local socket is cheap, and after a runtime restart every
// second of grpc-js's default backoff (up to 120 s) is a second the agent cannot act.
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1_000,
  // kubelet's limit: ListContainers / ListImages on a busy host exceed grpc's 4 MiB default.
  'grpc.max_receive_message_length': 16 * 1024 * 1024,
};

// ---------------------------------------------------------------------------------------------
// Wire conversion

// protobufjs (under proto-loader) returns 64-bit integers as `long` objects, marked __isLong__.
function isLong(v: object): boolean {
  return (v as { __isLong__?: unknown }).__isLong__ === true;
}

/** Decoded message -> our shape: longs to bigint, null (absent sub-message) to undefined. */
function fromWire(v: unknown): unknown {
  if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return v;
  if (isLong(v)) return BigInt(v.toString());
  if (Array.isArray(v)) return v.map(fromWire);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = fromWire(x);
  return out;
}

/** Our shape -> what protobufjs' fromObject takes: bigints as decimal strings. */
function toWire(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.map(toWire);
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toWire(x)]));
}

interface Rpc {
  path: string;
  serialize: (req: object) => Buffer;
  deserialize: (buf: Buffer) => unknown;
}

let rpcs: Record<CriMethod, Rpc> | undefined;

/** Loads runtime.proto once. */
function loadRpcs(): Record<CriMethod, Rpc> {
  if (rpcs) return rpcs;
  const file = SCHEMA_FILE;
  let def: protoLoader.PackageDefinition;
  try {
    def = protoLoader.loadSync(file, LOADER_OPTIONS);
  } catch (e) {
    throw new Error(`cannot load the CRI schema ${file} (the build must copy it next to client.js)`, {
      cause: e,
    });
  }
  const table: Partial<Record<CriMethod, Rpc>> = {};
  const services: [string, readonly CriMethod[]][] = [
    ['runtime.v1.RuntimeService', RUNTIME_METHODS],
    ['runtime.v1.ImageService', IMAGE_METHODS],
  ];
  for (const [service, methods] of services) {
    const svc = def[service] as protoLoader.ServiceDefinition;
    for (const m of methods) {
      const md = svc[m];
      if (!md) throw new Error(`runtime.proto lacks ${service}/${m}`);
      table[m] = {
        path: md.path,
        serialize: (req) => md.requestSerialize(toWire(req) as object),
        deserialize: (buf) => fromWire(md.responseDeserialize(buf)),
      };
    }
  }
  return (rpcs = table as Record<CriMethod, Rpc>);
}

// ---------------------------------------------------------------------------------------------
// The client

export class CriClient {
  /** The gRPC target, e.g. unix:///run/containerd/containerd.sock. */
  readonly target: string;
  private readonly client: grpc.Client;
  private readonly rpcs = loadRpcs();
  private readonly timeouts: Partial<Record<CriMethod, number>>;
  private readonly defaultTimeoutMs: number;
  private readonly observer: ((event: CriCallEvent) => void) | undefined;
  private closed = false;

  /** @param endpoint a socket path, or a gRPC target such as unix:///run/containerd/containerd.sock */
  constructor(endpoint: string, options: CriClientOptions = {}) {
    this.target = endpoint.startsWith('/') ? `unix://${endpoint}` : endpoint;
    this.client = new grpc.Client(this.target, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
    this.timeouts = { ...DEFAULT_TIMEOUTS_MS, ...options.timeoutsMs };
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.observer = options.observer;
  }

  /** Resolves once the runtime's socket accepts a connection; rejects (UNAVAILABLE) after timeoutMs. */
  waitForReady(timeoutMs: number): Promise<void> {
    if (this.closed) return Promise.reject(this.closedError('waitForReady'));
    return new Promise((resolve, reject) => {
      this.client.waitForReady(Date.now() + timeoutMs, (err) => {
        if (!err) return resolve();
        const state = grpc.connectivityState[this.client.getChannel().getConnectivityState(false)];
        reject(
          new CriError(
            'waitForReady',
            grpc.status.UNAVAILABLE,
            err.message,
            `CRI runtime at ${this.target} not ready within ${timeoutMs} ms (channel ${state}): ${err.message}`,
            { cause: err },
          ),
        );
      });
    });
  }

  /** Closes the channel; later calls fail with CANCELLED. */
  close(): void {
    this.closed = true;
    this.client.close();
  }

  // RuntimeService

  version(req: VersionRequest = {}, opts?: CriCallOptions): Promise<VersionResponse> {
    return this.unary('Version', req, opts);
  }
  status(req: StatusRequest = {}, opts?: CriCallOptions): Promise<StatusResponse> {
    return this.unary('Status', req, opts);
  }
  runPodSandbox(req: RunPodSandboxRequest, opts?: CriCallOptions): Promise<RunPodSandboxResponse> {
    return this.unary('RunPodSandbox', req, opts);
  }
  /** Idempotent: stopping a stopped sandbox succeeds. Kills the sandbox's containers at once. */
  async stopPodSandbox(req: StopPodSandboxRequest, opts?: CriCallOptions): Promise<void> {
    await this.unary('StopPodSandbox', req, opts);
  }
  async removePodSandbox(req: RemovePodSandboxRequest, opts?: CriCallOptions): Promise<void> {
    await this.unary('RemovePodSandbox', req, opts);
  }
  podSandboxStatus(req: PodSandboxStatusRequest, opts?: CriCallOptions): Promise<PodSandboxStatusResponse> {
    return this.unary('PodSandboxStatus', req, opts);
  }
  listPodSandbox(req: ListPodSandboxRequest = {}, opts?: CriCallOptions): Promise<ListPodSandboxResponse> {
    return this.unary('ListPodSandbox', req, opts);
  }
  createContainer(req: CreateContainerRequest, opts?: CriCallOptions): Promise<CreateContainerResponse> {
    return this.unary('CreateContainer', req, opts);
  }
  async startContainer(req: StartContainerRequest, opts?: CriCallOptions): Promise<void> {
    await this.unary('StartContainer', req, opts);
  }
  async stopContainer(req: StopContainerRequest, opts?: CriCallOptions): Promise<void> {
    await this.unary('StopContainer', req, opts, req.timeout);
  }
  async removeContainer(req: RemoveContainerRequest, opts?: CriCallOptions): Promise<void> {
    await this.unary('RemoveContainer', req, opts);
  }
  listContainers(req: ListContainersRequest = {}, opts?: CriCallOptions): Promise<ListContainersResponse> {
    return this.unary('ListContainers', req, opts);
  }
  containerStatus(req: ContainerStatusRequest, opts?: CriCallOptions): Promise<ContainerStatusResponse> {
    return this.unary('ContainerStatus', req, opts);
  }
  async updateContainerResources(req: UpdateContainerResourcesRequest, opts?: CriCallOptions): Promise<void> {
    await this.unary('UpdateContainerResources', req, opts);
  }
  async reopenContainerLog(req: ReopenContainerLogRequest, opts?: CriCallOptions): Promise<void> {
    await this.unary('ReopenContainerLog', req, opts);
  }
  /** A command that cannot be started is an error (UNKNOWN), not an exit code. */
  execSync(req: ExecSyncRequest, opts?: CriCallOptions): Promise<ExecSyncResponse> {
    return this.unary('ExecSync', req, opts, req.timeout);
  }
  containerStats(req: ContainerStatsRequest, opts?: CriCallOptions): Promise<ContainerStatsResponse> {
    return this.unary('ContainerStats', req, opts);
  }
  listContainerStats(
    req: ListContainerStatsRequest = {},
    opts?: CriCallOptions,
  ): Promise<ListContainerStatsResponse> {
    return this.unary('ListContainerStats', req, opts);
  }
  /** The container keeps running after the dump: stop or pause it yourself. */
  async checkpointContainer(req: CheckpointContainerRequest, opts?: CriCallOptions): Promise<void> {
    await this.unary('CheckpointContainer', req, opts, req.timeout);
  }

  /**
   * Container lifecycle events, until `signal` aborts (then the iteration just ends). Fails with a
   * CriError: UNIMPLEMENTED on containerd 1.6, UNAVAILABLE when the runtime exits. Events can be
   * replayed or missed across a reconnect: relist (ListContainers) after subscribing again.
   */
  async *getContainerEvents(
    req: GetEventsRequest = {},
    opts: CriStreamOptions = {},
  ): AsyncGenerator<ContainerEventResponse, void, undefined> {
    const method = 'GetContainerEvents';
    if (this.closed) throw this.closedError(method);
    if (opts.signal?.aborted) return;
    const rpc = this.rpcs[method];
    const started = performance.now();
    const call = this.client.makeServerStreamRequest(
      rpc.path,
      rpc.serialize,
      rpc.deserialize,
      req,
      this.metadata(opts.waitForReady),
    );
    const cancel = () => call.cancel();
    opts.signal?.addEventListener('abort', cancel, { once: true });
    let code = grpc.status.OK;
    try {
      for await (const event of call) yield event as ContainerEventResponse;
    } catch (e) {
      const err = e as grpc.ServiceError;
      code = err.code ?? grpc.status.UNKNOWN;
      if (code === grpc.status.CANCELLED && opts.signal?.aborted) return;
      throw this.error(method, err);
    } finally {
      opts.signal?.removeEventListener('abort', cancel);
      // Also ends the RPC when the consumer leaves the loop early.
      call.cancel();
      this.observe(method, code, started);
    }
  }

  // ImageService

  listImages(req: ListImagesRequest = {}, opts?: CriCallOptions): Promise<ListImagesResponse> {
    return this.unary('ListImages', req, opts);
  }
  /** `image` is absent in the response when the runtime does not have the image. */
  imageStatus(req: ImageStatusRequest, opts?: CriCallOptions): Promise<ImageStatusResponse> {
    return this.unary('ImageStatus', req, opts);
  }
  pullImage(req: PullImageRequest, opts?: CriCallOptions): Promise<PullImageResponse> {
    return this.unary('PullImage', req, opts);
  }
  async removeImage(req: RemoveImageRequest, opts?: CriCallOptions): Promise<void> {
    await this.unary('RemoveImage', req, opts);
  }
  imageFsInfo(req: ImageFsInfoRequest = {}, opts?: CriCallOptions): Promise<ImageFsInfoResponse> {
    return this.unary('ImageFsInfo', req, opts);
  }

  // Plumbing

  private metadata(waitForReady: boolean | undefined): grpc.Metadata {
    return new grpc.Metadata({ waitForReady: waitForReady ?? false });
  }

  /** @param runtimeTimeout seconds the runtime itself may spend on the request, added to the deadline */
  private async unary<Res>(
    method: CriMethod,
    req: object,
    opts: CriCallOptions = {},
    runtimeTimeout?: Int64Input,
  ): Promise<Res> {
    if (this.closed) throw this.closedError(method);
    const rpc = this.rpcs[method];
    const timeoutMs = Math.min(
      opts.timeoutMs ?? (this.timeouts[method] ?? this.defaultTimeoutMs) + Number(runtimeTimeout ?? 0) * 1000,
      MAX_TIMEOUT_MS,
    );
    const deadline = Date.now() + timeoutMs;
    for (let delayMs = 100; ; delayMs = Math.min(delayMs * 2, 1000)) {
      try {
        return await this.unaryOnce<Res>(method, rpc, req, opts, deadline, timeoutMs);
      } catch (e) {
        const retry =
          opts.waitForReady &&
          e instanceof CriError &&
          e.isUnavailable() &&
          !opts.signal?.aborted &&
          Date.now() + delayMs < deadline;
        if (!retry) throw e;
        await sleep(delayMs);
      }
    }
  }

  private unaryOnce<Res>(
    method: CriMethod,
    rpc: (typeof this.rpcs)[CriMethod],
    req: object,
    opts: CriCallOptions,
    deadline: number,
    timeoutMs: number,
  ): Promise<Res> {
    const started = performance.now();
    return new Promise<Res>((resolve, reject) => {
      const call = this.client.makeUnaryRequest(
        rpc.path,
        rpc.serialize,
        rpc.deserialize,
        req,
        this.metadata(opts.waitForReady),
        { deadline },
        (err, res) => {
          opts.signal?.removeEventListener('abort', cancel);
          this.observe(method, err ? err.code : grpc.status.OK, started);
          if (err) reject(this.error(method, err, timeoutMs));
          else resolve(res as Res);
        },
      );
      const cancel = () => call.cancel();
      if (opts.signal?.aborted) cancel();
      else opts.signal?.addEventListener('abort', cancel, { once: true });
    });
  }

  private error(method: CriMethod, err: grpc.ServiceError, timeoutMs?: number): CriError {
    const code = err.code ?? grpc.status.UNKNOWN;
    const details = err.details || err.message;
    const hints: Partial<Record<grpc.status, string>> = {
      [grpc.status.UNAVAILABLE]: ` (is the runtime running at ${this.target}?)`,
      [grpc.status.DEADLINE_EXCEEDED]: timeoutMs === undefined ? '' : ` (client deadline ${timeoutMs} ms)`,
    };
    const message = `CRI ${method} failed: ${statusName(code)}: ${details}${hints[code] ?? ''}`;
    return new CriError(method, code, details, message, { cause: err });
  }

  private closedError(method: CriMethod | 'waitForReady'): CriError {
    const details = 'the CRI client was closed';
    return new CriError(method, grpc.status.CANCELLED, details, `CRI ${method} failed: ${details}`);
  }

  private observe(method: CriMethod, code: grpc.status, started: number): void {
    if (!this.observer) return;
    const seconds = (performance.now() - started) / 1000;
    try {
      this.observer({ method, code, codeName: statusName(code), seconds });
    } catch {
      // Recording a metric must never fail or hide a runtime call's outcome.
    }
  }
}

/** The CRI calls the agent makes; a simulated runtime provides these and nothing else. */
export type AgentRuntime = Pick<
  CriClient,
  | 'version'
  | 'status'
  | 'runPodSandbox'
  | 'stopPodSandbox'
  | 'removePodSandbox'
  | 'podSandboxStatus'
  | 'listPodSandbox'
  | 'createContainer'
  | 'startContainer'
  | 'stopContainer'
  | 'removeContainer'
  | 'listContainers'
  | 'containerStatus'
  | 'execSync'
  | 'listContainerStats'
  | 'checkpointContainer'
  | 'getContainerEvents'
  | 'listImages'
  | 'imageStatus'
  | 'pullImage'
  | 'removeImage'
  | 'imageFsInfo'
  | 'close'
>;
