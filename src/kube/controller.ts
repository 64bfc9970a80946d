// The reconcile loop, after controller-runtime's contract: the queue holds only keys, every
// reconcile re-reads current state (level-triggered), and the result decides what happens next:
//   error          -> rate-limited retry (5 ms doubling to 1000 s, overall 10 qps)
//   TerminalError  -> counted and logged, not retried until the object changes again
//   requeueAfter   -> forget the failures, come back after that delay
//   success        -> forget the failures
import { randomUUID } from 'node:crypto';
import { realClock, type Clock } from './clock.js';
import { splitKey } from './keys.js';
import type { RateLimiter } from './ratelimiter.js';
import { WorkQueue } from './workqueue.js';
import type { Logger } from '../obs/logger.js';
import { controllerMetrics, type ControllerMetrics, type ReconcileResultLabel } from '../obs/metrics.js';

export interface ReconcileContext {
  /** Carries controller, kind, namespace, name and reconcileID. */
  log: Logger;
  reconcileID: string;
  /** Aborted when shutdown runs out of grace period: stop and leave things re-entrant. */
  signal: AbortSignal;
}

export interface ReconcileResult {
  /** Milliseconds until this key is reconciled again (polling something outside the cluster). */
  requeueAfter?: number;
}

/** One unit of reconciliation for one kind: make the world match the object named by `key`. */
export interface Reconciler {
  reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult | void>;
}

/** An error retrying cannot fix (invalid spec...): reported, not requeued. May be a `cause`. */
export class TerminalError extends Error {
  override readonly name = 'TerminalError';
}

export function isTerminal(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) if (e instanceof TerminalError) return true;
  return false;
}

export interface ControllerOptions {
  /** Names the queue, the metrics' `controller` label and the logs' `controller` key. */
  name: string;
  /** The kind reconciled, for the logs. */
  kind: string;
  reconciler: Reconciler;
  /** Concurrent reconciles (never two for one key). Default 1. */
  workers?: number;
  log: Logger;
  clock?: Clock;
  rateLimiter?: RateLimiter<string>;
}

export class Controller {
  readonly name: string;
  readonly queue: WorkQueue<string>;
  private readonly reconciler: Reconciler;
  private readonly workers: number;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly metrics: ControllerMetrics;
  private readonly cancel = new AbortController();
  private running: Promise<void> | undefined;

  constructor(opts: ControllerOptions) {
    this.name = opts.name;
    this.reconciler = opts.reconciler;
    this.workers = opts.workers ?? 1;
    this.clock = opts.clock ?? realClock;
    this.log = opts.log.child({ controller: opts.name, kind: opts.kind });
    this.queue = new WorkQueue<string>({ name: opts.name, clock: this.clock, rateLimiter: opts.rateLimiter });
    this.metrics = controllerMetrics(opts.name, this.workers);
  }

  /** Queues a key (`namespace/name` or `name`); duplicates collapse. Safe before start(). */
  enqueue(key: string): void {
    this.queue.add(key);
  }

  /** Starts the workers; keys queued before now are processed first. */
  start(): void {
    if (this.running) return;
    this.log.info('Starting workers', { workers: this.workers });
    this.running = Promise.all(Array.from({ length: this.workers }, () => this.work())).then(() => undefined);
  }

  /** Stops handing out keys and resolves once in-flight reconciles have finished. */
  async stop(): Promise<void> {
    await this.queue.shutDownWithDrain();
    await this.running;
    this.log.info('All workers finished');
  }

  /** Asks in-flight reconciles to give up (their ctx.signal aborts), saying why. */
  abort(why: string): void {
    this.cancel.abort(new Error(why));
  }

  private async work(): Promise<void> {
    for (let key = await this.queue.get(); key !== undefined; key = await this.queue.get()) {
      this.metrics.workerStarted();
      try {
        await this.reconcileKey(key);
      } finally {
        this.metrics.workerFinished();
        this.queue.done(key);
      }
    }
  }

  private async reconcileKey(key: string): Promise<void> {
    const reconcileID = randomUUID();
    const { namespace, name } = splitKey(key);
    const log = this.log.child(namespace ? { namespace, name, reconcileID } : { name, reconcileID });
    const start = this.clock.now();
    let result: ReconcileResultLabel;
    try {
      const res = await this.reconciler.reconcile(key, { log, reconcileID, signal: this.cancel.signal });
      this.queue.forget(key);
      if (res?.requeueAfter !== undefined && res.requeueAfter > 0) {
        this.queue.addAfter(key, res.requeueAfter);
        result = 'requeue_after';
      } else {
        result = 'success';
      }
    } catch (err) {
      result = 'error';
      const terminal = isTerminal(err);
      this.metrics.failed(terminal);
      if (terminal) {
        this.queue.forget(key);
        log.error('Reconciler error', { err, terminal: true });
      } else {
        this.queue.addRateLimited(key);
        log.error('Reconciler error', { err, retries: this.queue.numRequeues(key) });
      }
    }
    const seconds = (this.clock.now() - start) / 1000;
    this.metrics.reconciled(result, seconds);
    log.debug('Reconcile finished', { result, seconds });
  }
}
