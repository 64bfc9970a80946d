// A typed client for the Kubernetes Container Runtime Interface (runtime.v1) over a unix socket:
// one method per RPC of RuntimeService and ImageService, on the call machinery of connection.ts.
//
// Messages are the types generated from runtime.proto (generated/, `npm run gen:cri`), under their
// upstream names in camelCase (messages.ts); the client converts what grpc-js decodes (wire.ts):
// - every 64-bit integer is a bigint in responses (CRI timestamps are unix nanoseconds, beyond
//   2^53); requests take a bigint, a number or a decimal string. nanosToDate / nanosToSeconds convert;
// - enums are their upstream names (CONTAINER_RUNNING);
// - responses carry every scalar, list and map (proto3 defaults); an absent sub-message is undefined;
// - request fields are all optional, as in proto3: the runtime refuses what it cannot use.
import { CriConnection, type CriCallOptions, type CriStreamOptions } from './connection.js';
import type { ContainerEventResponse } from './messages.js';
import type { CriRequest, CriResponse } from './wire.js';

export {
  CriError,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_TIMEOUTS_MS,
  type CriCallEvent,
  type CriCallOptions,
  type CriClientOptions,
  type CriStreamOptions,
} from './connection.js';
export type * from './messages.js';
export type { CriMethod, CriRequest, CriResponse } from './wire.js';

/** A CRI timestamp (unix nanoseconds) as a Date, to the millisecond; undefined for 0 (unset). */
export function nanosToDate(ns: bigint): Date | undefined {
  return ns === 0n ? undefined : new Date(Number(ns / 1_000_000n));
}

/** Nanoseconds (a duration or a CPU-time counter) as seconds. */
export function nanosToSeconds(ns: bigint): number {
  // Split first: Number(ns) alone would lose precision beyond 2^53 ns (about 104 days).
  return Number(ns / 1_000_000_000n) + Number(ns % 1_000_000_000n) / 1e9;
}

/** A CRI runtime: waitForReady, close, and one method per RPC (upstream's name in camelCase). */
export class CriClient extends CriConnection {
  // RuntimeService

