// A Container's status as the agent writes it: Ready follows phase and health, kstatus' conditions
// follow Ready, and the apply carries only the agent's own fields (none left undefined).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Container, ContainerStatus } from '../../../src/api/v1alpha1/index.js';
import { readyCondition, StatusWriter } from '../../../src/agent/containers/status.js';
import type { ObjectName } from '../../../src/kube/keys.js';
import { container } from './fakes.js';

describe('readyCondition', () => {
  it('is True only for a running process that is healthy or has no health check', () => {
    assert.equal(readyCondition({ phase: 'Running' }, undefined).status, 'True');
    assert.equal(readyCondition({ phase: 'Running', health: 'Healthy' }, undefined).status, 'True');
    assert.deepEqual(readyCondition({ phase: 'Running', health: 'Starting' }, undefined), {
      type: 'Ready',
      status: 'False',
      reason: 'HealthCheckStarting',
      message: 'Waiting for the first healthy check',
    });
    assert.deepEqual(readyCondition({ phase: 'Running', health: 'Unhealthy' }, 'GET / answered 500'), {
      type: 'Ready',
      status: 'False',
      reason: 'Unhealthy',
      message: 'GET / answered 500',
    });
  });

  it('otherwise carries the reason and message of the phase', () => {
    assert.deepEqual(
      readyCondition({ phase: 'Restarting', reason: 'CrashLoopBackOff', message: 'exit code 1' }, undefined),
      { type: 'Ready', status: 'False', reason: 'CrashLoopBackOff', message: 'exit code 1' },
    );
    assert.equal(readyCondition({ phase: 'Migrating' }, undefined).reason, 'Migrating');
    assert.equal(readyCondition({}, undefined).reason, 'NotRunning');
  });
});

describe('StatusWriter', () => {
  function writer() {
    const writes: { name: ObjectName; status: Partial<ContainerStatus>; opts: object }[] = [];
    const w = new StatusWriter('gantry-agent/h1', {
      applyStatus: async (name, status, opts) => {
        writes.push({ name, status: status as Partial<ContainerStatus>, opts });
        return {} as Container;
      },
    });
    return { w, writes };
  }

  it('applies its fields with Ready and kstatus conditions, as its own field manager', async () => {
    const { w, writes } = writer();
    const c = container('app', {}, { generation: 3 });
    await w.write(c, {
      phase: 'Restarting',
      reason: 'CrashLoopBackOff',
      message: 'exit code 1',
      ip: undefined,
    });
    assert.equal(writes.length, 1);
    const { name, status, opts } = writes[0]!;
    assert.deepEqual(name, { namespace: 'ns', name: 'app' });
    assert.deepEqual(opts, { fieldManager: 'gantry-agent/h1', live: c });
    assert.equal(status.observedGeneration, 3);
    assert.ok(!('ip' in status), 'undefined fields are left out, so an unchanged status is no write');
    assert.deepEqual(
      status.conditions?.map((x) => [x.type, x.status, x.reason, x.observedGeneration]),
      [
        ['Scheduled', 'True', 'Scheduled', 3],
        ['Ready', 'False', 'CrashLoopBackOff', 3],
        ['Stalled', 'True', 'CrashLoopBackOff', 3],
      ],
    );
  });

  it('compares with what it wrote last while the cache has not caught up (no second write of the same)', async () => {
    const writes: object[] = [];
    let next = 7;
    const w = new StatusWriter('gantry-agent/h1', {
      applyStatus: async (_name, _status, opts) => {
        writes.push(opts.live!);
        const base = container('app');
        return { ...base, metadata: { ...base.metadata, resourceVersion: String(next++) } };
      },
    });
    const at = (rv: string, uid = 'app-uid') => {
      const base = container('app');
      return { ...base, metadata: { ...base.metadata, uid, resourceVersion: rv } };
    };
    const first = await w.write(at('5'), { phase: 'Running' });
    await w.write(at('6'), { phase: 'Running' });
    assert.equal(writes[1], first, 'the cache (6) lags behind the write (7): compared with the write');
    const caughtUp = at('9');
    await w.write(caughtUp, { phase: 'Running' });
    assert.equal(writes[2], caughtUp, 'the cache moved past it: compared with the cache');
    const recreated = at('1', 'new-uid');
    await w.write(recreated, { phase: 'Running' });
    assert.equal(writes[3], recreated, 'another object of the same name');
  });

  it('reports Scheduled=True itself, keeping the transition times of conditions that did not flip', async () => {
    const { w, writes } = writer();
    const since = '2026-01-01T00:00:00Z';
    const c = {
      ...container('app'),
      status: {
        conditions: [
          { type: 'Scheduled', status: 'True', reason: 'Scheduled', message: '', lastTransitionTime: since },
          { type: 'Ready', status: 'True', reason: 'Running', message: '', lastTransitionTime: since },
        ],
      },
    } as Container;
    await w.write(c, { phase: 'Running' });
    const conditions = writes[0]!.status.conditions!;
    assert.deepEqual(
      conditions.map((x) => [x.type, x.status, x.lastTransitionTime]),
      [
        ['Scheduled', 'True', since],
        ['Ready', 'True', since],
      ],
      'neither flipped: their transition times stay',
    );
    assert.equal(conditions[0]!.message, `Assigned to host ${c.spec.nodeName}`);
  });
});
