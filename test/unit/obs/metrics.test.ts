import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  controllerMetrics,
  countRestRequest,
  informerMetrics,
  registry,
  setLeaderStatus,
  workQueueMetrics,
} from '../../../src/obs/metrics.js';

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

describe('metrics', () => {
  it("registers controller-runtime's and client-go's metric names on one registry", async () => {
    const names = (await registry.getMetricsAsJSON()).map((m) => m.name);
    for (const name of [
      'controller_runtime_reconcile_total',
      'controller_runtime_reconcile_errors_total',
      'controller_runtime_terminal_reconcile_errors_total',
      'controller_runtime_reconcile_time_seconds',
      'controller_runtime_active_workers',
      'controller_runtime_max_concurrent_reconciles',
      'workqueue_depth',
      'workqueue_adds_total',
      'workqueue_retries_total',
      'workqueue_queue_duration_seconds',
      'workqueue_work_duration_seconds',
      'workqueue_unfinished_work_seconds',
      'workqueue_longest_running_processor_seconds',
      'rest_client_requests_total',
      'leader_election_master_status',
      'gantry_informer_relists_total',
      'gantry_informer_watch_restarts_total',
      'process_cpu_seconds_total',
      'nodejs_eventloop_lag_seconds',
    ]) {
      assert.ok(names.includes(name), `${name} missing`);
    }
  });

  it('pre-initialises a controller and its queue at zero', async () => {
    controllerMetrics('metrics-test', 3);
    workQueueMetrics('metrics-test', () => ({ unfinishedSeconds: 0, longestRunningSeconds: 0 }));
    const text = await registry.metrics();
    for (const result of ['success', 'error', 'requeue', 'requeue_after']) {
      assert.equal(
        sample(text, `controller_runtime_reconcile_total{controller="metrics-test",result="${result}"}`),
        0,
      );
    }
    for (const series of [
      'controller_runtime_reconcile_errors_total{controller="metrics-test"}',
      'controller_runtime_terminal_reconcile_errors_total{controller="metrics-test"}',
      'controller_runtime_reconcile_time_seconds_count{controller="metrics-test"}',
      'controller_runtime_active_workers{controller="metrics-test"}',
      'workqueue_depth{name="metrics-test"}',
      'workqueue_adds_total{name="metrics-test"}',
      'workqueue_retries_total{name="metrics-test"}',
      'workqueue_queue_duration_seconds_count{name="metrics-test"}',
      'workqueue_work_duration_seconds_count{name="metrics-test"}',
      'workqueue_unfinished_work_seconds{name="metrics-test"}',
      'workqueue_longest_running_processor_seconds{name="metrics-test"}',
    ]) {
      assert.equal(sample(text, series), 0, series);
    }
    assert.equal(sample(text, 'controller_runtime_max_concurrent_reconciles{controller="metrics-test"}'), 3);
  });

  it('counts REST requests by code, method and host', async () => {
    countRestRequest(200, 'get', '10.0.0.1:6443');
    countRestRequest(200, 'GET', '10.0.0.1:6443');
    countRestRequest('<error>', 'PATCH', '10.0.0.1:6443');
    const text = await registry.metrics();
    assert.equal(sample(text, 'rest_client_requests_total{code="200",method="GET",host="10.0.0.1:6443"}'), 2);
    assert.equal(
      sample(text, 'rest_client_requests_total{code="<error>",method="PATCH",host="10.0.0.1:6443"}'),
      1,
    );
  });

  it('reports leadership and informer restarts', async () => {
    setLeaderStatus('metrics-lease', true);
    const informer = informerMetrics('metrics-informer');
    informer.relisted('expired');
    informer.watchRestarted('quiet');
    const text = await registry.metrics();
    assert.equal(sample(text, 'leader_election_master_status{name="metrics-lease"}'), 1);
    assert.equal(
      sample(text, 'gantry_informer_relists_total{informer="metrics-informer",reason="expired"}'),
      1,
    );
    assert.equal(
      sample(text, 'gantry_informer_watch_restarts_total{informer="metrics-informer",reason="error"}'),
      0,
    );
    assert.equal(
      sample(text, 'gantry_informer_watch_restarts_total{informer="metrics-informer",reason="quiet"}'),
      1,
    );
  });
});
