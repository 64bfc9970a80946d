// One Prometheus registry per process. The machinery's metrics carry controller-runtime's and
// client-go's names and labels, so their dashboards and alerts work unchanged; Gantry's own
// metrics register on the same registry with a `gantry_` prefix and base units.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry });
// prom-client names three gauges *_total, a suffix Prometheus reserves for counters (promtool
// check metrics fails on them); their per-type siblings (nodejs_active_handles{type}...) remain.
for (const name of [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
]) {
  registry.removeSingleMetric(name);
}

const registers = [registry];

// controller-runtime's reconcile-time buckets (seconds).
const reconcileBuckets = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.25, 1.5,
  1.75, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
];
// client-go's workqueue buckets: 10 ns .. 1000 s, a decade each.
const queueBuckets = Array.from({ length: 12 }, (_, i) => 1e-8 * 10 ** i);

const reconcileResults = ['success', 'error', 'requeue', 'requeue_after'] as const;
export type ReconcileResultLabel = (typeof reconcileResults)[number];

const reconcileTotal = new Counter({
  name: 'controller_runtime_reconcile_total',
  help: 'Total number of reconciliations per controller',
  labelNames: ['controller', 'result'],
  registers,
});
const reconcileErrors = new Counter({
  name: 'controller_runtime_reconcile_errors_total',
  help: 'Total number of reconciliation errors per controller',
  labelNames: ['controller'],
  registers,
});
const terminalReconcileErrors = new Counter({
  name: 'controller_runtime_terminal_reconcile_errors_total',
  help: 'Total number of terminal reconciliation errors per controller',
  labelNames: ['controller'],
  registers,
});
const reconcileTime = new Histogram({
  name: 'controller_runtime_reconcile_time_seconds',
  help: 'Length of time per reconciliation per controller',
  labelNames: ['controller'],
  buckets: reconcileBuckets,
  registers,
});
const activeWorkers = new Gauge({
  name: 'controller_runtime_active_workers',
  help: 'Number of currently used workers per controller',
  labelNames: ['controller'],
  registers,
});
const maxConcurrentReconciles = new Gauge({
  name: 'controller_runtime_max_concurrent_reconciles',
  help: 'Maximum number of concurrent reconciles per controller',
  labelNames: ['controller'],
  registers,
});

export interface ControllerMetrics {
  reconciled(result: ReconcileResultLabel, seconds: number): void;
  failed(terminal: boolean): void;
  workerStarted(): void;
  workerFinished(): void;
}

/** Registers a controller's series at 0, so rate() and absent() work before the first reconcile. */
export function controllerMetrics(controller: string, workers: number): ControllerMetrics {
  for (const result of reconcileResults) reconcileTotal.inc({ controller, result }, 0);
  reconcileErrors.inc({ controller }, 0);
  terminalReconcileErrors.inc({ controller }, 0);
  reconcileTime.zero({ controller });
  activeWorkers.set({ controller }, 0);
  maxConcurrentReconciles.set({ controller }, workers);
  return {
    reconciled: (result, seconds) => {
      reconcileTotal.inc({ controller, result });
      reconcileTime.observe({ controller }, seconds);
    },
    failed: (terminal) => {
      reconcileErrors.inc({ controller });
      if (terminal) terminalReconcileErrors.inc({ controller });
    },
    workerStarted: () => activeWorkers.inc({ controller }),
    workerFinished: () => activeWorkers.dec({ controller }),
  };
}

/** What a live queue reports at scrape time: seconds of work in progress, and the oldest item's. */
export type UnfinishedWorkProbe = () => { unfinishedSeconds: number; longestRunningSeconds: number };
const unfinishedWorkProbes = new Map<string, UnfinishedWorkProbe>();

