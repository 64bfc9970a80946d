// The manager runs a process's machinery, in controller-runtime's order:
//   metrics and probe servers -> informers -> caches synced (readyz passes)
//   -> leader election, if configured -> controllers (only while leading).
// On SIGTERM/SIGINT (or the run signal) it stops handing out keys, lets in-flight reconciles
// finish within the grace period, releases the lease so a standby takes over at once, stops
// the informers and the servers, and run() resolves. The caller then exits the process: a
// reconcile that ignored its abort signal must not keep a deposed leader alive.
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { CoordinationV1Api, type KubernetesObject } from '@kubernetes/client-node';
import type { BackoffOptions } from './backoff.js';
import type { KubeClient } from './client.js';
import { realClock, sleep, type Clock } from './clock.js';
import { Controller, type Reconciler } from './controller.js';
import { Informer, restListWatcher, type ResourceQuery } from './informer.js';
import { objectKey } from './keys.js';
import { LeaderElector } from './leaderelection.js';
import type { RateLimiter } from './ratelimiter.js';
import type { IndexFunc } from './store.js';
import {
  Checks,
  listen,
  metricsApp,
  parseBindAddress,
  probesApp,
  type BindAddress,
  type RunningServer,
} from '../obs/http.js';
import type { Logger } from '../obs/logger.js';
import { registry } from '../obs/metrics.js';

export interface LeaderElectionSettings {
  namespace: string;
  /** The Lease's name, e.g. 'gantry-controller'. */
  name: string;
  /** Default `${hostname}_${uuid}`. */
  identity?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

export interface ManagerOptions {
  client: KubeClient;
  log: Logger;
  /** Omit to run controllers without election (the node agent: one per host). */
  leaderElection?: LeaderElectionSettings;
  /** host:port for /metrics; '0' turns it off. Default 127.0.0.1:8080. */
  metricsBindAddress?: string;
  /** host:port for /healthz and /readyz; '0' turns it off. Default 127.0.0.1:8081. */
  healthProbeBindAddress?: string;
  /** Time allowed for in-flight reconciles and the lease release on shutdown. Default 30 s. */
  gracefulShutdownMs?: number;
  /** Stop on SIGTERM/SIGINT (a second signal exits at once). Default true. */
  handleSignals?: boolean;
  clock?: Clock;
}

export interface InformerSpec<T extends KubernetesObject> extends ResourceQuery {
  /** Default: the path plus any selectors. Informers are shared by name. */
  name?: string;
  indexers?: Record<string, IndexFunc<T>>;
  resyncPeriodMs?: number;
  watchTimeoutSeconds?: number;
  quietTimeoutMs?: number;
  backoff?: BackoffOptions;
}

/** Connects an informer's events to a controller's queue. */
export interface Source {
  connect(enqueue: (key: string) => void): void;
}

/**
 * Events of `informer` enqueue the keys `map` returns: by default the object's own key; use
 * ownerKeys('Workload') to reconcile owners when their owned objects change.
 */
export function watch<T extends KubernetesObject>(
  informer: Informer<T>,
  map: (obj: T) => string[] = (obj) => [objectKey(obj)],
): Source {
  return {
    connect(enqueue) {
      const enqueueAll = (obj: T): void => map(obj).forEach(enqueue);
      informer.addEventHandler({
        onAdd: enqueueAll,
        onUpdate: (oldObj, newObj) => {
          enqueueAll(newObj);
          if (oldObj !== newObj) enqueueAll(oldObj); // a changed owner: both hear about it
        },
        onDelete: enqueueAll,
      });
    },
  };
}

export interface ControllerSpec {
  name: string;
  kind: string;
  reconciler: Reconciler;
  workers?: number;
  watches: Source[];
  rateLimiter?: RateLimiter<string>;
}

/**
 * A background task the manager starts once caches have synced (and, when it needs leader
 * election, only while leading) and stops at shutdown by aborting `signal`: periodic sweeps,
 * heartbeats, streams. start() resolves when the task has stopped. A task that fails (start()
 * rejects) stops the manager with its error, as in controller-runtime: the process exits and its
 * supervisor restarts it, rather than running on without the task. Tasks retry what is transient.
 */
export interface Runnable {
  name: string;
  needLeaderElection: boolean;
  start(signal: AbortSignal): Promise<void>;
}

export class Manager {
  /** Liveness checks behind /healthz. */
  readonly liveness = new Checks();
  /** Readiness checks behind /readyz; informer sync is already one. */
  readonly readiness = new Checks();
  /** Where /metrics and the probes listen, once run() has bound them (useful with port 0). */
  readonly served: { metrics?: BindAddress; probes?: BindAddress } = {};
  private readonly opts: ManagerOptions;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly informers = new Map<string, Informer<KubernetesObject>>();
  private readonly controllers: Controller[] = [];
  private readonly runnables: Runnable[] = [];
  private readonly running: Promise<void>[] = [];
  private readonly stopRunnables = new AbortController();
  /** Stops run() with an error; set while run() runs. */
  private fail: (err: unknown) => void = () => {};
  private elector: LeaderElector | undefined;
  private ran = false;

