// An events.k8s.io/v1 recorder. Events are best effort: recording never throws into (or waits
// in) the caller, and failures are logged. A repeat of the same (object, reason, note) within
// ten minutes of the last one bumps the existing Event's series instead of creating another,
// so a flapping condition does not flood the namespace.
import {
  PatchStrategy,
  setHeaderOptions,
  type EventsV1Api,
  type EventsV1Event,
  type EventsV1EventSeries,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { realClock, type Clock } from './clock.js';
import { isNotFound } from './errors.js';
import { MicroTime } from './microtime.js';
import type { Logger } from '../obs/logger.js';

export type EventType = 'Normal' | 'Warning';

/** The Event calls made; EventsV1Api provides them, tests use a fake. */
export type EventsApi = Pick<EventsV1Api, 'createNamespacedEvent' | 'patchNamespacedEvent'>;

export interface EventRecorderOptions {
  api: EventsApi;
  /** e.g. 'gantry.dev/controller'. */
  reportingController: string;
  /** e.g. the pod or host name. */
  reportingInstance: string;
  log: Logger;
  clock?: Clock;
}

const seriesWindowMs = 10 * 60_000;
const maxNoteLength = 1024;

interface Series {
  namespace: string;
  /** Set once the Event exists. */
  name?: string;
  count: number;
  lastObserved: number;
  writeQueued: boolean;
  /** Writes for one series run in order: a repeat patches what the first created. */
  write: Promise<void>;
}

export class EventRecorder {
  private readonly api: EventsApi;
  private readonly reportingController: string;
  private readonly reportingInstance: string;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly series = new Map<string, Series>();
  private sequence = 0;
  private lastPruned = 0;

  constructor(opts: EventRecorderOptions) {
    this.api = opts.api;
    this.reportingController = opts.reportingController;
    this.reportingInstance = opts.reportingInstance;
    this.log = opts.log;
    this.clock = opts.clock ?? realClock;
  }

  /**
   * Records that `action` happened to `regarding` for `reason` (CamelCase), with a human `note`.
   * Returns at once; the write happens in the background.
   */
  event(regarding: KubernetesObject, type: EventType, reason: string, action: string, note: string): void {
    try {
      const now = this.clock.now();
      this.forgetOldSeries(now);
      const meta = regarding.metadata ?? {};
      const namespace = meta.namespace || 'default'; // cluster-scoped objects' events go to default
      const build = (): EventsV1Event => ({
        metadata: { name: `${meta.name ?? 'object'}.${this.uniqueSuffix()}`, namespace },
        eventTime: new MicroTime(this.clock.now()),
        type,
        reason,
        action,
        note: note.length > maxNoteLength ? `${note.slice(0, maxNoteLength - 3)}...` : note,
        reportingController: this.reportingController,
        reportingInstance: this.reportingInstance,
        regarding: {
          apiVersion: regarding.apiVersion,
          kind: regarding.kind,
          name: meta.name,
          namespace: meta.namespace,
          uid: meta.uid,
          resourceVersion: meta.resourceVersion,
        },
      });
      const key = JSON.stringify([meta.uid, regarding.kind, meta.namespace, meta.name, reason, note]);
      const existing = this.series.get(key);
      const series: Series =
        existing && now - existing.lastObserved < seriesWindowMs
          ? existing
          : { namespace, count: 0, lastObserved: now, writeQueued: false, write: Promise.resolve() };
      this.series.set(key, series);
      series.count++;
      series.lastObserved = now;
      // A write already queued will send the latest count; one more would only repeat it.
      if (series.writeQueued) return;
      series.writeQueued = true;
      series.write = series.write.then(() => this.writeSeries(series, build));
    } catch (err) {
      this.log.warn('Recording an event failed', { err, reason });
    }
  }

  /** Resolves once every write started so far has finished (for tests and shutdown). */
  async flush(): Promise<void> {
    await Promise.all([...this.series.values()].map((s) => s.write));
  }

  private async writeSeries(series: Series, build: () => EventsV1Event): Promise<void> {
    series.writeQueued = false; // repeats from now on need another write
    try {
      if (series.name && (await this.patchSeries(series, series.name))) return;
      const body = build();
      if (series.count > 1) body.series = this.seriesOf(series);
      const created = await this.api.createNamespacedEvent({ namespace: series.namespace, body });
      series.name = created.metadata?.name;
    } catch (err) {
      this.log.warn('Writing an event failed', { err, namespace: series.namespace });
    }
  }

  /** false when the Event no longer exists (events expire after an hour). */
  private async patchSeries(series: Series, name: string): Promise<boolean> {
    try {
      await this.api.patchNamespacedEvent(
        { name, namespace: series.namespace, body: { series: this.seriesOf(series) } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  private seriesOf(series: Series): EventsV1EventSeries {
    return { count: series.count, lastObservedTime: new MicroTime(series.lastObserved) };
  }

  private forgetOldSeries(now: number): void {
    if (now - this.lastPruned < 60_000) return;
    this.lastPruned = now;
    for (const [key, s] of this.series) if (now - s.lastObserved >= seriesWindowMs) this.series.delete(key);
  }

  /** client-go names Events `<object>.<hex nanoseconds>`; the sequence keeps same-ms events apart. */
  private uniqueSuffix(): string {
    return (BigInt(this.clock.now()) * 1_000_000n + BigInt(this.sequence++ % 1_000_000)).toString(16);
  }
}
