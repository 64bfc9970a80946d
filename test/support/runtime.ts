// Recorded facts from the container runtime: each host's containerd says, through its CRI event
// stream and ContainerStatus, when every container was created, started and finished (its own
// clock, in nanoseconds; the local cluster's hosts share this machine's clock). A check such as
// "never more than N replicas ran at once" is computed from those records, not from samples.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ContainerEventResponse, ContainerStatus, CriClient } from '../../src/cri/client.js';
import type { Interval } from './intervals.js';

/** One runtime container's life as its runtime recorded it. Times are Unix nanoseconds. */
export interface RuntimeRun {
  host: string;
  id: string;
  labels: Record<string, string>;
  createdAt?: bigint;
  startedAt?: bigint;
  /** Undefined while it still runs (or never ran). */
  finishedAt?: bigint;
  /** The runtime's events about it, in order. */
  events: { type: string; at: bigint }[];
}

interface Tracked {
  run: RuntimeRun;
  /** Seen in the list taken right after subscribing. */
  listed: boolean;
  removed: boolean;
}

/**
 * Records the life of every container on the given hosts from `start` until `stop`: it subscribes
 * to each runtime's event stream, then lists what exists (with ContainerStatus); `stop` reads the
 * status of everything again. The record checks itself: a container that appears without an event,
 * or vanishes without one, or a stream that broke, makes `stop` throw (it may have missed a life).
 */
export class RuntimeRecorder {
  private readonly tracked = new Map<string, Tracked>();
  private readonly streams: Promise<void>[] = [];
  private readonly abort = new AbortController();
  private readonly problems: string[] = [];

  private constructor(private readonly hosts: Record<string, CriClient>) {}

  static async start(hosts: Record<string, CriClient>): Promise<RuntimeRecorder> {
    const r = new RuntimeRecorder(hosts);
    for (const [host, client] of Object.entries(hosts)) r.streams.push(r.follow(host, client));
    for (const [host, client] of Object.entries(hosts)) {
      const { containers } = await client.listContainers({});
      for (const c of containers) {
        const t = r.track(host, c.id, c.labels);
        t.listed = true;
        t.run.createdAt ??= c.createdAt || undefined;
        await r.readStatus(host, client, c.id);
      }
    }
    return r;
  }

  private track(host: string, id: string, labels: Record<string, string> = {}): Tracked {
    const key = `${host}/${id}`;
    let t = this.tracked.get(key);
    if (!t) {
      t = { run: { host, id, labels, events: [] }, listed: false, removed: false };
      this.tracked.set(key, t);
    }
    if (Object.keys(t.run.labels).length === 0) t.run.labels = labels;
    return t;
  }

  private merge(host: string, s: ContainerStatus): void {
    const run = this.track(host, s.id, s.labels).run;
    if (s.createdAt) run.createdAt = s.createdAt;
    if (s.startedAt) run.startedAt = s.startedAt;
    if (s.finishedAt) run.finishedAt = s.finishedAt;
  }

  private async readStatus(host: string, client: CriClient, id: string): Promise<boolean> {
    try {
      const { status } = await client.containerStatus({ containerId: id });
      if (status) this.merge(host, status);
      return status !== undefined;
    } catch (e) {
      if ((e as { isNotFound?: () => boolean }).isNotFound?.()) return false;
      throw e;
    }
  }

  private async follow(host: string, client: CriClient): Promise<void> {
    try {
      for await (const ev of client.getContainerEvents({}, { signal: this.abort.signal }))
        this.record(host, ev);
      if (!this.abort.signal.aborted) this.problems.push(`${host}: the runtime's event stream ended`);
    } catch (e) {
      this.problems.push(`${host}: the runtime's event stream failed: ${(e as Error).message}`);
    }
  }

  private record(host: string, ev: ContainerEventResponse): void {
    // Events about a sandbox name it, not one of its containers.
    if (ev.podSandboxStatus?.id === ev.containerId) return;
    for (const s of ev.containersStatuses) this.merge(host, s);
    const t = this.track(host, ev.containerId);
    t.run.events.push({ type: ev.containerEventType, at: ev.createdAt });
    if (ev.containerEventType === 'CONTAINER_DELETED_EVENT') t.removed = true;
    if (ev.containerEventType === 'CONTAINER_STOPPED_EVENT') t.run.finishedAt ??= ev.createdAt;
    if (ev.containerEventType === 'CONTAINER_STARTED_EVENT') t.run.startedAt ??= ev.createdAt;
  }

  /**
   * Records the hosts' runtimes while `work` runs: its result and the record, complete once it is
   * done. If `work` throws, the recording ends unread and the error goes on.
   */
  static async during<T>(
    hosts: Record<string, CriClient>,
    work: () => Promise<T>,
  ): Promise<{ result: T; runs: RuntimeRun[] }> {
    const recorder = await RuntimeRecorder.start(hosts);
    let result: T;
    try {
      result = await work();
    } catch (e) {
      await recorder.cancel(); // an open event stream would keep the test's process alive
      throw e;
    }
    return { result, runs: await recorder.stop() };
  }

  /** Ends the recording without reading it (the work it watched failed): the streams close. */
  async cancel(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled(this.streams);
  }

  /** Ends the record and returns every container's life; throws if the record may have a gap. */
  async stop(): Promise<RuntimeRun[]> {
    const present = new Set<string>();
    for (const [host, client] of Object.entries(this.hosts)) {
      const { containers } = await client.listContainers({});
      for (const c of containers) {
        present.add(`${host}/${c.id}`);
        await this.readStatus(host, client, c.id);
      }
    }
    // A removal just before the list may still be on its way here.
    const gone = () => [...this.tracked].filter(([key, t]) => !present.has(key) && !t.removed);
    for (let waited = 0; gone().length > 0 && waited < 5000; waited += 100) await sleep(100);
    this.abort.abort();
    await Promise.all(this.streams);
    for (const [key, t] of this.tracked) {
      if (present.has(key) && !t.listed && t.run.events.length === 0)
        this.problems.push(`${key} exists, but no event about it was received`);
      if (!present.has(key) && !t.removed)
        this.problems.push(`${key} is gone, but its removal was not received`);
      if (!present.has(key) && t.run.startedAt !== undefined && t.run.finishedAt === undefined)
        this.problems.push(`${key} is gone, but when it finished was not received`);
    }
    if (this.problems.length > 0) throw new Error(`incomplete runtime record:\n${this.problems.join('\n')}`);
    return [...this.tracked.values()].map((t) => t.run);
  }
}

/** The runs as intervals from startedAt to finishedAt (runs that never started are left out). */
export function runIntervals(runs: readonly RuntimeRun[]): Interval<RuntimeRun>[] {
  return runs
    .filter((r) => r.startedAt !== undefined)
    .map((r) => ({ item: r, start: r.startedAt!, end: r.finishedAt }));
}

/** A CRI time (Unix ns) as an ISO date with milliseconds, for messages. */
export const nanosIso = (ns: bigint | undefined) =>
  ns === undefined ? 'never' : new Date(Number(ns / 1_000_000n)).toISOString();
