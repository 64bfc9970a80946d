// Built-in autoscaling (Workload spec.autoscale), a HorizontalPodAutoscaler on CPU without a
// metrics server: the agents report each Workload's CPU use in Host.status.workloadUsage, and
// every --autoscale-sync-period this controller
//  - sums it over the Hosts with a fresh heartbeat and compares the mean per reporting Container
//    with template.spec.resources.requests.cpu x targetCPUUtilizationPercent;
//  - computes the HPA's recommendation: ceil(replicas x usage / target), nothing within a 10%
//    tolerance, Containers without a report counted as idle on a scale-up and as fully busy on a
//    scale-down (so a missing report never drives a change);
//  - stabilizes it as the HPA's behavior does: up to the lowest recommendation of the scale-up
//    window, down to the highest of the scale-down window; then clamps to min/max;
//  - writes spec.replicas through the /scale subresource, with an event and a metric per change,
//    and a Warning event when that undoes a scale made by hand (kubectl scale, an edit, a GitOps
//    sync): the user learns why their count did not hold.
// spec.replicas 0 pauses it, as it pauses an HPA. With GitOps, leave spec.replicas out of Git
// while autoscale is on, or every sync undoes the autoscaler (as with an HPA).
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { Counter, Gauge } from 'prom-client';
import {
  GROUP,
  parseSpec,
  VERSION,
  WorkloadKind,
  type Host,
  type Workload,
  type WorkloadSpec,
} from '../api/v1alpha1/index.js';
import { realClock, type Clock } from '../kube/clock.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../kube/controller.js';
import type { EventRecorder } from '../kube/events.js';
import { splitKey, type ObjectName } from '../kube/keys.js';
import { watch } from '../kube/manager.js';
import type { Cache } from '../kube/store.js';
import { registry } from '../obs/metrics.js';
import { sharedCaches, type Heartbeats } from './caches.js';
import type { ControllerContext } from './context.js';
import { amounts } from './scheduler.js';

/** The HPA's default tolerance (--horizontal-pod-autoscaler-tolerance). */
export const tolerance = 0.1;

/** The field manager of the autoscaler's writes to /scale. */
export const autoscalerFieldManager = 'gantry-autoscaler';

const decisions = new Counter({
  name: 'gantry_autoscale_decisions_total',
  help: 'Changes of spec.replicas made by built-in autoscaling, by direction (up, down)',
  labelNames: ['namespace', 'workload', 'direction'],
  registers: [registry],
});
const desiredReplicas = new Gauge({
  name: 'gantry_autoscale_desired_replicas',
  help: 'Replicas built-in autoscaling wants for the Workload after stabilization and min/max',
  labelNames: ['namespace', 'workload'],
  registers: [registry],
});
const utilization = new Gauge({
  name: 'gantry_autoscale_cpu_utilization_ratio',
  help: "Mean CPU use of the Workload's reporting Containers divided by their CPU request",
  labelNames: ['namespace', 'workload'],
  registers: [registry],
});

export interface Usage {
  /** Containers with a CPU report. */
  containers: number;
  /** Their CPU use together, in cores. */
  cpuCores: number;
}

export interface RecommendInput {
  /** spec.replicas. */
  current: number;
  /** The Workload's live Containers (status.replicas): those without a report are "missing". */
  live: number;
  usage: Usage;
  /** template.spec.resources.requests.cpu, in cores. */
  requestCores: number;
  targetPercent: number;
}

export type Recommendation =
  { replicas: number; utilization: number } | { replicas: undefined; reason: 'NoMetrics' };

/** The HPA's replica calculation for a CPU utilization target (ReplicaCalculator.GetResourceReplicas). */
export function recommend(input: RecommendInput): Recommendation {
  const { current, usage, requestCores, targetPercent } = input;
  if (usage.containers === 0 || requestCores <= 0) return { replicas: undefined, reason: 'NoMetrics' };
  const target = targetPercent / 100;
  const utilizationOf = (cores: number, containers: number) => cores / (containers * requestCores);
  const measured = utilizationOf(usage.cpuCores, usage.containers);
  const ratio = measured / target;
  const missing = Math.max(0, input.live - usage.containers);
  if (missing === 0) {
    if (Math.abs(1 - ratio) <= tolerance) return { replicas: current, utilization: measured };
    return { replicas: Math.ceil(ratio * usage.containers), utilization: measured };
  }
  // Missing reports: idle on a scale-up, busy (at least the target) on a scale-down.
  const assumed = ratio < 1 ? missing * requestCores * Math.max(1, target) : 0;
  const all = usage.containers + missing;
  const newRatio = utilizationOf(usage.cpuCores + assumed, all) / target;
  const flips = (ratio < 1 && newRatio > 1) || (ratio > 1 && newRatio < 1);
  if (Math.abs(1 - newRatio) <= tolerance || flips) return { replicas: current, utilization: measured };
  const replicas = Math.ceil(newRatio * all);
  if ((newRatio < 1 && replicas > current) || (newRatio > 1 && replicas < current))
    return { replicas: current, utilization: measured };
  return { replicas, utilization: measured };
}

