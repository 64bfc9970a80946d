import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  getCondition,
  isTrue,
  metaTime,
  removeCondition,
  setCondition,
  type Condition,
} from '../../../src/kube/conditions.js';

const t0 = new Date('2025-01-01T00:00:00.123Z');
const t1 = new Date('2025-01-01T00:05:00.456Z');

describe('conditions', () => {
  it('adds a condition with the transition time in whole seconds', () => {
    const list = setCondition(
      undefined,
      { type: 'Ready', status: 'False', reason: 'Pulling', message: 'm' },
      t0,
    );
    assert.deepEqual(list, [
      {
        type: 'Ready',
        status: 'False',
        reason: 'Pulling',
        message: 'm',
        lastTransitionTime: '2025-01-01T00:00:00Z',
      },
    ]);
  });

  it('keeps lastTransitionTime while the status holds, even if reason and message change', () => {
    const before = setCondition([], { type: 'Ready', status: 'False', reason: 'A', message: 'a' }, t0);
    const after = setCondition(
      before,
      { type: 'Ready', status: 'False', reason: 'B', message: 'b', observedGeneration: 3 },
      t1,
    );
    assert.equal(after[0]!.lastTransitionTime, metaTime(t0));
    assert.equal(after[0]!.reason, 'B');
    assert.equal(after[0]!.observedGeneration, 3);
  });

  it('moves lastTransitionTime when the status flips', () => {
    const before = setCondition([], { type: 'Ready', status: 'False', reason: 'A', message: '' }, t0);
    const after = setCondition(before, { type: 'Ready', status: 'True', reason: 'Ready', message: '' }, t1);
    assert.equal(after[0]!.lastTransitionTime, '2025-01-01T00:05:00Z');
  });

  it('is pure: replaces in place by type, keeps order, never mutates the input', () => {
    const input: Condition[] = [
      { type: 'A', status: 'True', reason: 'x', message: '', lastTransitionTime: metaTime(t0) },
      { type: 'B', status: 'True', reason: 'x', message: '', lastTransitionTime: metaTime(t0) },
    ];
    const frozen = structuredClone(input);
    const out = setCondition(input, { type: 'A', status: 'False', reason: 'y', message: '' }, t1);
    assert.deepEqual(input, frozen);
    assert.deepEqual(
      out.map((c) => c.type),
      ['A', 'B'],
    );
    assert.deepEqual(
      setCondition(out, { type: 'C', status: 'Unknown', reason: 'z', message: '' }, t1).map((c) => c.type),
      ['A', 'B', 'C'],
    );
  });

  it('gets, tests and removes by type', () => {
    const list = setCondition([], { type: 'Ready', status: 'True', reason: 'R', message: '' }, t0);
    assert.equal(getCondition(list, 'Ready')?.reason, 'R');
    assert.equal(getCondition(list, 'Other'), undefined);
    assert.equal(isTrue(list, 'Ready'), true);
    assert.equal(isTrue(list, 'Other'), false);
    assert.equal(isTrue(undefined, 'Ready'), false);
    assert.deepEqual(removeCondition(list, 'Ready'), []);
  });
});
