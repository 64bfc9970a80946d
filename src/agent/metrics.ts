// The node agent's own metrics (gantry_ prefix, base units), on the process registry next to the
// machinery's controller-runtime metrics.
import { Counter, Gauge, Histogram } from 'prom-client';
import { ContainerPhaseSchema } from '../api/v1alpha1/index.js';
import type { CriCallEvent } from '../cri/client.js';
import { registry } from '../obs/metrics.js';

const registers = [registry];

const pullBuckets = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
const callBuckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const startBuckets = [0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300];

export const imagePullDuration = new Histogram({
  name: 'gantry_image_pull_duration_seconds',
  help: 'Time to pull an image through CRI, by result',
  labelNames: ['result'],
  buckets: pullBuckets,
  registers,
});
for (const result of ['success', 'error']) imagePullDuration.zero({ result });

export const imagePullBytes = new Counter({
  name: 'gantry_image_pull_bytes_total',
  help: 'Bytes of images pulled (the size the runtime reports once the pull is done)',
  registers,
});

export const fenced = new Gauge({
  name: 'gantry_agent_fenced',
  help: '1 while this agent, cut off from the apiserver, keeps its Workload replicas stopped (self-fencing)',
  registers,
});

export const imageGcRemovals = new Counter({
  name: 'gantry_image_gc_removed_images_total',
  help: 'Unused images removed because the image filesystem was above its high threshold',
  registers,
});

export const imageGcBytes = new Counter({
  name: 'gantry_image_gc_freed_bytes_total',
  help: 'Bytes of the images removed by image garbage collection (their size as the runtime reports it)',
  registers,
});

const criCallDuration = new Histogram({
  name: 'gantry_cri_call_duration_seconds',
  help: 'Duration of CRI calls, by method and gRPC result code',
  labelNames: ['method', 'result'],
  buckets: callBuckets,
  registers,
});

/** The CRI client's observer: every unary call's duration (the event stream's lifetime is not a call). */
export function observeCriCall(e: CriCallEvent): void {
  if (e.method === 'GetContainerEvents') return;
  criCallDuration.observe({ method: e.method, result: e.codeName }, e.seconds);
}

let phasesNow: () => (string | undefined)[] = () => [];

new Gauge({
  name: 'gantry_containers',
  help: 'Containers bound to this host, by the phase their status shows',
  labelNames: ['phase'],
  registers,
  collect() {
    this.reset();
    for (const phase of ContainerPhaseSchema.options) this.set({ phase }, 0);
    for (const phase of phasesNow()) this.inc({ phase: phase ?? 'Pending' });
  },
});

/** Where gantry_containers reads the phases from at each scrape (the agent's Container cache). */
export function countContainerPhases(source: () => (string | undefined)[]): void {
  phasesNow = source;
}

export const containerRestarts = new Counter({
  name: 'gantry_container_restarts_total',
  help: 'Restarts of a container by the agent (restart policy)',
  labelNames: ['namespace', 'name'],
  registers,
});

export const containerStartDuration = new Histogram({
  name: 'gantry_container_start_duration_seconds',
  help: 'Time from a Container being bound to this host until its process runs (pull included)',
  buckets: startBuckets,
  registers,
});

export const containerCpuUsage = new Gauge({
  name: 'gantry_container_cpu_usage_cores',
  help: 'CPU used by a container, in cores, from CRI stats',
  labelNames: ['namespace', 'name'],
  registers,
});

export const containerMemoryWorkingSet = new Gauge({
  name: 'gantry_container_memory_working_set_bytes',
  help: 'Working-set memory of a container, from CRI stats',
  labelNames: ['namespace', 'name'],
  registers,
});
