// The call machinery under CriClient: one gRPC channel to the runtime, unary and streaming calls
// with deadlines, cancellation and waitForReady, failures as CriErrors, and a call observer for
// metrics. CriClient (client.ts) adds one method per RPC on top.
//
// - Every unary call has a deadline; failures are CriErrors with the gRPC status code.
// - One channel serves both services. grpc-js reconnects it by itself when the runtime restarts;
//   calls made while the runtime is down fail at once with UNAVAILABLE unless they ask waitForReady,
//   which also waits out a runtime that listens but is still starting (containerd answers
//   UNAVAILABLE "server is not initialized yet" for a moment after a restart).
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { type CriMethod, type CriRequest, type CriResponse, loadRpcs, type Rpc } from './wire.js';

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

/** One gRPC channel to a CRI runtime, and the calls over it. */
export class CriConnection {
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

  /** @param runtimeTimeout seconds the runtime itself may spend on the request, added to the deadline */
  protected async unary<M extends CriMethod>(
    method: M,
    req: CriRequest<M>,
    opts: CriCallOptions = {},
    runtimeTimeout?: bigint | number | string,
  ): Promise<CriResponse<M>> {
    if (this.closed) throw this.closedError(method);
    const rpc = this.rpcs[method];
    const timeoutMs = Math.min(
      opts.timeoutMs ?? (this.timeouts[method] ?? this.defaultTimeoutMs) + Number(runtimeTimeout ?? 0) * 1000,
      MAX_TIMEOUT_MS,
    );
    const deadline = Date.now() + timeoutMs;
    for (let delayMs = 100; ; delayMs = Math.min(delayMs * 2, 1000)) {
      try {
        return (await this.unaryOnce(
          method,
          rpc,
          req as object,
          opts,
          deadline,
          timeoutMs,
        )) as CriResponse<M>;
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

  private unaryOnce(
    method: CriMethod,
    rpc: Rpc,
    req: object,
    opts: CriCallOptions,
    deadline: number,
    timeoutMs: number,
  ): Promise<unknown> {
    const started = performance.now();
    return new Promise((resolve, reject) => {
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
          else resolve(res);
        },
      );
      const cancel = () => call.cancel();
      if (opts.signal?.aborted) cancel();
      else opts.signal?.addEventListener('abort', cancel, { once: true });
    });
  }

  /**
   * A server-streaming call, until `opts.signal` aborts (then the iteration just ends); leaving
   * the loop early ends the call too.
   */
  protected async *stream<M extends CriMethod>(
    method: M,
    req: CriRequest<M>,
    opts: CriStreamOptions = {},
  ): AsyncGenerator<CriResponse<M>, void, undefined> {
    if (this.closed) throw this.closedError(method);
    if (opts.signal?.aborted) return;
    const rpc = this.rpcs[method];
    const started = performance.now();
    const call = this.client.makeServerStreamRequest(
      rpc.path,
      rpc.serialize,
      rpc.deserialize,
      req as object,
      this.metadata(opts.waitForReady),
    );
    const cancel = () => call.cancel();
    opts.signal?.addEventListener('abort', cancel, { once: true });
    let code = grpc.status.OK;
    try {
      for await (const message of call) yield message as CriResponse<M>;
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

  private metadata(waitForReady: boolean | undefined): grpc.Metadata {
    return new grpc.Metadata({ waitForReady: waitForReady ?? false });
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
