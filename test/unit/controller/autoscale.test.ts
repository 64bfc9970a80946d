// Built-in autoscaling's decisions: the HPA's replica formula and tolerance, missing reports,
// stabilization windows (today's count counting as a first recommendation), summing usage over
// Hosts, and a Warning when it undoes a scale made by hand.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1ManagedFieldsEntry } from '@kubernetes/client-node';
import { parseSpec, type Host, type Workload } from '../../../src/api/v1alpha1/index.js';
import {
  AutoscaleReconciler,
  autoscalerFieldManager,
  manualScaler,
  recommend,
  stabilize,
  workloadUsage,
  type Sample,
} from '../../../src/controller/autoscale.js';
import { FakeClock } from '../../../src/kube/clock.js';
import { Store } from '../../../src/kube/store.js';
import { ctx, quietRecorder } from './fakes.js';

const base = { current: 4, live: 4, requestCores: 0.5, targetPercent: 50 };

describe('recommend', () => {
  it('scales by usage over target, rounding up', () => {
    // 4 x 0.5 cores requested, using 2 cores = 100% of request, target 50%: twice as many.
    assert.deepEqual(recommend({ ...base, usage: { containers: 4, cpuCores: 2 } }), {
      replicas: 8,
      utilization: 1,
    });
    // 0.5 cores over 4 = 25% of request: half as many.
    assert.equal(recommend({ ...base, usage: { containers: 4, cpuCores: 0.5 } }).replicas, 2);
    assert.equal(recommend({ ...base, usage: { containers: 4, cpuCores: 1.3 } }).replicas, 6);
  });

  it('changes nothing within the 10% tolerance', () => {
    assert.equal(recommend({ ...base, usage: { containers: 4, cpuCores: 1.08 } }).replicas, 4);
    assert.equal(recommend({ ...base, usage: { containers: 4, cpuCores: 0.91 } }).replicas, 4);
  });

  it('has no answer without reports or without a CPU request', () => {
    assert.deepEqual(recommend({ ...base, usage: { containers: 0, cpuCores: 0 } }), {
      replicas: undefined,
      reason: 'NoMetrics',
    });
    assert.equal(
      recommend({ ...base, requestCores: 0, usage: { containers: 4, cpuCores: 1 } }).replicas,
      undefined,
    );
  });

  it('counts Containers without a report as idle on a scale-up', () => {
    // 2 of 4 report 100% of request: without the missing ones 4 replicas; with them idle, 50% = target.
    assert.equal(recommend({ ...base, usage: { containers: 2, cpuCores: 1 } }).replicas, 4);
    // 2 of 4 report 200%: 4 x 100% / 50% = 8.
    assert.equal(recommend({ ...base, usage: { containers: 2, cpuCores: 2 } }).replicas, 8);
  });

  it('counts Containers without a report as fully busy on a scale-down, so they never cause one', () => {
    // 2 of 4 report 10%: the missing at 100% make the mean 55%, within tolerance of 50%.
    assert.equal(recommend({ ...base, usage: { containers: 2, cpuCores: 0.1 } }).replicas, 4);
    // 1 of 8 reports 0%, 7 missing at 100%: 87.5% > target, the direction flips: no change.
    assert.equal(
      recommend({ ...base, current: 8, live: 8, usage: { containers: 1, cpuCores: 0 } }).replicas,
      8,
    );
  });
});

describe('stabilize', () => {
  const windows = { upSeconds: 0, downSeconds: 300 };

  it('scales up at once without an up window', () => {
    assert.equal(stabilize([], 8, 4, 1_000_000, windows).replicas, 8);
  });

  it('scales down only to the highest recommendation of the down window', () => {
    let history: Sample[] = [];
    let replicas = 8;
    const step = (at: number, recommendation: number) => {
      const r = stabilize(history, recommendation, replicas, at * 1000, windows);
      history = r.history;
      replicas = r.replicas;
      return replicas;
    };
    assert.equal(step(0, 8), 8);
    assert.equal(step(15, 2), 8, 'the 8 of 15 s ago holds');
    assert.equal(step(200, 3), 8);
    assert.equal(step(301, 3), 3, 'the 8 has left the window; the highest since is 3');
    assert.equal(step(520, 1), 3);
    assert.equal(step(602, 1), 1);
  });

  it('scales up only to the lowest recommendation of the up window', () => {
    const up = { upSeconds: 60, downSeconds: 0 };
    const first = stabilize([], 10, 2, 0, up);
    assert.equal(first.replicas, 10, 'nothing lower in the window yet');
    const history: Sample[] = [{ at: 0, replicas: 3 }];
    assert.equal(stabilize(history, 10, 2, 30_000, up).replicas, 3);
    assert.equal(stabilize(history, 10, 2, 61_000, up).replicas, 10);
  });

  it('forgets samples older than both windows', () => {
    const history: Sample[] = [
      { at: 0, replicas: 9 },
      { at: 250_000, replicas: 4 },
    ];
    const r = stabilize(history, 5, 5, 400_000, windows);
    assert.deepEqual(r.history, [
      { at: 250_000, replicas: 4 },
      { at: 400_000, replicas: 5 },
    ]);
  });
});

