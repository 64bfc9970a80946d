// Writes this process made that its cache has not shown yet. A cache lags behind the apiserver,
// even behind this process's own last write: a reconcile that counts from the cache alone would
// create twice, or place a burst all on one Host. So each write is remembered under the written
// object's key, with what the caller needs to count it (a payload), until it is observed in the
// cache or its time to live passes (a missed watch event must not block forever). The ReplicaSet
// controller and OpenKruise call these expectations; kube-scheduler's assume cache is the same idea.
//
// Observed, two ways: pushed by the caller's informer event handlers (`observe`), or pulled by
// checking the cache when the expectations are read (`pending` with an `observed` test).
import type { Clock } from './clock.js';

export class Expectations<P> {
  private readonly entries = new Map<string, { payload: P; expiresAt: number }>();

  constructor(
    private readonly clock: Clock,
    readonly ttlMs: number,
  ) {}

  /** A write of the object under `key` was made; it replaces what was expected of that key before. */
  expect(key: string, payload: P): void {
    this.entries.set(key, { payload, expiresAt: this.clock.now() + this.ttlMs });
  }

  /**
   * The cache showed the object under `key`: its expectation is met, if `satisfied` says this
   * observation is the one expected (e.g. a delete is met only once the object is going).
   */
  observe(key: string, satisfied: (payload: P) => boolean = () => true): void {
    const entry = this.entries.get(key);
    if (entry && satisfied(entry.payload)) this.entries.delete(key);
  }

  /** A write that failed, or whose object went away, will never be observed. */
  cancel(key: string): void {
    this.entries.delete(key);
  }

  /** Cancels every expectation `match` selects (e.g. all of an owner that is gone). */
  cancelAll(match: (payload: P) => boolean): void {
    for (const [key, entry] of this.entries) if (match(entry.payload)) this.entries.delete(key);
  }

  /**
   * What is still expected. Drops the expired ones, and those `observed` says the cache shows by
   * now (or that no longer matter); returns the payloads of the rest.
   */
  pending(observed: (key: string, payload: P) => boolean = () => false): P[] {
    this.dropExpired();
    const out: P[] = [];
    for (const [key, entry] of this.entries) {
      if (observed(key, entry.payload)) this.entries.delete(key);
      else out.push(entry.payload);
    }
    return out;
  }

  /** Milliseconds until the last pending expectation `match` selects expires; 0 when none is pending. */
  pendingMs(match: (payload: P) => boolean = () => true): number {
    this.dropExpired();
    const now = this.clock.now();
    let latest = 0;
    for (const entry of this.entries.values()) {
      if (match(entry.payload)) latest = Math.max(latest, entry.expiresAt - now);
    }
    return latest;
  }

  private dropExpired(): void {
    const now = this.clock.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(key);
  }
}
