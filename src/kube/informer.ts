// An informer keeps a local cache of one resource in step with the apiserver and tells handlers
// what changed. Like client-go's reflector:
//  - list, then watch from the list's resourceVersion, with bookmarks so that version stays
//    fresh, and timeoutSeconds so the server ends each watch after 5-10 minutes;
//  - a watch the server ends normally is resumed at once from the last version seen;
//  - 410 Gone (as the HTTP status or an ERROR event) means that version is compacted away:
//    relist, and deliver deletes for objects that vanished meanwhile;
//  - any other failure, or a watch with no event (not even a bookmark) for quietTimeoutMs,
//    is retried with jittered, capped backoff from the last version seen;
//  - an optional periodic resync re-delivers every cached object as an update.
import type { KubernetesObject } from '@kubernetes/client-node';
import { Backoff, type BackoffOptions } from './backoff.js';
import type { KubeClient } from './client.js';
import { realClock, sleep, type Clock, type TimerHandle } from './clock.js';
import { isGone, StatusError } from './errors.js';
import { objectKey } from './keys.js';
import { Store, type Cache, type IndexFunc } from './store.js';
import type { Logger } from '../obs/logger.js';
import { informerMetrics, type InformerMetrics } from '../obs/metrics.js';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent {
  type: WatchEventType;
  /** The object, or a metav1.Status for ERROR. */
  object: KubernetesObject & { code?: number; message?: string };
}

/** The two calls an informer makes; the real one is restListWatcher, tests pass fakes. */
export interface ListWatcher<T extends KubernetesObject> {
  list(signal: AbortSignal): Promise<{ items: T[]; resourceVersion: string }>;
  /**
   * Delivers events until the server ends the watch (resolves) or it fails (rejects); if
   * onEvent throws, the watch ends and rejects with that error.
   */
  watch(
    opts: { resourceVersion: string; timeoutSeconds: number; signal: AbortSignal },
    onEvent: (event: WatchEvent) => void,
  ): Promise<void>;
}

export interface ResourceQuery {
  /**
   * The collection's path: /api/v1/nodes, /apis/coordination.k8s.io/v1/namespaces/x/leases,
   * /apis/gantry.dev/v1alpha1/containers (all namespaces) ...
   */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
}

const listPageSize = 500;

/** A list response as JSON (client-node's V1ListMeta renames `continue` to `_continue`). */
interface RawList<T> {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items: T[];
}

export function restListWatcher<T extends KubernetesObject>(
  client: KubeClient,
  query: ResourceQuery,
): ListWatcher<T> {
  const selectors = { labelSelector: query.labelSelector, fieldSelector: query.fieldSelector };
  return {
    async list(signal) {
      const items: T[] = [];
      let resourceVersion = '';
      let next: string | undefined;
      do {
        const page = await client.requestJSON<RawList<T>>('GET', query.path, {
          query: { ...selectors, limit: listPageSize, continue: next },
          signal,
        });
        // Items of a list response carry no kind/apiVersion; handlers and SSA want them.
        const kind = page.kind?.replace(/List$/, '');
        for (const item of page.items) items.push({ ...item, apiVersion: page.apiVersion, kind });
        resourceVersion = page.metadata?.resourceVersion ?? '';
        next = page.metadata?.continue || undefined;
      } while (next);
      return { items, resourceVersion };
    },

    async watch({ resourceVersion, timeoutSeconds, signal }, onEvent) {
      const res = await client.request('GET', query.path, {
        query: { ...selectors, watch: true, allowWatchBookmarks: true, resourceVersion, timeoutSeconds },
        signal,
      });
      res.setEncoding('utf8');
      let buffered = '';
      for await (const chunk of res) {
        buffered += chunk as string;
        for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line) onEvent(JSON.parse(line) as WatchEvent);
        }
      }
    },
  };
}

export interface EventHandler<T> {
  onAdd?(obj: T): void;
  /** Also called on resync, with old === new. */
  onUpdate?(oldObj: T, newObj: T): void;
  /** `obj` is the last state seen (after a relist, the cached one). */
  onDelete?(obj: T): void;
}