  constructor(opts: ManagerOptions) {
    this.opts = opts;
    this.log = opts.log;
    this.clock = opts.clock ?? realClock;
    this.liveness.add('ping', () => {});
    this.readiness.add('informers', () => {
      const pending = [...this.informers.values()].filter((i) => !i.hasSynced()).map((i) => i.name);
      if (pending.length > 0) throw new Error(`not synced: ${pending.join(', ')}`);
    });
  }

  /** The informer for a resource, created on first request and shared after. */
  informer<T extends KubernetesObject>(spec: InformerSpec<T>): Informer<T> {
    const name =
      spec.name ??
      [
        spec.path,
        spec.labelSelector && `l=${spec.labelSelector}`,
        spec.fieldSelector && `f=${spec.fieldSelector}`,
      ]
        .filter(Boolean)
        .join('?');
    const existing = this.informers.get(name);
    if (existing) return existing as unknown as Informer<T>;
    const informer = new Informer<T>({
      name,
      listWatcher: restListWatcher<T>(this.opts.client, spec),
      log: this.log,
      indexers: spec.indexers,
      resyncPeriodMs: spec.resyncPeriodMs,
      watchTimeoutSeconds: spec.watchTimeoutSeconds,
      quietTimeoutMs: spec.quietTimeoutMs,
      backoff: spec.backoff,
      clock: this.clock,
    });
    this.informers.set(name, informer as unknown as Informer<KubernetesObject>);
    return informer;
  }

  /** Adds a controller fed by `spec.watches`; it runs once caches sync (and, with election, while leading). */
  controller(spec: ControllerSpec): Controller {
    const controller = new Controller({ ...spec, log: this.log, clock: this.clock });
    for (const source of spec.watches) source.connect((key) => controller.enqueue(key));
    this.controllers.push(controller);
    return controller;
  }

  /** Adds a background task (see Runnable). */
  add(runnable: Runnable): void {
    this.runnables.push(runnable);
  }

  /** True when this process runs the controllers (always, without election). */
  isLeader(): boolean {
    if (!this.opts.leaderElection) return true;
    return this.elector?.isLeader() ?? false;
  }

  /**
   * Runs until `signal` aborts or SIGTERM/SIGINT arrives, then shuts down gracefully and
   * resolves. Rejects (after shutting down) when leadership is lost or startup fails.
   */
  async run(signal?: AbortSignal): Promise<void> {
    if (this.ran) throw new Error('a manager runs once');
    this.ran = true;
    const stop = new AbortController();
    let failure: unknown;
    const fail = (err: unknown): void => {
      failure ??= err;
      stop.abort();
    };
    this.fail = fail;
    if (signal?.aborted) stop.abort();
    signal?.addEventListener('abort', () => stop.abort(), { once: true });
    const removeSignalHandlers =
      (this.opts.handleSignals ?? true) ? onTerminationSignals(this.log, () => stop.abort()) : () => {};

    const servers: RunningServer[] = [];
    const election = new AbortController();
    let leading: Promise<void> = Promise.resolve();
    let leadershipLost = false;
    try {
      await this.startServers(servers);
      for (const informer of this.informers.values()) informer.start();
      await Promise.all([...this.informers.values()].map((i) => i.waitForSync(stop.signal)));
      if (!stop.signal.aborted) {
        this.log.info('Caches synced', { informers: this.informers.size });
        this.startRunnables(false);
        if (this.opts.leaderElection) {
          this.elector = this.newElector(this.opts.leaderElection, () => {
            if (stop.signal.aborted) return;
            leadershipLost = true;
            fail(new Error('leader election lost'));
          });
          leading = this.elector.run(election.signal).catch(fail);
        } else {
          this.startControllers();
        }
      }
      await new Promise<void>((resolve) => {
        if (stop.signal.aborted) resolve();
        else stop.signal.addEventListener('abort', () => resolve(), { once: true });
      });
    } catch (err) {
      fail(err);
    } finally {
      await this.shutdown(election, leading, leadershipLost);
      await Promise.all(servers.map((s) => s.close()));
      removeSignalHandlers();
    }
    if (failure !== undefined) throw failure;
  }

