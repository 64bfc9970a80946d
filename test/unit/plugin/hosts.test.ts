// kubectl gantry drain's reading of a drain in progress: what it prints as Containers move or go,
// when it is done, and what it says when it gives up.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Container, Host, Migration } from '../../../src/api/v1alpha1/index.js';
import { main } from '../../../src/plugin/cli.js';
import { commands } from '../../../src/plugin/commands.js';
import {
  drained,
  formatDuration,
  parseDuration,
  progressLines,
  timeoutMessage,
  type DrainView,
  type Reported,
} from '../../../src/plugin/hosts.js';
import { migrationState, movedLine } from '../../../src/plugin/moves.js';

const host = {
  apiVersion: 'gantry.dev/v1alpha1',
  kind: 'Host',
  metadata: { name: 'host-1' },
  spec: { drain: true, unschedulable: false, maxConcurrentMigrations: 2 },
} as Host;

function container(name: string, extra: Partial<Container['metadata']> = {}, phase = 'Running'): Container {
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Container',
    metadata: { name, namespace: 'team', uid: `uid-${name}`, ...extra },
    spec: { image: 'web:1', nodeName: 'host-1' },
    status: { phase },
  } as Container;
}

function migration(
  name: string,
  of: string,
  status: Migration['status'],
  created = '2026-01-01T00:00:00Z',
): Migration {
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Migration',
    metadata: {
      name,
      namespace: 'team',
      uid: `uid-${name}`,
      creationTimestamp: created,
      labels: { 'gantry.dev/drain-host': 'host-1', 'gantry.dev/drain-container': `uid-${of}` },
    },
    spec: { container: of, mode: 'Checkpoint', fallback: 'Restart' },
    status,
  } as unknown as Migration;
}

const view = (containers: Container[], migrations: Migration[]): DrainView => ({
  host,
  containers,
  migrations,
});
const fresh = (): Reported => ({ started: new Set(), ended: new Set() });

const moved = {
  phase: 'Succeeded',
  sourceHost: 'host-1',
  targetHost: 'host-2',
  targetContainer: 'web-m1',
  downtimeSeconds: 0.8,
} as const;

