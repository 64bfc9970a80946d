// Which Migration took a followed Container: its own newest one that has not failed, never one
// of an earlier Container of the same name.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Migration } from '../../../src/api/v1alpha1/index.js';
import { latestMove } from '../../../src/plugin/follow.js';

const move = (name: string, container: string, created: string, phase?: string) =>
  ({
    metadata: { name, creationTimestamp: created },
    spec: { container },
    status: phase ? { phase } : undefined,
  }) as unknown as Migration;

describe('latestMove', () => {
  const since = new Date('2026-12-03T20:00:00Z');
  it('is the newest Migration of that Container since it was created, failed ones aside', () => {
    const ms = [
      move('old', 'web', '2026-12-03T19:00:00Z', 'Succeeded'),
      move('first', 'web', '2026-12-03T20:01:00Z', 'Succeeded'),
      move('failed', 'web', '2026-12-03T20:02:00Z', 'Failed'),
      move('other', 'db', '2026-12-03T20:03:00Z'),
      move('rolled', 'web', '2026-12-03T20:04:00Z', 'RolledBack'),
    ];
    assert.equal(latestMove(ms, 'web', since)?.metadata.name, 'first');
    assert.equal(latestMove(ms, 'db', since)?.metadata.name, 'other');
  });
  it('is none when only an earlier Container of the name moved', () => {
    assert.equal(
      latestMove([move('old', 'web', '2026-12-03T19:00:00Z', 'Succeeded')], 'web', since),
      undefined,
    );
  });
});
