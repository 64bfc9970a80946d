import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decideRestart, type BackoffSettings } from '../../../src/agent/restart.js';

const backoff: BackoffSettings = { initialMs: 10_000, maxMs: 300_000, resetAfterMs: 600_000 };
const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));

test('Never and OnFailure leave a finished process alone, by its exit code', () => {
  const run = { exitCode: 0, startedAt: at(0), finishedAt: at(1), backoffStep: 0 };
  assert.deepEqual(decideRestart('Never', run, backoff), { restart: false, phase: 'Succeeded' });
  assert.deepEqual(decideRestart('Never', { ...run, exitCode: 2 }, backoff), {
    restart: false,
    phase: 'Failed',
  });
  assert.deepEqual(decideRestart('OnFailure', run, backoff), { restart: false, phase: 'Succeeded' });
  assert.equal(decideRestart('OnFailure', { ...run, exitCode: 1 }, backoff).restart, true);
});

test('quick crashes double the back-off up to its cap', () => {
  const delays: number[] = [];
  let step = 0;
  for (let i = 0; i < 8; i++) {
    const d = decideRestart(
      'Always',
      { exitCode: 1, startedAt: at(0), finishedAt: at(1), backoffStep: step },
      backoff,
    );
    assert.ok(d.restart);
    delays.push(d.at.getTime() - at(1).getTime());
    step = d.backoffStep;
  }
  assert.deepEqual(
    delays,
    [10, 20, 40, 80, 160, 300, 300, 300].map((s) => s * 1000),
  );
});

test('a long run resets the back-off: the next restart is immediate', () => {
  const d = decideRestart(
    'Always',
    { exitCode: 1, startedAt: at(0), finishedAt: at(700), backoffStep: 5 },
    backoff,
  );
  assert.ok(d.restart);
  assert.equal(d.backoffStep, 0);
  assert.equal(d.at.getTime(), at(700).getTime());
});
