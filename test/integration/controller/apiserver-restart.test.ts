// The controller rides out a kube-apiserver restart: its informers notice the loss, retry with
// backoff, and resume; the leader keeps its Lease (the outage is shorter than the renew
// deadline); nothing exits; an Image created after the restart converges.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Image } from '../../../src/api/v1alpha1/index.js';
import { getCondition } from '../../../src/kube/conditions.js';
import { startApiserver, stopApiserver } from '../../../src/localcluster/cluster.js';
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

const ns = uniqueName('gantry-ctrl-restart');
const image = localCluster().images.web;
const { images } = clients();
let controller: ControllerProcess;

async function createImage(name: string): Promise<void> {
  const obj = {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Image',
    metadata: { name, namespace: ns },
    spec: { image },
  };
  await images.create(obj as Image);
}

async function resolved(name: string, timeoutMs = 20_000): Promise<Image> {
  return eventually(
    `Image ${name} to resolve`,
    async () => {
      const img = await images.get({ namespace: ns, name });
      return getCondition(img?.status?.conditions, 'Resolved')?.status === 'True' ? img : undefined;
    },
    { timeoutMs },
  );
}

describe('kube-apiserver restart', () => {
  before(async () => {
    await installCrds();
    await createNamespace(ns);
    controller = new ControllerProcess([
      ...baseArgs(),
      `--leader-election-namespace=${ns}`,
      '--leader-elect-lease-duration=60s',
      '--leader-elect-renew-deadline=45s',
      '--leader-elect-retry-period=2s',
    ]);
    await controller.waitForLog('leadership', (l) => l.msg === 'Became leader');
  });

  after(async () => {
    await startApiserver(); // in case a failure left it stopped; a no-op when it runs
    const code = await controller?.stop();
    await deleteNamespace(ns);
    assert.equal(code, 0, 'the controller exits 0 after SIGTERM');
  });

  it('reconnects after the apiserver restarts, and an Image created afterwards converges', async () => {
    await createImage('before');
    await resolved('before');

    const seen = controller.logs.length;
    await stopApiserver();
    // Proof that it noticed: its informers fail and retry.
    await controller.waitForLog(
      'a failed watch or list',
      (l) => controller.logs.indexOf(l) >= seen && (l.msg === 'Watch failed' || l.msg === 'List failed'),
    );
    await startApiserver();

    await createImage('after');
    const img = await resolved('after', 40_000);
    assert.match(img.status?.digest ?? '', /^sha256:[0-9a-f]{64}$/);

    assert.ok(controller.running, `the controller is still running:\n${controller.tail()}`);
    const failures = controller.logs.filter((l) => l.level === 'error' && l.msg !== 'Reconciler error');
    assert.deepEqual(failures, [], 'no errors but retried reconciles');
    assert.equal(await controller.metric('leader_election_master_status', { name: 'gantry-controller' }), 1);
  });
});