export interface Sample {
  at: number;
  replicas: number;
}

/**
 * The HPA's stabilizeRecommendationWithBehaviors: the current count moves up to at most the lowest
 * recommendation of the scale-up window and down to at least the highest of the scale-down window.
 * Returns the stabilized count and the history to keep (this recommendation included).
 */
export function stabilize(
  history: readonly Sample[],
  recommendation: number,
  current: number,
  now: number,
  windows: { upSeconds: number; downSeconds: number },
): { replicas: number; history: Sample[] } {
  const upCutoff = now - windows.upSeconds * 1000;
  const downCutoff = now - windows.downSeconds * 1000;
  let up = recommendation;
  let down = recommendation;
  for (const s of history) {
    if (s.at > upCutoff) up = Math.min(up, s.replicas);
    if (s.at > downCutoff) down = Math.max(down, s.replicas);
  }
  const replicas = Math.min(Math.max(current, up), down);
  const oldest = Math.min(upCutoff, downCutoff);
  return {
    replicas,
    history: [...history.filter((s) => s.at > oldest), { at: now, replicas: recommendation }],
  };
}

/** The Workload's usage summed over the Hosts that still send heartbeats. */
export function workloadUsage(
  hosts: readonly Host[],
  fresh: (host: string) => boolean,
  wl: ObjectName,
): Usage {
  const usage: Usage = { containers: 0, cpuCores: 0 };
  for (const host of hosts) {
    if (!fresh(host.metadata.name!)) continue;
    for (const u of host.status?.workloadUsage ?? []) {
      if (u.namespace !== wl.namespace || u.workload !== wl.name) continue;
      usage.containers += u.containers;
      usage.cpuCores += u.cpuCores;
    }
  }
  return usage;
}

/**
 * Who scaled the Workload by hand: the field manager other than the autoscaler that set
 * spec.replicas after the Workload was created (its managedFields say who owns the field, and
 * since when), if any. The count it was created with is not a scale. A write through /scale
 * (kubectl scale) has an entry without a time: a scale, since /scale cannot create.
 */
export function manualScaler(wl: Workload): string | undefined {
  const created = Date.parse(String(wl.metadata.creationTimestamp ?? ''));
  return wl.metadata.managedFields?.find((m) => {
    const spec = (m.fieldsV1 as Record<string, Record<string, unknown> | undefined> | undefined)?.['f:spec'];
    return (
      m.manager !== autoscalerFieldManager &&
      spec?.['f:replicas'] !== undefined &&
      (m.subresource === 'scale' || Date.parse(String(m.time ?? '')) > created)
    );
  })?.manager;
}

