// Leader election on a coordination.k8s.io/v1 Lease: a port of client-go's
// tools/leaderelection. Every write replaces the Lease with the resourceVersion last read, so
// two candidates racing for it get one success and one 409. Lease validity is judged by the
// local clock from the moment a change was observed, never by comparing clocks across hosts.
// client-go does not fence: a deposed leader may still finish a write, so all work it guards
// must be idempotent.
import type { CoordinationV1Api, V1Lease } from '@kubernetes/client-node';
import { realClock, sleep, type Clock } from './clock.js';
import { isNotFound } from './errors.js';
import { MicroTime } from './microtime.js';
import type { Logger } from '../obs/logger.js';
import { setLeaderStatus } from '../obs/metrics.js';

/** The Lease calls made; CoordinationV1Api provides them, tests use an in-memory fake. */
export type LeaseApi = Pick<
  CoordinationV1Api,
  'readNamespacedLease' | 'createNamespacedLease' | 'replaceNamespacedLease'
>;

export interface LeaderElectionRecord {
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTime: Date;
  renewTime: Date;
  leaseTransitions: number;
}

export interface LeaderCallbacks {
  /** This candidate now leads: start the work only a leader does. */
  onStartedLeading(): void;
  /** Leadership ended (lost, or given up on shutdown); only called after onStartedLeading. */
  onStoppedLeading(): void;
  /** The observed holder changed (including to this candidate). */
  onNewLeader?(identity: string): void;
}

export interface LeaderElectionOptions {
  api: LeaseApi;
  namespace: string;
  /** The Lease's name; also the leader_election_master_status `name` label. */
  name: string;
  /** Unique per candidate, e.g. `${hostname}_${uuid}`. */
  identity: string;
  /** How long a lease is honoured without renewal. Default 15 s. */
  leaseDurationMs?: number;
  /** How long the leader keeps retrying a renewal before it steps down. Default 10 s. */
  renewDeadlineMs?: number;
  /** Pause between attempts. Default 2 s. */
  retryPeriodMs?: number;
  /** Clear the holder when run()'s signal aborts, so another candidate takes over at once. Default true. */
  releaseOnCancel?: boolean;
  callbacks: LeaderCallbacks;
  log: Logger;
  clock?: Clock;
}

const jitterFactor = 1.2;

export class LeaderElector {
  private readonly api: LeaseApi;
  private readonly namespace: string;
  private readonly name: string;
  private readonly identity: string;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly releaseOnCancel: boolean;
  private readonly callbacks: LeaderCallbacks;
  private readonly log: Logger;
  private readonly clock: Clock;

  /** The Lease as last read or written: its resourceVersion guards the next replace. */
  private lease: V1Lease | undefined;
  private observed: LeaderElectionRecord | undefined;
  private observedRaw = '';
  private observedTime = 0;
  private reportedLeader = '';

