import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isApplyNoop } from '../../../src/kube/apply.js';

const live = {
  apiVersion: 'gantry.dev/v1alpha1',
  kind: 'Container',
  metadata: {
    name: 'c',
    namespace: 'ns',
    managedFields: [
      {
        manager: 'gantry-agent/host-1',
        operation: 'Apply',
        subresource: 'status',
        fieldsV1: {
          'f:status': {
            'f:phase': {},
            'f:exitCode': {},
            'f:conditions': { 'k:{"type":"Ready"}': { '.': {}, 'f:status': {}, 'f:type': {} } },
          },
        },
      },
      { manager: 'kubectl', operation: 'Update', fieldsV1: { 'f:spec': { 'f:image': {} } } },
    ],
  },
  spec: { image: 'web' },
  status: {
    phase: 'Running',
    exitCode: 0,
    hostIP: '10.0.0.1',
    conditions: [{ type: 'Ready', status: 'True' }],
  },
};
const agent = 'gantry-agent/host-1';
const applied = (status: object) => ({
  apiVersion: 'gantry.dev/v1alpha1',
  kind: 'Container',
  metadata: { name: 'c', namespace: 'ns' },
  status,
});

describe('isApplyNoop', () => {
  it('is a no-op when every applied field already has that value', () => {
    const status = { phase: 'Running', exitCode: 0, conditions: [{ type: 'Ready', status: 'True' }] };
    assert.equal(isApplyNoop(applied(status), live, agent, 'status'), true);
  });

  it('needs a write when a value differs', () => {
    assert.equal(
      isApplyNoop(
        applied({ phase: 'Exited', exitCode: 0, conditions: [{ type: 'Ready', status: 'True' }] }),
        live,
        agent,
        'status',
      ),
      false,
    );
    assert.equal(
      isApplyNoop(
        applied({ phase: 'Running', exitCode: 0, conditions: [{ type: 'Ready', status: 'False' }] }),
        live,
        agent,
        'status',
      ),
      false,
    );
  });

  it('needs a write when a list changes length', () => {
    const status = { phase: 'Running', exitCode: 0, conditions: [] };
    assert.equal(isApplyNoop(applied(status), live, agent, 'status'), false);
  });

  it('needs a write when a field this manager owned is no longer applied (it must be removed)', () => {
    const status = { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] }; // exitCode dropped
    assert.equal(isApplyNoop(applied(status), live, agent, 'status'), false);
  });

  it('ignores fields other managers own, and other subresources', () => {
    const status = { phase: 'Running', exitCode: 0, conditions: [{ type: 'Ready', status: 'True' }] };
    // hostIP is live but not ours; the main-resource entry of another manager is irrelevant
    assert.equal(isApplyNoop(applied(status), live, agent, 'status'), true);
    // no Apply entry of ours for the main resource: the subset test alone decides
    assert.equal(isApplyNoop({ spec: { image: 'web' } }, live, agent), true);
  });

  it('treats null as "absent" and Dates as their JSON form', () => {
    assert.equal(isApplyNoop({ status: { missing: null } }, live, 'x'), true);
    const withTime = { ...live, status: { startedAt: '2025-01-01T00:00:00.000Z' } };
    assert.equal(
      isApplyNoop({ status: { startedAt: new Date('2025-01-01T00:00:00Z') } }, withTime, 'x'),
      true,
    );
  });

  it('needs a write when there is no live object', () => {
    assert.equal(isApplyNoop({ status: {} }, undefined, agent, 'status'), false);
  });
});