  version(req: CriRequest<'Version'> = {}, opts?: CriCallOptions): Promise<CriResponse<'Version'>> {
    return this.unary('Version', req, opts);
  }
  status(req: CriRequest<'Status'> = {}, opts?: CriCallOptions): Promise<CriResponse<'Status'>> {
    return this.unary('Status', req, opts);
  }
  runPodSandbox(
    req: CriRequest<'RunPodSandbox'>,
    opts?: CriCallOptions,
  ): Promise<CriResponse<'RunPodSandbox'>> {
    return this.unary('RunPodSandbox', req, opts);
  }
  /** Idempotent: stopping a stopped sandbox succeeds. Kills the sandbox's containers at once. */
  async stopPodSandbox(req: CriRequest<'StopPodSandbox'>, opts?: CriCallOptions): Promise<void> {
    await this.unary('StopPodSandbox', req, opts);
  }
  async removePodSandbox(req: CriRequest<'RemovePodSandbox'>, opts?: CriCallOptions): Promise<void> {
    await this.unary('RemovePodSandbox', req, opts);
  }
  podSandboxStatus(
    req: CriRequest<'PodSandboxStatus'>,
    opts?: CriCallOptions,
  ): Promise<CriResponse<'PodSandboxStatus'>> {
    return this.unary('PodSandboxStatus', req, opts);
  }
  listPodSandbox(
    req: CriRequest<'ListPodSandbox'> = {},
    opts?: CriCallOptions,
  ): Promise<CriResponse<'ListPodSandbox'>> {
    return this.unary('ListPodSandbox', req, opts);
  }
  createContainer(
    req: CriRequest<'CreateContainer'>,
    opts?: CriCallOptions,
  ): Promise<CriResponse<'CreateContainer'>> {
    return this.unary('CreateContainer', req, opts);
  }
  async startContainer(req: CriRequest<'StartContainer'>, opts?: CriCallOptions): Promise<void> {
    await this.unary('StartContainer', req, opts);
  }
  async stopContainer(req: CriRequest<'StopContainer'>, opts?: CriCallOptions): Promise<void> {
    await this.unary('StopContainer', req, opts, req.timeout);
  }
  async removeContainer(req: CriRequest<'RemoveContainer'>, opts?: CriCallOptions): Promise<void> {
    await this.unary('RemoveContainer', req, opts);
  }
  listContainers(
    req: CriRequest<'ListContainers'> = {},
    opts?: CriCallOptions,
  ): Promise<CriResponse<'ListContainers'>> {
    return this.unary('ListContainers', req, opts);
  }
  containerStatus(
    req: CriRequest<'ContainerStatus'>,
    opts?: CriCallOptions,
  ): Promise<CriResponse<'ContainerStatus'>> {
    return this.unary('ContainerStatus', req, opts);
  }
  async updateContainerResources(
    req: CriRequest<'UpdateContainerResources'>,
    opts?: CriCallOptions,
  ): Promise<void> {
    await this.unary('UpdateContainerResources', req, opts);
  }
  async reopenContainerLog(req: CriRequest<'ReopenContainerLog'>, opts?: CriCallOptions): Promise<void> {
    await this.unary('ReopenContainerLog', req, opts);
  }
  /** A command that cannot be started is an error (UNKNOWN), not an exit code. */
  execSync(req: CriRequest<'ExecSync'>, opts?: CriCallOptions): Promise<CriResponse<'ExecSync'>> {
    return this.unary('ExecSync', req, opts, req.timeout);
  }
  /** A one-time URL of the runtime's streaming server for the command (it starts once connected). */
  exec(req: CriRequest<'Exec'>, opts?: CriCallOptions): Promise<CriResponse<'Exec'>> {
    return this.unary('Exec', req, opts);
  }
  containerStats(
    req: CriRequest<'ContainerStats'>,
    opts?: CriCallOptions,
  ): Promise<CriResponse<'ContainerStats'>> {
    return this.unary('ContainerStats', req, opts);
  }
  listContainerStats(
    req: CriRequest<'ListContainerStats'> = {},
    opts?: CriCallOptions,
  ): Promise<CriResponse<'ListContainerStats'>> {
    return this.unary('ListContainerStats', req, opts);
  }
  /** The container keeps running after the dump: stop or pause it yourself. */
  async checkpointContainer(req: CriRequest<'CheckpointContainer'>, opts?: CriCallOptions): Promise<void> {
    await this.unary('CheckpointContainer', req, opts, req.timeout);
  }

  /**
   * Container lifecycle events, until `signal` aborts (then the iteration just ends). Fails with a
   * CriError: UNIMPLEMENTED on containerd 1.6, UNAVAILABLE when the runtime exits. Events can be
   * replayed or missed across a reconnect: relist (ListContainers) after subscribing again.
   */
  getContainerEvents(
    req: CriRequest<'GetContainerEvents'> = {},
    opts: CriStreamOptions = {},
  ): AsyncGenerator<ContainerEventResponse, void, undefined> {
    return this.stream('GetContainerEvents', req, opts);
  }

  // ImageService

  listImages(req: CriRequest<'ListImages'> = {}, opts?: CriCallOptions): Promise<CriResponse<'ListImages'>> {
    return this.unary('ListImages', req, opts);
  }
  /** `image` is absent in the response when the runtime does not have the image. */
  imageStatus(req: CriRequest<'ImageStatus'>, opts?: CriCallOptions): Promise<CriResponse<'ImageStatus'>> {
    return this.unary('ImageStatus', req, opts);
  }
  pullImage(req: CriRequest<'PullImage'>, opts?: CriCallOptions): Promise<CriResponse<'PullImage'>> {
    return this.unary('PullImage', req, opts);
  }
  async removeImage(req: CriRequest<'RemoveImage'>, opts?: CriCallOptions): Promise<void> {
    await this.unary('RemoveImage', req, opts);
  }
  imageFsInfo(
    req: CriRequest<'ImageFsInfo'> = {},
    opts?: CriCallOptions,
  ): Promise<CriResponse<'ImageFsInfo'>> {
    return this.unary('ImageFsInfo', req, opts);
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
  | 'reopenContainerLog'
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
