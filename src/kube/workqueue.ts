// A work queue with client-go's semantics (util/workqueue): a FIFO of keys plus a `dirty` set
// (keys waiting to be processed) and a `processing` set (keys a worker holds). So:
//  - a burst of adds for one key collapses into one entry;
//  - a key is never handed to two workers at once;
//  - a key added while a worker holds it is queued again when that worker calls done().
// On top of that: delayed adds (a timer heap, earliest first) and rate-limited retries.
// One difference from client-go: after shutdown, get() hands out nothing more, even if keys are
// queued; shutDownWithDrain() waits only for the keys workers already hold.
import { realClock, type Clock, type TimerHandle } from './clock.js';
import { defaultControllerRateLimiter, type RateLimiter } from './ratelimiter.js';
import { workQueueMetrics, type WorkQueueMetrics } from '../obs/metrics.js';

export interface WorkQueueOptions<T> {
  /** The `name` label of the workqueue_* metrics. */
  name: string;
  clock?: Clock;
  /** Defaults to client-go's controller limiter: max(per-item 5 ms..1000 s, 10 qps burst 100). */
  rateLimiter?: RateLimiter<T>;
  /** Defaults to the process registry's workqueue_* series for `name`. */
  metrics?: WorkQueueMetrics;
}

export class WorkQueue<T = string> {
  readonly name: string;
  private readonly clock: Clock;
  private readonly rateLimiter: RateLimiter<T>;
  private readonly metrics: WorkQueueMetrics;

  private readonly fifo = new Fifo<T>();
  private readonly dirty = new Set<T>();
  private readonly processing = new Set<T>();
  private readonly addedAt = new Map<T, number>();
  private readonly startedAt = new Map<T, number>();
  private readonly getters: ((item: T | undefined) => void)[] = [];
  private readonly drained: (() => void)[] = [];
  private stopping = false;

  private readonly waitingUntil = new Map<T, number>();
  private readonly delayed = new TimerHeap<T>();
  private timer: { handle: TimerHandle; at: number } | undefined;

  constructor(opts: WorkQueueOptions<T>) {
    this.name = opts.name;
    this.clock = opts.clock ?? realClock;
    this.rateLimiter = opts.rateLimiter ?? defaultControllerRateLimiter<T>(this.clock);
    this.metrics = opts.metrics ?? workQueueMetrics(opts.name, () => this.unfinishedWork());
  }

  /** Queues `item` unless it is already waiting; ignored after shutdown. */
  add(item: T): void {
    if (this.stopping || this.dirty.has(item)) return;
    this.metrics.added();
    this.dirty.add(item);
    if (!this.addedAt.has(item)) this.addedAt.set(item, this.clock.now());
    if (this.processing.has(item)) return; // done() queues it again
    this.enqueue(item);
  }

  /** The next item to work on, waiting for one if need be; undefined once the queue shuts down. */
  get(): Promise<T | undefined> {
    if (this.stopping) return Promise.resolve(undefined);
    const item = this.fifo.shift();
    if (item !== undefined) return Promise.resolve(this.handOut(item));
    return new Promise((resolve) => this.getters.push(resolve));
  }

  /** A worker finished `item`; if it was added meanwhile, it goes back in the queue. */
  done(item: T): void {
    if (!this.processing.delete(item)) return;
    const started = this.startedAt.get(item) ?? this.clock.now();
    this.startedAt.delete(item);
    this.metrics.worked((this.clock.now() - started) / 1000);
    if (this.dirty.has(item)) this.enqueue(item);
    if (this.processing.size === 0) for (const resolve of this.drained.splice(0)) resolve();
  }

  /** Items queued and not yet handed out. */
  len(): number {
    return this.fifo.length;
  }

  /** Adds `item` once `delayMs` has passed; an item already waiting keeps the earlier time. */
  addAfter(item: T, delayMs: number): void {
    if (this.stopping) return;
    this.metrics.retried();
    if (delayMs <= 0) return this.add(item);
    const at = this.clock.now() + delayMs;
    const current = this.waitingUntil.get(item);
    if (current !== undefined && current <= at) return;
    this.waitingUntil.set(item, at);
    this.delayed.push(item, at);
    this.armTimer();
  }

  /** Adds `item` after the rate limiter's delay for it (a retry after a failure). */
  addRateLimited(item: T): void {
    this.addAfter(item, this.rateLimiter.when(item));
  }

