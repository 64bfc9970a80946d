// Gantry's status read the way kstatus reads it (test/support/kstatus.ts): Flux and other GitOps
// tools must see a rollout in progress, a finished one as Current, and a stuck one as Failed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  parseSpec,
  type ContainerStatus,
  type WorkloadSpec,
  type WorkloadStatus,
} from '../../../src/api/v1alpha1/index.js';
import { containerProgress } from '../../../src/agent/containers/status.js';
import type { Replica } from '../../../src/controller/rollout.js';
import { workloadStatus } from '../../../src/controller/workloadstatus.js';
import { progressOf, setCondition, setProgress, type Condition } from '../../../src/kube/conditions.js';
import { kstatus, type KstatusObject } from '../../support/kstatus.js';

const t0 = new Date('2026-01-01T00:00:00Z');
const t1 = new Date('2026-01-01T00:01:00Z');

describe('setProgress', () => {
  it('switches between Reconciling and Stalled, and drops both when Current', () => {
    const reconciling = setProgress([], { state: 'Reconciling', reason: 'Pulling', message: 'm' }, 1, t0);
    assert.deepEqual(
      reconciling.map((c) => [c.type, c.status, c.reason]),
      [['Reconciling', 'True', 'Pulling']],
    );
    const stalled = setProgress(
      reconciling,
      { state: 'Stalled', reason: 'ImageNotFound', message: '' },
      1,
      t1,
    );
    assert.deepEqual(
      stalled.map((c) => [c.type, c.reason]),
      [['Stalled', 'ImageNotFound']],
    );
    assert.deepEqual(setProgress(stalled, { state: 'Current' }, 1, t1), []);
  });

  it('keeps lastTransitionTime while it keeps reconciling, and other conditions untouched', () => {
    const ready: Condition[] = setCondition(
      [],
      { type: 'Ready', status: 'False', reason: 'A', message: '' },
      t0,
    );
    const first = setProgress(ready, { state: 'Reconciling', reason: 'A', message: '' }, 1, t0);
    const later = setProgress(first, { state: 'Reconciling', reason: 'B', message: '' }, 1, t1);
    assert.equal(later.find((c) => c.type === 'Reconciling')?.lastTransitionTime, '2026-01-01T00:00:00Z');
    assert.deepEqual(later[0], ready[0]);
  });

  it('reads Ready: True is Current, a stalled reason is Stalled, anything else Reconciling', () => {
    const ready = (status: 'True' | 'False' | 'Unknown', reason: string) => ({
      type: 'Ready',
      status,
      reason,
      message: '',
    });
    const stuck = new Set(['InvalidSpec']);
    assert.equal(progressOf(ready('True', 'Ready'), stuck).state, 'Current');
    assert.equal(progressOf(ready('False', 'InvalidSpec'), stuck).state, 'Stalled');
    assert.equal(progressOf(ready('Unknown', 'InvalidSpec'), stuck).state, 'Reconciling');
    assert.equal(progressOf(ready('False', 'ScalingUp'), stuck).state, 'Reconciling');
    assert.equal(progressOf(undefined, stuck).state, 'Reconciling');
  });
});

describe('kstatus of a Workload', () => {
  const parsed = parseSpec('Workload', {
    replicas: 2,
    selector: { matchLabels: { app: 'web' } },
    template: { metadata: { labels: { app: 'web' } }, spec: { image: 'registry.example/web:1' } },
  });
  assert.ok(parsed.ok);
  const spec: WorkloadSpec = parsed.value;
  const replica = (name: string, ready: boolean): Replica => ({
    name,
    revision: 'r1',
    ready,
    nodeName: 'h1',
    createdAt: 0,
    deleting: false,
    finished: false,
  });
  const statusAt = (replicas: Replica[], now: number, previous?: WorkloadStatus) =>
    workloadStatus({
      generation: 3,
      spec,
      revision: 'r1',
      replicas,
      previous,
      now,
    });
  const read = (status: WorkloadStatus) =>
    kstatus({ metadata: { generation: 3 }, status: status as KstatusObject['status'] });

  it('is InProgress while replicas come up, Current when all are ready', () => {
    assert.equal(read(statusAt([replica('a', true), replica('b', false)], 1000)), 'InProgress');
    assert.equal(read(statusAt([replica('a', true), replica('b', true)], 1000)), 'Current');
  });

  it('is Failed once the progress deadline passed', () => {
    const stuck = [replica('a', false)];
    const first = statusAt(stuck, 0);
    assert.equal(read(first), 'InProgress');
    assert.equal(read(statusAt(stuck, spec.progressDeadlineSeconds * 1000 + 1000, first)), 'Failed');
  });

  it('is InProgress while the controller has not seen the latest generation', () => {
    assert.equal(
      kstatus({ metadata: { generation: 4 }, status: { observedGeneration: 3, conditions: [] } }),
      'InProgress',
    );
  });
});

describe('kstatus of a Container', () => {
  const read = (s: Partial<ContainerStatus>, ready: { status: 'True' | 'False'; reason: string }) =>
    kstatus({
      metadata: { generation: 1 },
      status: {
        observedGeneration: 1,
        conditions: setProgress([], containerProgress(s, { ...ready, message: '' }), 1),
      },
    });

  it('follows the phase: starting is InProgress, running and ready or completed is Current', () => {
    assert.equal(
      read({ phase: 'Creating', reason: 'Pulling' }, { status: 'False', reason: 'Pulling' }),
      'InProgress',
    );
    assert.equal(
      read({ phase: 'Running' }, { status: 'False', reason: 'HealthCheckStarting' }),
      'InProgress',
    );
    assert.equal(read({ phase: 'Running' }, { status: 'True', reason: 'Running' }), 'Current');
    assert.equal(read({ phase: 'Succeeded' }, { status: 'False', reason: 'Completed' }), 'Current');
  });

  it('is Failed when it failed, crash-loops, or cannot be created as specified', () => {
    assert.equal(read({ phase: 'Failed' }, { status: 'False', reason: 'Error' }), 'Failed');
    assert.equal(read({ phase: 'Restarting' }, { status: 'False', reason: 'CrashLoopBackOff' }), 'Failed');
    assert.equal(read({ phase: 'Creating' }, { status: 'False', reason: 'ImageNotFound' }), 'Failed');
  });
});
