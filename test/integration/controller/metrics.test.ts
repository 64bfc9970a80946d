// /metrics of a running, leading controller that has reconciled an Image: controller-runtime's
// and client-go's metric names with their labels, and promtool finds nothing to complain about.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import type { Image } from '../../../src/api/v1alpha1/index.js';
import { getCondition } from '../../../src/kube/conditions.js';
import { localCluster } from '../../support/cluster.js';
import { eventually } from '../../support/wait.js';
import {
  baseArgs,
  clients,
  ControllerProcess,
  createNamespace,
  deleteNamespace,
  installCrds,
  uniqueName,
} from './harness.js';

const ns = uniqueName('gantry-ctrl-metrics');
const { images } = clients();
const apiserverHost = new URL(localCluster().apiServerURL).host;
let controller: ControllerProcess;

describe('controller /metrics', () => {
  before(async () => {
    await installCrds();
    await createNamespace(ns);
    controller = new ControllerProcess([...baseArgs(), `--leader-election-namespace=${ns}`]);
    await controller.waitForLog('leadership', (l) => l.msg === 'Became leader');
    const image = {
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Image',
      metadata: { name: 'web', namespace: ns },
    };
    await images.create({ ...image, spec: { image: localCluster().images.web } } as Image);
    await eventually('the Image to resolve', async () => {
      const img = await images.get({ namespace: ns, name: 'web' });
      return getCondition(img?.status?.conditions, 'Resolved')?.status === 'True';
    });
  });

  after(async () => {
    const code = await controller?.stop();
    await deleteNamespace(ns);
    assert.equal(code, 0);
  });

  it("carries controller-runtime's names and labels", async () => {
    const text = await controller.scrape();
    const series = [
      'controller_runtime_reconcile_total{controller="image",result="success"}',
      'controller_runtime_reconcile_total{controller="image",result="error"}',
      'controller_runtime_reconcile_errors_total{controller="image"}',
      'controller_runtime_reconcile_time_seconds_bucket{le="0.005",controller="image"}',
      'controller_runtime_active_workers{controller="image"}',
      'controller_runtime_max_concurrent_reconciles{controller="image"}',
      'workqueue_depth{name="image"}',
      'workqueue_adds_total{name="image"}',
      'workqueue_retries_total{name="image"}',
      'workqueue_queue_duration_seconds_bucket{le="1e-8",name="image"}',
      'workqueue_work_duration_seconds_count{name="image"}',
      'workqueue_unfinished_work_seconds{name="image"}',
      'workqueue_longest_running_processor_seconds{name="image"}',
      `rest_client_requests_total{code="200",method="GET",host="${apiserverHost}"}`,
      'leader_election_master_status{name="gantry-controller"} 1',
      'process_cpu_seconds_total',
    ];
    for (const s of series) assert.ok(text.includes(s), `${s} is exported`);
    assert.ok(
      (await controller.metric('controller_runtime_reconcile_total', {
        controller: 'image',
        result: 'success',
      }))! >= 1,
    );
    assert.ok((await controller.metric('workqueue_adds_total', { name: 'image' }))! >= 1);
  });

  it('passes promtool check metrics', async () => {
    const text = await controller.scrape();
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(check.error, undefined, 'promtool runs (Debian package prometheus)');
    assert.equal(check.status, 0, `promtool check metrics:\n${check.stdout}${check.stderr}`);
  });
});