  private newElector(settings: LeaderElectionSettings, lost: () => void): LeaderElector {
    return new LeaderElector({
      api: this.opts.client.api(CoordinationV1Api),
      namespace: settings.namespace,
      name: settings.name,
      identity: settings.identity ?? `${hostname()}_${randomUUID()}`,
      leaseDurationMs: settings.leaseDurationMs,
      renewDeadlineMs: settings.renewDeadlineMs,
      retryPeriodMs: settings.retryPeriodMs,
      callbacks: { onStartedLeading: () => this.startControllers(), onStoppedLeading: lost },
      log: this.log,
      clock: this.clock,
    });
  }

  private startControllers(): void {
    for (const controller of this.controllers) controller.start();
    this.startRunnables(true);
  }

  private startRunnables(needLeaderElection: boolean): void {
    for (const r of this.runnables.filter((r) => r.needLeaderElection === needLeaderElection)) {
      this.running.push(
        r.start(this.stopRunnables.signal).catch((err: unknown) => {
          this.log.error('Background task failed', { runnable: r.name, err });
          this.fail(new Error(`background task ${r.name} failed`, { cause: err }));
        }),
      );
    }
  }

  /** Adds each server to `servers` as it starts, so a later failure still closes it. */
  private async startServers(servers: RunningServer[]): Promise<void> {
    const metrics = this.opts.metricsBindAddress ?? '127.0.0.1:8080';
    const probes = this.opts.healthProbeBindAddress ?? '127.0.0.1:8081';
    if (metrics !== '0') {
      const server = await listen(metricsApp(registry), parseBindAddress(metrics));
      servers.push(server);
      this.served.metrics = server.address;
      this.log.info('Serving metrics', { ...server.address, path: '/metrics' });
    }
    if (probes !== '0') {
      const server = await listen(
        probesApp({ liveness: this.liveness, readiness: this.readiness }),
        parseBindAddress(probes),
      );
      servers.push(server);
      this.served.probes = server.address;
      this.log.info('Serving probes', { ...server.address, paths: ['/healthz', '/readyz'] });
    }
  }

  /**
   * Stops the controllers, letting in-flight reconciles finish within the grace period, unless
   * leadership was lost: another replica may be leading already, so they are aborted at once (as
   * controller-runtime exits), and nothing more is written on a lease's behalf that is gone.
   */
  private async shutdown(
    election: AbortController,
    leading: Promise<void>,
    leadershipLost: boolean,
  ): Promise<void> {
    const graceMs = this.opts.gracefulShutdownMs ?? 30_000;
    const deadline = this.clock.now() + graceMs;
    if (leadershipLost) {
      this.log.warn('Leadership lost: aborting in-flight reconciles');
      for (const c of this.controllers) c.abort('leadership lost');
    }
    this.log.info('Shutting down: finishing in-flight reconciles', { gracefulShutdownMs: graceMs });
    const drained = await this.within(Promise.all(this.controllers.map((c) => c.stop())), graceMs);
    if (!drained) {
      this.log.warn('Grace period over with reconciles still running; aborting them');
      for (const c of this.controllers) c.abort('shutdown grace period exceeded');
    }
    this.stopRunnables.abort();
    if (!(await this.within(Promise.all(this.running), deadline - this.clock.now()))) {
      this.log.warn('Background tasks did not stop within the grace period');
    }
    election.abort(); // releases the lease
    if (!(await this.within(leading, deadline - this.clock.now()))) {
      this.log.warn('Lease release did not finish within the grace period');
    }
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
    this.log.info('Shutdown complete');
  }

  /** True if `work` settles within `ms`. */
  private async within(work: Promise<unknown>, ms: number): Promise<boolean> {
    const stopTimer = new AbortController();
    const settled = await Promise.race([
      work.then(() => true),
      sleep(this.clock, Math.max(0, ms), stopTimer.signal).then(() => false),
    ]);
    stopTimer.abort();
    return settled;
  }
}

function onTerminationSignals(log: Logger, stop: () => void): () => void {
  let received = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (received) {
      log.warn('Second signal: exiting without cleanup', { signal });
      process.exit(1);
    }
    received = true;
    log.info('Signal received, shutting down', { signal });
    stop();
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  return () => {
    process.off('SIGTERM', handler);
    process.off('SIGINT', handler);
  };
}