export function setupAutoscaleController(ctx: ControllerContext): void {
  const caches = sharedCaches(ctx, realClock);
  const api = ctx.client.api(CustomObjectsApi);
  ctx.manager.controller({
    name: 'autoscale',
    kind: 'Workload',
    reconciler: new AutoscaleReconciler({
      workloads: caches.workloads.cache,
      hosts: caches.hosts.cache,
      heartbeats: caches.heartbeats,
      syncPeriodMs: ctx.options.autoscaleSyncPeriodMs,
      recorder: ctx.recorder,
      scale: async (name, replicas) => {
        await api.patchNamespacedCustomObjectScale(
          {
            group: GROUP,
            version: VERSION,
            plural: WorkloadKind.plural,
            namespace: name.namespace!,
            name: name.name,
            body: { spec: { replicas } },
            fieldManager: autoscalerFieldManager,
          },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
      },
    }),
    watches: [watch(caches.workloads)],
  });
}

export interface AutoscaleDeps {
  workloads: Cache<Workload>;
  hosts: Cache<Host>;
  heartbeats: Pick<Heartbeats, 'fresh'>;
  syncPeriodMs: number;
  recorder: EventRecorder;
  /** Sets spec.replicas through /scale. */
  scale(name: ObjectName, replicas: number): Promise<void>;
  clock?: Clock;
}

export class AutoscaleReconciler implements Reconciler {
  private readonly clock: Clock;
  private readonly history = new Map<string, Sample[]>();
  private readonly lastRun = new Map<string, number>();

  constructor(private readonly deps: AutoscaleDeps) {
    this.clock = deps.clock ?? realClock;
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const wl = this.deps.workloads.get(key);
    const parsed = wl && parseSpec('Workload', wl.spec);
    const name = splitKey(key);
    if (!wl || !parsed?.ok || !parsed.value.autoscale) return this.forget(key, name);
    const now = this.clock.now();
    const wait = (this.lastRun.get(key) ?? -Infinity) + this.deps.syncPeriodMs - now;
    if (wait > 0) return { requeueAfter: wait };
    this.lastRun.set(key, now);
    const current = parsed.value.replicas;
    if (current === 0) return { requeueAfter: this.deps.syncPeriodMs }; // paused, as an HPA is at 0
    const decision = this.decide(key, wl, parsed.value, now);
    if (!decision) {
      this.deps.recorder.event(
        wl,
        'Warning',
        'FailedGetResourceMetric',
        'Autoscale',
        'No Host reports CPU use of this Workload yet',
      );
      return { requeueAfter: this.deps.syncPeriodMs };
    }
    const labels = { namespace: name.namespace!, workload: name.name };
    desiredReplicas.set(labels, decision.replicas);
    if (decision.replicas !== current) {
      await this.deps.scale(name, decision.replicas);
      decisions.inc({ ...labels, direction: decision.replicas > current ? 'up' : 'down' });
      ctx.log.info('Autoscaled', { from: current, to: decision.replicas, why: decision.why });
      this.deps.recorder.event(
        wl,
        'Normal',
        'SuccessfulRescale',
        'Autoscale',
        `New size: ${decision.replicas}; reason: ${decision.why}`,
      );
      const scaler = manualScaler(wl);
      if (scaler) {
        const { minReplicas, maxReplicas } = parsed.value.autoscale;
        this.deps.recorder.event(
          wl,
          'Warning',
          'ManualScaleOverridden',
          'Autoscale',
          `spec.replicas ${current}, set by ${scaler}, overridden to ${decision.replicas}: spec.autoscale ` +
            `sets replicas between ${minReplicas} and ${maxReplicas} (${decision.why}); ` +
            'to scale by hand, remove spec.autoscale',
        );
      }
    }
    return { requeueAfter: this.deps.syncPeriodMs };
  }

  /** The replica count to have, and why; undefined without CPU reports. */
  private decide(
    key: string,
    wl: Workload,
    spec: WorkloadSpec,
    now: number,
  ): { replicas: number; why: string } | undefined {
    const auto = spec.autoscale!;
    const current = spec.replicas;
    if (current > auto.maxReplicas) return { replicas: auto.maxReplicas, why: 'replicas above maxReplicas' };
    if (current < auto.minReplicas) return { replicas: auto.minReplicas, why: 'replicas below minReplicas' };
    const name = splitKey(key);
    const rec = recommend({
      current,
      live: wl.status?.replicas ?? current,
      usage: workloadUsage(this.deps.hosts.list(), (h) => this.deps.heartbeats.fresh(h), name),
      requestCores: amounts(spec.template.spec.resources?.requests).cpuMilli / 1000,
      targetPercent: auto.targetCPUUtilizationPercent,
    });
    if (rec.replicas === undefined) return undefined;
    utilization.set({ namespace: name.namespace!, workload: name.name }, rec.utilization);
    // As the HPA's first look does: today's count is a recommendation, so a Workload just created
    // (or a controller just started) waits out the scale-down window before going below it.
    const history = this.history.get(key) ?? [{ at: now, replicas: current }];
    const stable = stabilize(history, rec.replicas, current, now, {
      upSeconds: auto.scaleUpStabilizationSeconds,
      downSeconds: auto.scaleDownStabilizationSeconds,
    });
    this.history.set(key, stable.history);
    const percent = Math.round(rec.utilization * 100);
    return {
      replicas: Math.min(auto.maxReplicas, Math.max(auto.minReplicas, stable.replicas)),
      why: `cpu utilization ${percent}% of request, target ${auto.targetCPUUtilizationPercent}%`,
    };
  }

  private forget(key: string, name: ObjectName): void {
    this.history.delete(key);
    this.lastRun.delete(key);
    const labels = { namespace: name.namespace!, workload: name.name };
    desiredReplicas.remove(labels);
    utilization.remove(labels);
  }
}