  /** Stops tracking the item's failures: its next retry starts from the shortest delay. */
  forget(item: T): void {
    this.rateLimiter.forget(item);
  }

  numRequeues(item: T): number {
    return this.rateLimiter.numRequeues(item);
  }

  shuttingDown(): boolean {
    return this.stopping;
  }

  /** Stops accepting and handing out items; waiting get() calls resolve to undefined. */
  shutDown(): void {
    this.stopping = true;
    if (this.timer) this.clock.clearTimeout(this.timer.handle);
    this.timer = undefined;
    for (const resolve of this.getters.splice(0)) resolve(undefined);
    if (this.processing.size === 0) for (const resolve of this.drained.splice(0)) resolve();
  }

  /** Shuts down, then resolves once every item a worker holds is done(). */
  shutDownWithDrain(): Promise<void> {
    const drained = new Promise<void>((resolve) => this.drained.push(resolve));
    this.shutDown();
    return drained;
  }

  private enqueue(item: T): void {
    // Waiting workers imply an empty FIFO, so the first of them takes this item at once.
    const getter = this.getters.shift();
    if (getter) return getter(this.handOut(item));
    this.fifo.push(item);
    this.metrics.depth(this.fifo.length);
  }

  private handOut(item: T): T {
    const now = this.clock.now();
    this.metrics.queued((now - (this.addedAt.get(item) ?? now)) / 1000);
    this.addedAt.delete(item);
    this.dirty.delete(item);
    this.processing.add(item);
    this.startedAt.set(item, now);
    this.metrics.depth(this.fifo.length);
    return item;
  }

  private armTimer(): void {
    const next = this.nextDelayed();
    if (this.timer && this.timer.at === next?.at) return;
    if (this.timer) this.clock.clearTimeout(this.timer.handle);
    this.timer = undefined;
    if (!next) return;
    const handle = this.clock.setTimeout(() => this.fireDelayed(), next.at - this.clock.now());
    this.timer = { handle, at: next.at };
  }

  private fireDelayed(): void {
    this.timer = undefined;
    const now = this.clock.now();
    for (let next = this.nextDelayed(); next && next.at <= now; next = this.nextDelayed()) {
      this.delayed.pop();
      this.waitingUntil.delete(next.item);
      this.add(next.item);
    }
    this.armTimer();
  }

  /** The earliest live entry; entries superseded by an earlier addAfter are dropped here. */
  private nextDelayed(): { item: T; at: number } | undefined {
    for (let top = this.delayed.peek(); top; top = this.delayed.peek()) {
      if (this.waitingUntil.get(top.item) === top.at) return top;
      this.delayed.pop();
    }
    return undefined;
  }

  private unfinishedWork(): { unfinishedSeconds: number; longestRunningSeconds: number } {
    const now = this.clock.now();
    let total = 0;
    let longest = 0;
    for (const started of this.startedAt.values()) {
      total += now - started;
      longest = Math.max(longest, now - started);
    }
    return { unfinishedSeconds: total / 1000, longestRunningSeconds: longest / 1000 };
  }
}

/** An array-backed FIFO with O(1) amortised shift. */
class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

/** A binary min-heap on `at`; equal times come out in insertion order. */
class TimerHeap<T> {
  private readonly heap: { item: T; at: number; seq: number }[] = [];
  private seq = 0;

  peek(): { item: T; at: number } | undefined {
    return this.heap[0];
  }

  push(item: T, at: number): void {
    this.heap.push({ item, at, seq: this.seq++ });
    let i = this.heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): void {
    const last = this.heap.pop();
    if (last === undefined || this.heap.length === 0) return;
    this.heap[0] = last;
    for (let i = 0; ;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < this.heap.length && this.less(l, min)) min = l;
      if (r < this.heap.length && this.less(r, min)) min = r;
      if (min === i) return;
      this.swap(i, min);
      i = min;
    }
  }

  private less(a: number, b: number): boolean {
    const x = this.heap[a]!;
    const y = this.heap[b]!;
    return x.at < y.at || (x.at === y.at && x.seq < y.seq);
  }

  private swap(a: number, b: number): void {
    [this.heap[a], this.heap[b]] = [this.heap[b]!, this.heap[a]!];
  }
}