  constructor(opts: LeaderElectionOptions) {
    this.api = opts.api;
    this.namespace = opts.namespace;
    this.name = opts.name;
    this.identity = opts.identity;
    this.leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    this.releaseOnCancel = opts.releaseOnCancel ?? true;
    this.callbacks = opts.callbacks;
    this.clock = opts.clock ?? realClock;
    this.log = opts.log.child({ lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
    if (!this.identity) throw new Error('leader election needs a non-empty identity');
    if (this.leaseDurationMs <= this.renewDeadlineMs)
      throw new Error('leaseDuration must exceed renewDeadline');
    if (this.renewDeadlineMs <= jitterFactor * this.retryPeriodMs) {
      throw new Error(`renewDeadline must exceed ${jitterFactor} x retryPeriod`);
    }
    setLeaderStatus(this.name, false);
  }

  isLeader(): boolean {
    return this.observed?.holderIdentity === this.identity;
  }

  /** The holder last observed ('' when none). */
  leader(): string {
    return this.observed?.holderIdentity ?? '';
  }

  /**
   * Campaigns until elected, leads until the lease is lost or `signal` aborts (then releases
   * it if releaseOnCancel), and resolves when leadership is over.
   */
  async run(signal: AbortSignal): Promise<void> {
    if (!(await this.acquire(signal))) return;
    setLeaderStatus(this.name, true);
    this.log.info('Became leader');
    this.callbacks.onStartedLeading();
    try {
      await this.renew(signal);
    } finally {
      setLeaderStatus(this.name, false);
      if (signal.aborted && this.releaseOnCancel) await this.release();
      this.callbacks.onStoppedLeading();
    }
  }

  /** One step of client-go's state machine: true when this candidate holds the lease afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date(this.clock.now());
    const desired: LeaderElectionRecord = {
      holderIdentity: this.identity,
      leaseDurationSeconds: Math.round(this.leaseDurationMs / 1000),
      acquireTime: now,
      renewTime: now,
      leaseTransitions: 0,
    };

    // 1. The leader renews optimistically with the version it last wrote.
    if (this.observed && this.isLeader() && this.isLeaseValid(now.getTime())) {
      desired.acquireTime = this.observed.acquireTime;
      desired.leaseTransitions = this.observed.leaseTransitions;
      try {
        await this.update(desired);
        this.setObserved(desired);
        return true;
      } catch (err) {
        this.log.debug('Optimistic renewal failed, reading the lease', { err });
      }
    }

    // 2. Read the lease, creating it if there is none.
    let current: LeaderElectionRecord;
    try {
      current = await this.get();
    } catch (err) {
      if (!isNotFound(err)) {
        this.log.warn('Reading the lease failed', { err });
        return false;
      }
      try {
        await this.create(desired);
      } catch (createErr) {
        this.log.info('Creating the lease failed', { err: createErr });
        return false;
      }
      this.setObserved(desired);
      return true;
    }

    // 3. A change restarts the validity clock; a valid lease held by another is respected.
    const raw = JSON.stringify(current);
    if (raw !== this.observedRaw) {
      this.setObserved(current);
      this.observedRaw = raw;
    }
    if (current.holderIdentity && this.isLeaseValid(now.getTime()) && !this.isLeader()) return false;

    // 4. Take it over (or renew it when it is ours).
    if (this.isLeader()) {
      desired.acquireTime = current.acquireTime;
      desired.leaseTransitions = current.leaseTransitions;
    } else {
      desired.leaseTransitions = current.leaseTransitions + 1;
    }
    try {
      await this.update(desired);
    } catch (err) {
      this.log.info('Updating the lease failed', { err });
      return false;
    }
    this.setObserved(desired);
    return true;
  }

  /** Gives the lease up (empty holder, 1 s duration) if held; true when nothing is left held. */
  async release(): Promise<boolean> {
    if (!this.observed || !this.isLeader()) return true;
    const now = new Date(this.clock.now());
    const released: LeaderElectionRecord = {
      holderIdentity: '',
      leaseDurationSeconds: 1,
      acquireTime: now,
      renewTime: now,
      leaseTransitions: this.observed.leaseTransitions,
    };
    try {
      await this.update(released);
    } catch (err) {
      this.log.warn('Releasing the lease failed', { err });
      return false;
    }
    this.setObserved(released);
    this.log.info('Released the lease');
    return true;
  }

  private async acquire(signal: AbortSignal): Promise<boolean> {
    this.log.info('Attempting to acquire the lease');
    while (!signal.aborted) {
      const acquired = await this.tryAcquireOrRenew();
      this.reportTransition();
      if (acquired) return true;
      await sleep(this.clock, this.retryPeriodMs * (1 + Math.random() * jitterFactor), signal);
    }
    return false;
  }

  /** Renews every retryPeriod; returns when a renewal could not succeed within renewDeadline. */
  private async renew(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const deadline = this.clock.now() + this.renewDeadlineMs;
      let renewed = false;
      while (!signal.aborted) {
        renewed = await this.beforeDeadline(this.tryAcquireOrRenew(), deadline);
        this.reportTransition();
        if (renewed || this.clock.now() >= deadline) break;
        await sleep(this.clock, Math.min(this.retryPeriodMs, deadline - this.clock.now()), signal);
      }
      if (signal.aborted) return;
      if (!renewed) {
        this.log.error('Failed to renew the lease within the deadline, stepping down', {
          renewDeadlineMs: this.renewDeadlineMs,
        });
        return;
      }
      await sleep(this.clock, this.retryPeriodMs, signal);
    }
  }

  /** A hung API call must not keep a leader leading past its deadline: false if it is reached. */
  private beforeDeadline(attempt: Promise<boolean>, deadline: number): Promise<boolean> {
    let timer: ReturnType<Clock['setTimeout']> | undefined;
    const expired = new Promise<boolean>((resolve) => {
      timer = this.clock.setTimeout(() => resolve(false), Math.max(0, deadline - this.clock.now()));
    });
    return Promise.race([attempt, expired]).finally(() => this.clock.clearTimeout(timer!));
  }

  private isLeaseValid(now: number): boolean {
    return !!this.observed && this.observedTime + this.observed.leaseDurationSeconds * 1000 > now;
  }

  private setObserved(record: LeaderElectionRecord): void {
    this.observed = record;
    this.observedTime = this.clock.now();
  }

  private reportTransition(): void {
    const holder = this.leader();
    if (holder === this.reportedLeader) return;
    this.reportedLeader = holder;
    if (holder) this.log.info('New leader observed', { leader: holder });
    this.callbacks.onNewLeader?.(holder);
  }

  private async get(): Promise<LeaderElectionRecord> {
    this.lease = await this.api.readNamespacedLease({ name: this.name, namespace: this.namespace });
    const spec = this.lease.spec ?? {};
    return {
      holderIdentity: spec.holderIdentity ?? '',
      leaseDurationSeconds: spec.leaseDurationSeconds ?? 0,
      // Responses carry these as strings whatever the typings say.
      acquireTime: new Date(spec.acquireTime ?? 0),
      renewTime: new Date(spec.renewTime ?? 0),
      leaseTransitions: spec.leaseTransitions ?? 0,
    };
  }

  private async create(record: LeaderElectionRecord): Promise<void> {
    this.lease = await this.api.createNamespacedLease({
      namespace: this.namespace,
      body: { metadata: { name: this.name, namespace: this.namespace }, spec: leaseSpec(record) },
    });
  }

  private async update(record: LeaderElectionRecord): Promise<void> {
    if (!this.lease) throw new Error('the lease has not been read yet');
    this.lease = await this.api.replaceNamespacedLease({
      name: this.name,
      namespace: this.namespace,
      body: { ...this.lease, spec: leaseSpec(record) },
    });
  }
}

function leaseSpec(record: LeaderElectionRecord): V1Lease['spec'] {
  return {
    holderIdentity: record.holderIdentity,
    leaseDurationSeconds: record.leaseDurationSeconds,
    acquireTime: new MicroTime(record.acquireTime.getTime()),
    renewTime: new MicroTime(record.renewTime.getTime()),
    leaseTransitions: record.leaseTransitions,
  };
}