const queueDepth = new Gauge({
  name: 'workqueue_depth',
  help: 'Current depth of workqueue',
  labelNames: ['name'],
  registers,
});
const queueAdds = new Counter({
  name: 'workqueue_adds_total',
  help: 'Total number of adds handled by workqueue',
  labelNames: ['name'],
  registers,
});
const queueRetries = new Counter({
  name: 'workqueue_retries_total',
  help: 'Total number of retries handled by workqueue',
  labelNames: ['name'],
  registers,
});
const queueLatency = new Histogram({
  name: 'workqueue_queue_duration_seconds',
  help: 'How long in seconds an item stays in workqueue before being requested',
  labelNames: ['name'],
  buckets: queueBuckets,
  registers,
});
const workDuration = new Histogram({
  name: 'workqueue_work_duration_seconds',
  help: 'How long in seconds processing an item from workqueue takes',
  labelNames: ['name'],
  buckets: queueBuckets,
  registers,
});
new Gauge({
  name: 'workqueue_unfinished_work_seconds',
  help: 'How many seconds of work has been done that is in progress and has not been observed by work_duration',
  labelNames: ['name'],
  registers,
  collect() {
    for (const [name, probe] of unfinishedWorkProbes) this.set({ name }, probe().unfinishedSeconds);
  },
});
new Gauge({
  name: 'workqueue_longest_running_processor_seconds',
  help: 'How many seconds has the longest running processor for workqueue been running',
  labelNames: ['name'],
  registers,
  collect() {
    for (const [name, probe] of unfinishedWorkProbes) this.set({ name }, probe().longestRunningSeconds);
  },
});

export interface WorkQueueMetrics {
  added(): void;
  depth(n: number): void;
  retried(): void;
  /** An item was handed to a worker after waiting this long in the queue. */
  queued(seconds: number): void;
  /** A worker finished an item after working on it this long. */
  worked(seconds: number): void;
}

export function workQueueMetrics(name: string, probe: UnfinishedWorkProbe): WorkQueueMetrics {
  queueAdds.inc({ name }, 0);
  queueRetries.inc({ name }, 0);
  queueDepth.set({ name }, 0);
  queueLatency.zero({ name });
  workDuration.zero({ name });
  unfinishedWorkProbes.set(name, probe);
  return {
    added: () => queueAdds.inc({ name }),
    depth: (n) => queueDepth.set({ name }, n),
    retried: () => queueRetries.inc({ name }),
    queued: (seconds) => queueLatency.observe({ name }, seconds),
    worked: (seconds) => workDuration.observe({ name }, seconds),
  };
}

const restRequests = new Counter({
  name: 'rest_client_requests_total',
  help: 'Number of HTTP requests, partitioned by status code, method, and host',
  labelNames: ['code', 'method', 'host'],
  registers,
});

/** `code` is the HTTP status, or '<error>' when no response came back (client-go's convention). */
export function countRestRequest(code: number | '<error>', method: string, host: string): void {
  restRequests.inc({ code: String(code), method: method.toUpperCase(), host });
}

const leaderStatus = new Gauge({
  name: 'leader_election_master_status',
  help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master',
  labelNames: ['name'],
  registers,
});

export function setLeaderStatus(lease: string, leading: boolean): void {
  leaderStatus.set({ name: lease }, leading ? 1 : 0);
}

const informerRelists = new Counter({
  name: 'gantry_informer_relists_total',
  help: 'Full lists an informer made after its start, by reason (expired: the watch got 410 Gone)',
  labelNames: ['informer', 'reason'],
  registers,
});
const informerWatchRestarts = new Counter({
  name: 'gantry_informer_watch_restarts_total',
  help: 'Watches an informer restarted after a failure, by reason (error, quiet)',
  labelNames: ['informer', 'reason'],
  registers,
});

const relistReasons = ['expired'] as const;
const watchRestartReasons = ['error', 'quiet'] as const;

export interface InformerMetrics {
  relisted(reason: (typeof relistReasons)[number]): void;
  watchRestarted(reason: (typeof watchRestartReasons)[number]): void;
}

export function informerMetrics(informer: string): InformerMetrics {
  for (const reason of relistReasons) informerRelists.inc({ informer, reason }, 0);
  for (const reason of watchRestartReasons) informerWatchRestarts.inc({ informer, reason }, 0);
  return {
    relisted: (reason) => informerRelists.inc({ informer, reason }),
    watchRestarted: (reason) => informerWatchRestarts.inc({ informer, reason }),
  };
}
