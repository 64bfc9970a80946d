import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planLogRotation } from '../../../src/agent/logrotate.js';

const policy = { maxSizeBytes: 1000, maxFiles: 3 };
const at = new Date('2026-12-03T09:01:02.345Z');

test('a current log file below the maximum size is left alone', () => {
  assert.equal(planLogRotation({ name: '0.log', size: 999 }, ['0.log'], policy, at), undefined);
});

test('at the maximum size it is rotated to a name that sorts by time', () => {
  assert.deepEqual(planLogRotation({ name: '0.log', size: 1000 }, ['0.log'], policy, at), {
    remove: [],
    rotateTo: '0.log.20261203-090102.345',
  });
  const later = planLogRotation({ name: '0.log', size: 1000 }, [], policy, new Date('2026-12-03T10:00:00Z'));
  assert.ok(later!.rotateTo > '0.log.20261203-090102.345');
});

test('the oldest rotated files go, so rotated + the new current file stay within maxFiles', () => {
  const names = [
    '0.log',
    '0.log.20261203-090003.000',
    '0.log.20261203-090001.000',
    '0.log.20261203-090002.000',
    // Another attempt's files and a look-alike are not this container's.
    '1.log',
    '1.log.20261203-080000.000',
    '0.logx',
  ];
  const plan = planLogRotation({ name: '0.log', size: 5000 }, names, policy, at)!;
  // maxFiles 3: one older rotated file + the one rotated now + the new current file.
  assert.deepEqual(plan.remove, ['0.log.20261203-090001.000', '0.log.20261203-090002.000']);
  const kept = names.filter((n) => n.startsWith('0.log.') && !plan.remove.includes(n));
  assert.equal(kept.length + 2, policy.maxFiles);
});

test('with maxFiles 2 every earlier rotated file goes', () => {
  const plan = planLogRotation(
    { name: '0.log', size: 1000 },
    ['0.log', '0.log.20261203-090001.000'],
    { maxSizeBytes: 1000, maxFiles: 2 },
    at,
  )!;
  assert.deepEqual(plan.remove, ['0.log.20261203-090001.000']);
});

test('fewer rotated files than allowed: none removed', () => {
  const plan = planLogRotation(
    { name: '0.log', size: 1000 },
    ['0.log', '0.log.20261203-090001.000'],
    { maxSizeBytes: 1000, maxFiles: 5 },
    at,
  )!;
  assert.deepEqual(plan.remove, []);
});