describe('kubectl gantry drain', () => {
  it("reads durations as kubectl's --timeout does, and prints them as Go does", () => {
    assert.equal(parseDuration('0'), 0);
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('1.5m'), 90_000);
    assert.equal(parseDuration('500ms'), 500);
    for (const bad of ['', '10', '5x', 'm', '-1s', '1h 2m']) assert.equal(parseDuration(bad), undefined, bad);
    assert.equal(formatDuration(300_000), '5m0s');
    assert.equal(formatDuration(3_723_000), '1h2m3s');
    assert.equal(formatDuration(1500), '1.5s');
  });

  it('prints each move as it starts and ends, as migrate does, and a failed one on stderr', () => {
    const reported = fresh();
    const web = container('web');
    const db = container('db');
    const first = view([web, db], [migration('web-drain-1', 'web', { phase: 'Transferring' })]);
    assert.deepEqual(progressLines(undefined, first, reported), {
      out: ['moving team/web (migration.gantry.dev/web-drain-1, Checkpoint)'],
      err: [],
    });
    const second = view(
      [db],
      [
        migration('web-drain-1', 'web', moved),
        migration(
          'db-drain-1',
          'db',
          { phase: 'RolledBack', message: 'transfer failed: 401' },
          '2026-01-01T00:01:00Z',
        ),
      ],
    );
    assert.deepEqual(progressLines(first, second, reported), {
      out: [
        'team/web moved from host-1 to host-2 as web-m1, not running for 0.8s',
        'moving team/db (migration.gantry.dev/db-drain-1, Checkpoint)',
      ],
      err: ['error when moving team/db: migration.gantry.dev/db-drain-1 RolledBack: transfer failed: 401'],
    });
    // Told once.
    assert.deepEqual(progressLines(second, second, reported), { out: [], err: [] });
  });

  it("tells a Container that went without a move: deleted for its Workload, or exited; an earlier drain's moves are not retold", () => {
    const owned = container('web-abc', {
      ownerReferences: [
        { apiVersion: 'gantry.dev/v1alpha1', kind: 'Workload', name: 'web', uid: 'w', controller: true },
      ],
    });
    const old = migration('job-drain-1', 'job', moved);
    const reported: Reported = { started: new Set([old.metadata.uid!]), ended: new Set([old.metadata.uid!]) };
    const before = view([owned, container('job', { uid: 'uid-job2' })], [old]);
    const now = view([container('job', { uid: 'uid-job2' }, 'Succeeded')], [old]);
    assert.deepEqual(progressLines(before, now, reported).out, [
      'team/web-abc removed (workload web starts a replacement elsewhere)',
      'team/job exited (Succeeded), not moved',
    ]);
  });

  it('is done once nothing is left to move and every move has ended', () => {
    const web = container('web');
    assert.equal(drained(view([web], [])), false);
    // The source is gone a moment before its Migration says Succeeded.
    assert.equal(drained(view([], [migration('web-drain-1', 'web', { phase: 'Restoring' })])), false);
    assert.equal(drained(view([], [migration('web-drain-1', 'web', moved)])), true);
    // Finished Containers and a migration's copy in the making are not moved.
    const copy = container('web-m1', { labels: { 'gantry.dev/migration': 'x' } });
    assert.equal(drained(view([container('job', {}, 'Failed'), copy], [])), true);
  });

  it('gives up naming each Container left and why: its Migration and the conditions not True', () => {
    const stuck = migration('web-drain-2', 'web', {
      phase: 'Transferring',
      message: 'fetching the checkpoint',
      conditions: [
        { type: 'Checkpointed', status: 'True', reason: 'Dumped', message: '', lastTransitionTime: 't' },
        {
          type: 'Transferred',
          status: 'False',
          reason: 'TransferFailed',
          message: 'connect ECONNREFUSED',
          lastTransitionTime: 't',
        },
      ],
    });
    const failedOnce = migration('web-drain-1', 'web', {
      phase: 'RolledBack',
      message: 'no space',
      conditions: [
        {
          type: 'Ready',
          status: 'False',
          reason: 'RolledBack',
          message: 'no space',
          lastTransitionTime: 't',
        },
      ],
    });
    const db = container('db', {
      ownerReferences: [
        { apiVersion: 'gantry.dev/v1alpha1', kind: 'Workload', name: 'db', uid: 'w', controller: true },
      ],
    });
    const gone = migration('cache-drain-1', 'cache', { phase: 'Restoring' });
    const msg = timeoutMessage('host-1', 30_000, view([container('web'), db], [failedOnce, stuck, gone]));
    assert.equal(
      msg,
      'unable to drain host "host-1": timed out after 30s with 3 Containers not moved yet:\n' +
        '  team/web: migration.gantry.dev/web-drain-2 Transferring: fetching the checkpoint; ' +
        'Transferred=False (TransferFailed: connect ECONNREFUSED)\n' +
        "  team/db: not moved yet: waiting its turn (at most 2 moves off this Host at once, and no more of its Workload's replicas than its maxUnavailable)\n" +
        '  team/cache: migration.gantry.dev/cache-drain-1 Restoring',
    );
    const lastFailed = timeoutMessage('host-1', 60_000, view([container('web')], [failedOnce]));
    assert.match(
      lastFailed,
      /team\/web: 1 move failed, the last: migration\.gantry\.dev\/web-drain-1 RolledBack: no space; Ready=False \(RolledBack\)$/,
    );
  });

  it("migrate's lines are the drain's", () => {
    const m = migration('web-drain-1', 'web', moved);
    assert.equal(movedLine(m), 'web moved from host-1 to host-2 as web-m1, not running for 0.8s');
    assert.equal(migrationState(migration('x', 'web', {})), 'migration.gantry.dev/x Pending');
  });

  it('refuses a missing host or a bad --timeout before any request', async () => {
    const errors: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => errors.push(s) > 0) as typeof process.stderr.write;
    try {
      assert.equal(await main(['drain', '--kubeconfig', '/nonexistent'], commands), 1);
      assert.equal(
        await main(['drain', 'h', '--timeout', 'soon', '--kubeconfig', '/nonexistent'], commands),
        1,
      );
      assert.equal(await main(['uncordon', 'a', 'b', '--kubeconfig', '/nonexistent'], commands), 1);
    } finally {
      process.stderr.write = write;
    }
    assert.match(errors[0]!, /^error: a host name is required\nUsage: kubectl gantry drain HOST /);
    assert.match(errors[1]!, /^error: invalid --timeout "soon": give a duration such as 90s, 10m or 1h/);
    assert.match(errors[2]!, /^error: unexpected argument "b"/);
  });
});