export interface InformerOptions<T extends KubernetesObject> {
  /** For logs and the gantry_informer_* metrics' `informer` label. */
  name: string;
  listWatcher: ListWatcher<T>;
  log: Logger;
  indexers?: Record<string, IndexFunc<T>>;
  /** Re-deliver every cached object as an update this often; 0 (default) turns it off. */
  resyncPeriodMs?: number;
  /** Each watch asks the server to end it after this long times a random 1..2. Default 300. */
  watchTimeoutSeconds?: number;
  /** A watch that delivers nothing (bookmarks included) for this long is restarted. Default 180 s. */
  quietTimeoutMs?: number;
  /** Delay between failed attempts. Default 800 ms doubling to 30 s. */
  backoff?: BackoffOptions;
  clock?: Clock;
}

export class Informer<T extends KubernetesObject> {
  readonly name: string;
  private readonly store: Store<T>;
  private readonly listWatcher: ListWatcher<T>;
  private readonly handlers: EventHandler<T>[] = [];
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly backoff: Backoff;
  private readonly metrics: InformerMetrics;
  private readonly resyncPeriodMs: number;
  private readonly watchTimeoutSeconds: number;
  private readonly quietTimeoutMs: number;
  private readonly stopping = new AbortController();
  private readonly syncWaiters: (() => void)[] = [];
  private resyncTimer: TimerHandle | undefined;
  private running: Promise<void> | undefined;
  private synced = false;
  private resourceVersion = '';
  private listedAt = 0;

  constructor(opts: InformerOptions<T>) {
    this.name = opts.name;
    this.listWatcher = opts.listWatcher;
    this.store = new Store<T>(opts.indexers);
    this.clock = opts.clock ?? realClock;
    this.log = opts.log.child({ informer: opts.name });
    this.backoff = new Backoff(opts.backoff);
    this.metrics = informerMetrics(opts.name);
    this.resyncPeriodMs = opts.resyncPeriodMs ?? 0;
    this.watchTimeoutSeconds = opts.watchTimeoutSeconds ?? 300;
    this.quietTimeoutMs = opts.quietTimeoutMs ?? 180_000;
  }

  /** The cache; read-only for callers. */
  get cache(): Cache<T> {
    return this.store;
  }