describe('workloadUsage', () => {
  const host = (name: string, usage: NonNullable<Host['status']>['workloadUsage']): Host => ({
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Host',
    metadata: { name },
    spec: { unschedulable: false, drain: false, maxConcurrentMigrations: 2 },
    status: { workloadUsage: usage },
  });

  it('sums the Workload over Hosts with a fresh heartbeat only', () => {
    const hosts = [
      host('a', [
        { namespace: 'ns', workload: 'web', containers: 2, cpuCores: 0.5 },
        { namespace: 'other', workload: 'web', containers: 9, cpuCores: 9 },
      ]),
      host('b', [{ namespace: 'ns', workload: 'web', containers: 1, cpuCores: 0.25 }]),
      host('lost', [{ namespace: 'ns', workload: 'web', containers: 5, cpuCores: 5 }]),
    ];
    assert.deepEqual(
      workloadUsage(hosts, (h) => h !== 'lost', { namespace: 'ns', name: 'web' }),
      { containers: 3, cpuCores: 0.75 },
    );
  });
});

const created = '2026-01-01T00:00:00Z';
const later = '2026-01-01T00:05:00Z';
const ownsReplicas = { 'f:spec': { 'f:replicas': {} } };

function workload(replicas: number, managedFields: V1ManagedFieldsEntry[] = []): Workload {
  const spec = parseSpec('Workload', {
    replicas,
    selector: { matchLabels: { app: 'web' } },
    template: {
      metadata: { labels: { app: 'web' } },
      spec: { image: 'nginx', resources: { requests: { cpu: '100m' } } },
    },
    autoscale: { minReplicas: 1, maxReplicas: 6, targetCPUUtilizationPercent: 50 },
  });
  assert.ok(spec.ok);
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Workload',
    // Raw JSON from the informer: times are strings at run time.
    metadata: { name: 'web', namespace: 'ns', creationTimestamp: created as never, managedFields },
    spec: spec.value,
  };
}

const entry = (manager: string, time: string, fieldsV1: object = ownsReplicas) =>
  ({ manager, operation: 'Update', time: time as never, fieldsV1 }) as V1ManagedFieldsEntry;

describe('manualScaler', () => {
  it('names who set spec.replicas after the Workload was created, other than the autoscaler', () => {
    assert.equal(manualScaler(workload(5, [entry('kubectl-edit', later)])), 'kubectl-edit');
    // What the apiserver records for `kubectl scale`: an entry of the /scale subresource, no time.
    const scaled = { manager: 'kubectl', operation: 'Update', subresource: 'scale', fieldsV1: ownsReplicas };
    assert.equal(manualScaler(workload(1, [scaled])), 'kubectl');
    assert.equal(
      manualScaler(workload(5, [entry('kubectl', later, { 'f:spec': { 'f:template': {} } })])),
      undefined,
      'another field',
    );
    assert.equal(manualScaler(workload(5, [entry(autoscalerFieldManager, later)])), undefined);
    assert.equal(
      manualScaler(workload(3, [entry('kubectl-client-side-apply', created)])),
      undefined,
      'the count it was created with is not a scale',
    );
  });
});

describe('AutoscaleReconciler', () => {
  /** A reconciler over one Workload and one Host reporting `cpuCores` for `containers` of it. */
  function setup(wl: Workload, usage = { containers: 0, cpuCores: 0 }) {
    const clock = new FakeClock(Date.parse(later) + 60_000);
    const workloads = new Store<Workload>();
    workloads.set(wl);
    const hosts = new Store<Host>();
    hosts.set({
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Host',
      metadata: { name: 'h1' },
      spec: { unschedulable: false, drain: false, maxConcurrentMigrations: 2 },
      status: { workloadUsage: [{ namespace: 'ns', workload: 'web', ...usage }] },
    });
    const scaled: number[] = [];
    const events: string[] = [];
    const recorder = quietRecorder(clock);
    recorder.event = (_o, type, reason, _action, note) => void events.push(`${type} ${reason}: ${note}`);
    const reconciler = new AutoscaleReconciler({
      workloads,
      hosts,
      heartbeats: { fresh: () => true },
      syncPeriodMs: 15_000,
      recorder,
      clock,
      scale: async (_name, replicas) => {
        scaled.push(replicas);
        workloads.set({ ...workloads.get('ns/web')!, spec: { ...wl.spec, replicas } });
      },
    });
    return { clock, scaled, events, reconcile: () => reconciler.reconcile('ns/web', ctx) };
  }

  it('says with a Warning when it undoes a scale made by hand, and by whom', async () => {
    const scaled = { manager: 'kubectl', operation: 'Update', subresource: 'scale', fieldsV1: ownsReplicas };
    const a = setup(workload(8, [scaled]));
    await a.reconcile();
    assert.deepEqual(a.scaled, [6]);
    assert.deepEqual(a.events, [
      'Normal SuccessfulRescale: New size: 6; reason: replicas above maxReplicas',
      'Warning ManualScaleOverridden: spec.replicas 8, set by kubectl, overridden to 6: spec.autoscale ' +
        'sets replicas between 1 and 6 (replicas above maxReplicas); to scale by hand, remove spec.autoscale',
    ]);
  });

  it('says nothing more when it changes its own count', async () => {
    const a = setup(workload(8, [entry(autoscalerFieldManager, later)]));
    await a.reconcile();
    assert.deepEqual(a.events, ['Normal SuccessfulRescale: New size: 6; reason: replicas above maxReplicas']);
  });

  it('counts the replicas it first finds as a recommendation: no scale-down before the window passes', async () => {
    // 3 idle replicas: the recommendation is 1, but the count found holds for the 300 s down window.
    const a = setup(workload(3), { containers: 3, cpuCores: 0 });
    await a.reconcile();
    assert.deepEqual(a.scaled, [], 'not at first sight');
    a.clock.advance(290_000);
    await a.reconcile();
    assert.deepEqual(a.scaled, []);
    a.clock.advance(15_000); // the next sync, 305 s after the first look
    await a.reconcile();
    assert.deepEqual(a.scaled, [1]);
  });
});
