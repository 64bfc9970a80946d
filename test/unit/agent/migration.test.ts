// Which part an agent plays in a migration, read from its caches: the source of a checkpoint
// (hold the process), the target (restore, never start from the image), or none at all.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { restoreFromAnnotation, type Container, type Migration } from '../../../src/api/v1alpha1/index.js';
import { MigrationSupport, targetHold } from '../../../src/agent/containers/migration.js';
import type { TransferKey } from '../../../src/agent/transfer.js';
import type { KubeClient } from '../../../src/kube/client.js';
import type { CustomResourceClient } from '../../../src/kube/customresource.js';
import { Store } from '../../../src/kube/store.js';

const ns = 'ns';

function support(...migrations: Migration[]): MigrationSupport {
  const cache = new Store<Migration>();
  for (const m of migrations) cache.set(m);
  return new MigrationSupport(
    {
      host: 'h1',
      fieldManager: 'gantry-agent/h1',
      stateDir: fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-role-')),
      secretNamespace: 'gantry-system',
    },
    {
      // roleOf reads only the Migration cache.
      client: {} as KubeClient,
      migrations: cache,
      migrationsApi: {} as CustomResourceClient<Migration>,
      hostsApi: {} as CustomResourceClient<never>,
      transferKey: {} as TransferKey,
    },
  );
}

function migration(mode: 'Checkpoint' | 'Restart', phase: string, fellBack = false): Migration {
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Migration',
    metadata: { name: 'move', namespace: ns, uid: 'm-uid' },
    spec: { container: 'app', mode, fallback: 'Restart', timeoutSeconds: 120 },
    status: {
      phase,
      sourceHost: 'h1',
      conditions: fellBack
        ? [{ type: 'FellBack', status: 'True', reason: 'CheckpointNotPossible', message: '' }]
        : [],
    },
  } as unknown as Migration;
}

const app = (annotations: Record<string, string> = {}) =>
  ({ metadata: { name: 'app', namespace: ns, annotations }, spec: { image: 'x' } }) as unknown as Container;

describe('MigrationSupport.roleOf', () => {
  it('makes the source of a checkpoint in progress hold its process', () => {
    for (const phase of ['Checkpointing', 'Transferring', 'Restoring', 'RollingBack']) {
      assert.equal(support(migration('Checkpoint', phase)).roleOf(app())?.kind, 'source', phase);
    }
    for (const phase of ['Pending', 'Succeeded', 'Failed', 'RolledBack']) {
      assert.equal(support(migration('Checkpoint', phase)).roleOf(app()), undefined, phase);
    }
  });

  it('leaves the source of a restart (or of a checkpoint fallen back to one) running as usual', () => {
    assert.equal(support(migration('Restart', 'Restoring')).roleOf(app()), undefined);
    assert.equal(support(migration('Checkpoint', 'Restoring', true)).roleOf(app()), undefined);
  });

  it('makes a Container annotated to restore the target, even before its Migration is cached', () => {
    const target = app({ [restoreFromAnnotation]: 'move' });
    assert.deepEqual(support().roleOf(target), { kind: 'target', name: 'move', migration: undefined });
    assert.equal(support(migration('Checkpoint', 'Transferring')).roleOf(target)?.kind, 'target');
  });

  it('holds no target of an ended Migration, even one that recorded no target UID (an upgrade)', () => {
    const target = app({ [restoreFromAnnotation]: 'move' });
    const held = (phase: string) => {
      const role = support(migration('Checkpoint', phase)).roleOf(target);
      assert.equal(role?.kind, 'target');
      return role?.kind === 'target' ? role.held?.reason : undefined;
    };
    assert.equal(held('Transferring'), 'WaitingForCheckpoint');
    assert.equal(held('Succeeded'), undefined);
  });
});

describe('targetHold', () => {
  const recorded = (status: object) =>
    ({
      metadata: { name: 'move', namespace: ns },
      status: {
        phase: 'Transferring',
        targetContainer: 'app-moved',
        targetContainerUID: 'u-1',
        targetHost: 'h1',
        ...status,
      },
    }) as unknown as Migration;
  const c = (name: string, uid: string, nodeName?: string) =>
    ({ metadata: { name, namespace: ns, uid }, spec: { image: 'x', nodeName } }) as unknown as Container;

  it('lets only the Container the controller recorded (name, UID, Host) restore', () => {
    assert.equal(targetHold(recorded({}), c('app-moved', 'u-1', 'h1'), 'h1'), undefined);
    for (const [m, container, why] of [
      [recorded({}), c('thief', 'u-2', 'h1'), /its target is Container app-moved, not thief/],
      [recorded({}), c('app-moved', 'u-2', 'h1'), /with UID u-1, not this one \(UID u-2\)/],
      [recorded({ targetHost: 'h2' }), c('app-moved', 'u-1', 'h1'), /its target Host is h2, not h1/],
      [recorded({}), c('app-moved', 'u-1', 'h2'), /its target Host is h1, not h2/],
    ] as const) {
      const hold = targetHold(m, container, 'h1');
      assert.equal(hold?.reason, 'NotMigrationTarget');
      assert.match(hold.message, why);
      assert.match(hold.message, /^not restoring the checkpoint of Migration move: /);
    }
  });

  it('waits while the controller has not recorded its target (name, UID and Host)', () => {
    for (const missing of ['targetContainer', 'targetContainerUID', 'targetHost']) {
      const hold = targetHold(recorded({ [missing]: undefined }), c('app-moved', 'u-1', 'h1'), 'h1');
      assert.equal(hold?.reason, 'WaitingForCheckpoint', missing);
    }
  });
});