  /** True once the first list has been stored and delivered. */
  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves true once synced, or false if `signal` aborts or the informer stops first. */
  waitForSync(signal?: AbortSignal): Promise<boolean> {
    if (this.synced) return Promise.resolve(true);
    if (signal?.aborted || this.stopping.signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const giveUp = (): void => resolve(false);
      signal?.addEventListener('abort', giveUp, { once: true });
      this.stopping.signal.addEventListener('abort', giveUp, { once: true });
      this.syncWaiters.push(() => {
        signal?.removeEventListener('abort', giveUp);
        resolve(true);
      });
    });
  }

  /** Adds a handler; objects already cached are delivered to it as adds. */
  addEventHandler(handler: EventHandler<T>): void {
    this.handlers.push(handler);
    if (this.synced) for (const obj of this.store.list()) this.call(handler, 'onAdd', obj);
  }

  start(): void {
    if (this.running) return;
    this.log.info('Starting informer');
    this.running = this.run();
    if (this.resyncPeriodMs > 0) this.scheduleResync();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    if (this.resyncTimer !== undefined) this.clock.clearTimeout(this.resyncTimer);
    await this.running;
  }

  private async run(): Promise<void> {
    const signal = this.stopping.signal;
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.list(signal);
          needList = false;
          continue; // re-check the signal: stop() may have come during the list
        }
        const ending = await this.watch(signal);
        if (ending === 'quiet') {
          this.metrics.watchRestarted('quiet');
          this.log.info('Watch went quiet, restarting it', { quietTimeoutMs: this.quietTimeoutMs });
          await sleep(this.clock, this.backoff.next(), signal);
        }
      } catch (err) {
        if (signal.aborted) break;
        if (isGone(err)) {
          // Not a failure: the server no longer has our version. Relist at once, unless we
          // only just listed (a server answering 410 to every watch must not make us spin).
          this.metrics.relisted('expired');
          this.log.info('Watch expired, relisting', { resourceVersion: this.resourceVersion });
          needList = true;
          if (this.clock.now() - this.listedAt < 1000) await sleep(this.clock, this.backoff.next(), signal);
          continue;
        }
        const delayMs = this.backoff.next();
        if (!needList) this.metrics.watchRestarted('error');
        this.log.warn(needList ? 'List failed' : 'Watch failed', { err, retryInMs: Math.round(delayMs) });
        await sleep(this.clock, delayMs, signal);
      }
    }
    this.log.info('Informer stopped');
  }

  private async list(signal: AbortSignal): Promise<void> {
    const { items, resourceVersion } = await this.listWatcher.list(signal);
    const seen = new Set<string>();
    for (const obj of items) {
      seen.add(objectKey(obj));
      const old = this.store.set(obj);
      if (!old) this.notify('onAdd', obj);
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion)
        this.notify('onUpdate', old, obj);
    }
    for (const key of this.store.keys()) {
      if (seen.has(key)) continue;
      const gone = this.store.delete(key)!;
      this.notify('onDelete', gone);
    }
    this.resourceVersion = resourceVersion;
    this.listedAt = this.clock.now();
    this.backoff.reset();
    this.log.debug('Listed', { objects: items.length, resourceVersion });
    if (!this.synced) {
      this.synced = true;
      for (const resolve of this.syncWaiters.splice(0)) resolve();
    }
  }

  /** One watch; 'closed' when the server ended it normally, 'quiet' when we gave up waiting. */
  private async watch(stop: AbortSignal): Promise<'closed' | 'quiet'> {
    const abort = new AbortController();
    const onStop = (): void => abort.abort();
    stop.addEventListener('abort', onStop, { once: true });
    let quiet = false;
    let timer: TimerHandle | undefined;
    const armQuietTimer = (): void => {
      if (timer !== undefined) this.clock.clearTimeout(timer);
      timer = this.clock.setTimeout(() => {
        quiet = true;
        abort.abort();
      }, this.quietTimeoutMs);
    };
    armQuietTimer();
    const started = this.clock.now();
    let events = 0;
    try {
      const timeoutSeconds = Math.round(this.watchTimeoutSeconds * (1 + Math.random()));
      await this.listWatcher.watch(
        { resourceVersion: this.resourceVersion, timeoutSeconds, signal: abort.signal },
        (event) => {
          events++;
          armQuietTimer();
          this.backoff.reset();
          this.apply(event);
        },
      );
      // A server (or proxy) that ends every watch at once would otherwise make us spin.
      if (events === 0 && this.clock.now() - started < 1000)
        throw new Error('watch ended at once, without events');
      return 'closed';
    } catch (err) {
      if (quiet && !stop.aborted) return 'quiet';
      throw err;
    } finally {
      if (timer !== undefined) this.clock.clearTimeout(timer);
      stop.removeEventListener('abort', onStop);
      abort.abort(); // ends the request if onEvent threw
    }
  }

  private apply(event: WatchEvent): void {
    const obj = event.object as T;
    switch (event.type) {
      case 'ERROR': {
        const status = event.object;
        throw new StatusError(status.code ?? 500, `watch error: ${status.message ?? ''}`);
      }
      case 'BOOKMARK':
        break;
      case 'ADDED':
      case 'MODIFIED': {
        const old = this.store.set(obj);
        if (old) this.notify('onUpdate', old, obj);
        else this.notify('onAdd', obj);
        break;
      }
      case 'DELETED':
        this.store.delete(objectKey(obj));
        this.notify('onDelete', obj);
        break;
    }
    this.resourceVersion = obj.metadata?.resourceVersion ?? this.resourceVersion;
  }

  private scheduleResync(): void {
    this.resyncTimer = this.clock.setTimeout(() => {
      if (this.synced) for (const obj of this.store.list()) this.notify('onUpdate', obj, obj);
      if (!this.stopping.signal.aborted) this.scheduleResync();
    }, this.resyncPeriodMs);
  }

  private notify(kind: 'onAdd' | 'onDelete', obj: T): void;
  private notify(kind: 'onUpdate', oldObj: T, newObj: T): void;
  private notify(kind: keyof EventHandler<T>, a: T, b?: T): void {
    for (const handler of this.handlers) this.call(handler, kind, a, b);
  }

  /** A throwing handler is logged, never allowed to break the informer. */
  private call(handler: EventHandler<T>, kind: keyof EventHandler<T>, a: T, b?: T): void {
    try {
      if (kind === 'onUpdate') handler.onUpdate?.(a, b ?? a);
      else handler[kind]?.(a);
    } catch (err) {
      this.log.error('Event handler failed', { err, event: kind });
    }
  }
}
