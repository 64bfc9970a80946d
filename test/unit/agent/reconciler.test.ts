// What the Container reconciler decides before the runtime is touched: a spec it cannot run is
// reported, not run; behind the fence a Workload replica is removed (a bare Container is not), and
// once the fence is down it starts again only if the apiserver still has it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Container } from '../../../src/api/v1alpha1/index.js';
import { agent, container, ns } from './fakes.js';

const replica = (name: string) =>
  container(
    name,
    {},
    {
      ownerReferences: [
        {
          apiVersion: 'gantry.dev/v1alpha1',
          kind: 'Workload',
          name: 'web',
          uid: 'web-uid',
          controller: true,
        },
      ],
    },
  );

describe('ContainerReconciler', () => {
  it('reports a spec it cannot run as Failed, and runs nothing', async () => {
    const a = agent();
    a.cache.set(container('bad', { restartPolicy: 'Sometimes' as Container['spec']['restartPolicy'] }));
    await a.reconcile('bad');
    assert.equal(a.api.status('bad')?.phase, 'Failed');
    assert.equal(a.api.status('bad')?.reason, 'InvalidSpec');
    assert.match(a.api.status('bad')?.message ?? '', /restartPolicy/);
    assert.deepEqual(a.api.finalizers, [], 'no finalizer for something never run');
    assert.deepEqual(await a.runtime.held('bad-uid'), { sandboxes: [], containers: [] });
  });

  it('behind the fence removes a Workload replica and writes nothing; it starts again if it still exists', async () => {
    const a = agent();
    await a.run(replica('web-1'));
    const bare = await a.run(container('bare'));
    const writes = () => a.api.statuses.filter((s) => s.name === 'web-1').length;
    const before = writes();

    a.fence.up = true;
    await a.reconcile('web-1');
    await a.reconcile('bare');
    assert.deepEqual(await a.runtime.held('web-1-uid'), { sandboxes: [], containers: [] });
    assert.deepEqual(
      (await a.runtime.held('bare-uid')).containers.map((c) => [c.id, c.state]),
      [[bare.id, 'CONTAINER_RUNNING']],
      'a bare Container is not replaced elsewhere: it keeps running',
    );
    await a.reconcile('web-1');
    assert.equal(writes(), before, 'no status written while cut off');

    // Down again, but the controller deleted the replica meanwhile (the cache does not know yet).
    a.fence.up = false;
    const get = a.api.get;
    a.api.get = async () => undefined;
    await a.reconcile('web-1');
    assert.deepEqual(await a.runtime.held('web-1-uid'), { sandboxes: [], containers: [] });

    a.api.get = get;
    await a.reconcile('web-1');
    const { containers } = await a.runtime.held('web-1-uid');
    assert.equal(containers[0]?.state, 'CONTAINER_RUNNING', 'the apiserver still has it: it runs again');
    assert.equal(a.cache.get(`${ns}/web-1`)?.metadata.uid, 'web-1-uid');
  });
});
