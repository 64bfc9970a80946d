// Recorded facts from the apiserver: a list, then a watch from the list's resourceVersion, kept
// open from before a test's action until after it, records every change of the objects it
// selects, in the order the apiserver made them. Checks of the kind "never more than N at once"
// replay that record instead of polling, which can miss what happens between two polls.
import { setTimeout as sleep } from 'node:timers/promises';
import { Watch, type KubernetesObject } from '@kubernetes/client-node';
import { kubeConfig, kubectlOk } from './cluster.js';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface Recorded<T> {
  type: WatchEventType;
  object: T;
  /** When this process received it (Date.now()); the order of the record is the apiserver's. */
  receivedAt: number;
}

export interface WatchSelectors {
  labelSelector?: string;
  fieldSelector?: string;
}

interface List<T> {
  items: T[];
  metadata: { resourceVersion: string };
}

const keyOf = (o: KubernetesObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/**
 * Every change of the objects under a collection path (e.g.
 * /apis/gantry.dev/v1alpha1/namespaces/x/migrations), from the moment `start` resolves until
 * `stop`. A watch the apiserver closes (it does after a while) is resumed from the last version
 * seen; anything that could have lost a change (410 Gone, an error event, a failed resume) makes
 * `stop` throw, so a check never passes on an incomplete record.
 */
export class WatchRecorder<T extends KubernetesObject> {
  /** The objects as listed before the watch began. */
  initial: T[] = [];
  readonly events: Recorded<T>[] = [];
  private resourceVersion = '';
  private abort: AbortController | undefined;
  private stopped = false;
  private failure: string | undefined;
  private resuming: Promise<void> = Promise.resolve();
  private resumes = 0;

  private constructor(
    private readonly path: string,
    private readonly selectors: WatchSelectors,
  ) {}

  /** Lists, then watches from the list's version; resolves once the watch is established. */
  static async start<T extends KubernetesObject>(
    path: string,
    selectors: WatchSelectors = {},
  ): Promise<WatchRecorder<T>> {
    const r = new WatchRecorder<T>(path, selectors);
    const query = new URLSearchParams(
      Object.entries(selectors).filter((e): e is [string, string] => e[1] !== undefined),
    ).toString();
    const list = JSON.parse(await kubectlOk(['get', '--raw', query ? `${path}?${query}` : path])) as List<T>;
    r.initial = list.items;
    r.resourceVersion = list.metadata.resourceVersion;
    await r.watch();
    return r;
  }

  private async watch(): Promise<void> {
    if (this.stopped) return;
    const params = { ...this.selectors, resourceVersion: this.resourceVersion, allowWatchBookmarks: true };
    this.abort = await new Watch(kubeConfig()).watch(
      this.path,
      params,
      (type: string, object: T) => {
        if (type === 'BOOKMARK') {
          this.resourceVersion = object.metadata?.resourceVersion ?? this.resourceVersion;
          return;
        }
        if (type === 'ERROR') {
          this.fail(`the watch of ${this.path} was answered ${JSON.stringify(object)}`);
          return;
        }
        this.resumes = 0;
        this.events.push({ type: type as WatchEventType, object, receivedAt: Date.now() });
        this.resourceVersion = object.metadata?.resourceVersion ?? this.resourceVersion;
      },
      (err: unknown) => {
        if (this.stopped || this.failure) return;
        // The apiserver ends watches after a while: go on from the last version seen (a version
        // it no longer has is answered 410, an ERROR event, and fails the record).
        if (++this.resumes > 10) {
          this.fail(`the watch of ${this.path} keeps ending (last: ${String(err)})`);
          return;
        }
        this.resuming = sleep(1000)
          .then(() => this.watch())
          .catch((e: unknown) =>
            this.fail(`the watch of ${this.path} ended (${String(err)}) and could not resume: ${String(e)}`),
          );
      },
    );
  }

  private fail(why: string): void {
    this.failure ??= why;
    this.abort?.abort();
  }

  /** Ends the record; throws if it may be incomplete. */
  async stop(): Promise<Recorded<T>[]> {
    this.stopped = true;
    await this.resuming;
    this.abort?.abort();
    if (this.failure) throw new Error(`incomplete record: ${this.failure}`);
    return this.events;
  }

  /**
   * The objects as they stood after each recorded event (the initial list first, as step -1),
   * keyed namespace/name; `visit` sees every state the apiserver went through, in order.
   */
  replay(visit: (live: ReadonlyMap<string, T>, event: Recorded<T> | undefined) => void): void {
    const live = new Map(this.initial.map((o) => [keyOf(o), o]));
    visit(live, undefined);
    for (const e of this.events) {
      if (e.type === 'DELETED') live.delete(keyOf(e.object));
      else live.set(keyOf(e.object), e.object);
      visit(live, e);
    }
  }

  /** The current state of the objects per the record (what replay ends with). */
  current(): Map<string, T> {
    let last = new Map<string, T>();
    this.replay((live) => (last = new Map(live)));
    return last;
  }
}
