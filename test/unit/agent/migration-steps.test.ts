// The agent's steps in a checkpoint migration, against the simulated runtime and a real transfer
// server on 127.0.0.1. Source: checkpoint and stop the process, hold it, resume it on a rollback.
// Target: wait for the checkpoint, fetch it, restore it; never start from the image.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { restoreFromAnnotation, type Migration } from '../../../src/api/v1alpha1/index.js';
import { serveTransfers, TransferKey, transferContext } from '../../../src/agent/transfer.js';
import type { RunningServer } from '../../../src/obs/http.js';
import { agent, container, host, ns, type Agent } from './fakes.js';

function migration(phase: string, sourceHost: string, targetHost: string): Migration {
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Migration',
    metadata: { name: 'move', namespace: ns, uid: 'm-uid', generation: 1 },
    spec: { container: 'app', mode: 'Checkpoint', fallback: 'None', timeoutSeconds: 120 },
    status: {
      phase,
      sourceHost,
      targetHost,
      targetContainer: 'app-moved',
      targetContainerUID: 'app-moved-uid',
      conditions: [],
    },
  } as unknown as Migration;
}

/** The controller moves the Migration on to `phase`, keeping what the agents reported. */
function advance(a: Agent, phase: string, fields: object = {}): void {
  const m = a.migrations.get(`${ns}/move`)!;
  a.migrations.set({ ...m, status: { ...m.status!, phase, ...fields } as Migration['status'] });
}

describe('migration source', () => {
  async function frozen() {
    const a = agent();
    const rc = await a.run(container('app'));
    a.migrations.set(migration('Checkpointing', host, 'h2'));
    await a.reconcile('app');
    return { a, rc, archive: a.migrationSupport.archivePath(a.migrations.get(`${ns}/move`)!) };
  }

  it('checkpoints the process, stops it at once, reports it, then holds it', async () => {
    const { a, rc, archive } = await frozen();
    assert.deepEqual(
      a.runtime.calls.map((x) => [x.method, x.id, x.timeout ?? x.location]),
      [
        ['CheckpointContainer', rc.id, archive],
        ['StopContainer', rc.id, 0],
      ],
    );
    assert.deepEqual(a.migrationsApi.conditions(), ['Checkpointed=True']);
    const report = a.migrationsApi.reports.at(-1)!;
    assert.ok(report.frozenAt);
    assert.equal(report.checkpointSizeBytes, fs.statSync(archive).size);
    assert.equal(
      report.checkpointSHA256,
      crypto.createHash('sha256').update(fs.readFileSync(archive)).digest('hex'),
    );
    assert.ok(a.recorder.events.includes('Normal Checkpointed: Checkpointed for Migration move'));
    assert.equal(a.api.status('app')?.phase, 'Migrating');
    assert.equal(a.api.status('app')?.message, 'Frozen for Migration move: its checkpoint moves to h2');

    advance(a, 'Transferring');
    await a.reconcile('app');
    const { containers } = await a.runtime.held('app-uid');
    assert.deepEqual(
      containers.map((c) => [c.id, c.state]),
      [[rc.id, 'CONTAINER_EXITED']],
      'held: not restarted, not checkpointed again',
    );
    assert.equal(a.runtime.calls.length, 2);
    assert.equal(a.api.status('app')?.phase, 'Migrating');
  });

  it('on a rollback, resumes the process from its own checkpoint and reports it', async () => {
    const { a, archive } = await frozen();
    advance(a, 'RollingBack');
    await a.reconcile('app');
    const { containers } = await a.runtime.held('app-uid');
    assert.equal(containers.length, 1);
    assert.equal(containers[0]!.state, 'CONTAINER_RUNNING');
    assert.equal(containers[0]!.image?.image, archive, 'restored from the archive, not the image');
    assert.equal(containers[0]!.metadata?.attempt, 1);
    assert.deepEqual(a.migrationsApi.conditions(), ['Checkpointed=True', 'Resumed=True']);
    assert.ok(a.recorder.events.includes('Normal Resumed: Resumed from the checkpoint of Migration move'));

    await a.reconcile('app');
    assert.equal(a.api.status('app')?.phase, 'Running', 'back in its usual lifecycle');
    assert.equal(a.api.status('app')?.containerID, containers[0]!.id);
  });

  it("first leaves its Services' endpoints (not Ready) for the drain's time, serving on, then checkpoints", async () => {
    const a = agent({ migrationDrainMs: 300 });
    const rc = await a.run(container('app'));
    assert.equal(a.api.status('app')?.conditions?.find((x) => x.type === 'Ready')?.status, 'True');
    a.migrations.set(migration('Checkpointing', host, 'h2'));
    const first = await a.reconcile('app');
    // The drain began during that reconcile: by now at the latest (a busy machine may be slow).
    const drainingBy = Date.now();
    assert.equal(a.runtime.calls.length, 0, 'not frozen yet');
    const status = a.api.status('app');
    assert.deepEqual(
      [status?.phase, status?.reason, status?.conditions?.find((x) => x.type === 'Ready')?.status],
      ['Migrating', 'Draining', 'False'],
    );
    assert.ok(first && first.requeueAfter! > 0 && first.requeueAfter! <= 300, JSON.stringify(first));
    const { containers } = await a.runtime.held('app-uid');
    assert.deepEqual(
      containers.map((c) => c.state),
      ['CONTAINER_RUNNING'],
      'it runs on while it drains',
    );

    await a.reconcile('app');
    assert.equal(a.runtime.calls.length, 0, 'a reconcile within the drain does not freeze it');
    await new Promise((r) => setTimeout(r, drainingBy + 300 + 10 - Date.now()));
    await a.reconcile('app');
    assert.deepEqual(
      a.runtime.calls.map((x) => [x.method, x.id]),
      [
        ['CheckpointContainer', rc.id],
        ['StopContainer', rc.id],
      ],
    );
    assert.deepEqual(a.migrationsApi.conditions(), ['Checkpointed=True']);
  });

  it('leaves the process running when the checkpoint fails, and says why', async () => {
    const a = agent();
    const rc = await a.run(container('app'));
    a.runtime.failing.set('CheckpointContainer', new Error('criu says no'));
    a.migrations.set(migration('Checkpointing', host, 'h2'));
    await a.reconcile('app');
    assert.deepEqual(a.migrationsApi.conditions(), ['Checkpointed=False']);
    assert.equal(
      (a.migrationsApi.reports.at(-1)!.conditions as { reason: string }[])[0]!.reason,
      'CheckpointFailed',
    );
    assert.ok(a.recorder.events.includes('Warning CheckpointFailed: criu says no'));
    const { containers } = await a.runtime.held('app-uid');
    assert.deepEqual(
      containers.map((c) => [c.id, c.state]),
      [[rc.id, 'CONTAINER_RUNNING']],
    );
    assert.equal(a.api.status('app')?.phase, 'Running');
  });
});

describe('migration target', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-source-'));
  const checkpoint = Buffer.from('the process, frozen\n'.repeat(100));
  let server: RunningServer;
  let endpoint: string;
  let fetches = 0;
  const sourceKey = TransferKey.loadOrCreate(path.join(dir, 'source-key.pem'));
  const targetKey = TransferKey.loadOrCreate(path.join(dir, 'target-key.pem'));
  // What the source publishes with Checkpointed: the fetch takes no more, and nothing else.
  const published = {
    checkpointSizeBytes: checkpoint.length,
    checkpointSHA256: crypto.createHash('sha256').update(checkpoint).digest('hex'),
  };
  before(async () => {
    fs.writeFileSync(path.join(dir, 'm-uid.tar'), checkpoint);
    server = await serveTransfers(
      {
        grant: async (uid) => {
          fetches++;
          return {
            token: 'secret',
            archive: uid === 'm-uid' ? path.join(dir, 'm-uid.tar') : undefined,
            recipientKey: targetKey.publicKey,
            context: transferContext(uid, 'h0', host),
          };
        },
      },
      sourceKey,
      { host: '127.0.0.1', port: 0 },
    );
    endpoint = `http://127.0.0.1:${server.address.port}`;
  });
  const fromSource = (token: string) => ({
    transferEndpoints: { h0: endpoint },
    transferKeys: { h0: sourceKey.publicKey },
    transferKey: targetKey,
    transferToken: token,
  });
  after(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const target = () => container('app-moved', {}, { annotations: { [restoreFromAnnotation]: 'move' } });

  it('waits for the checkpoint, fetches it, restores it, and reports each step', async () => {
    const a = agent(fromSource('secret'));
    a.migrations.set(migration('Checkpointing', 'h0', host));
    a.cache.set(target());
    await a.reconcile('app-moved');
    assert.equal(a.api.status('app-moved')?.phase, 'Migrating');
    assert.equal(a.api.status('app-moved')?.reason, 'WaitingForCheckpoint');
    assert.deepEqual(await a.runtime.held('app-moved-uid'), { sandboxes: [], containers: [] });

    advance(a, 'Transferring', published);
    await a.reconcile('app-moved');
    assert.equal(a.api.status('app-moved')?.reason, 'Transferring', 'the fetch runs beside the workers');
    await a.queued('app-moved');
    await a.reconcile('app-moved');
    const archive = a.migrationSupport.archivePath(a.migrations.get(`${ns}/move`)!);
    assert.deepEqual(fs.readFileSync(archive), checkpoint);
    assert.deepEqual(a.migrationsApi.conditions(), ['Transferred=True']);
    assert.equal(a.api.status('app-moved')?.reason, 'WaitingForRestore');
    assert.deepEqual((await a.runtime.held('app-moved-uid')).containers, [], 'not started from the image');
    const fetched = fetches;
    await a.reconcile('app-moved');
    assert.equal(fetches, fetched, 'fetched once');
    assert.equal(a.api.status('app-moved')?.reason, 'WaitingForRestore');

    advance(a, 'Restoring');
    await a.reconcile('app-moved');
    const { containers } = await a.runtime.held('app-moved-uid');
    assert.equal(containers.length, 1);
    assert.equal(containers[0]!.state, 'CONTAINER_RUNNING');
    assert.equal(containers[0]!.image?.image, archive, 'restored from the fetched archive');
    assert.deepEqual(a.migrationsApi.conditions(), ['Transferred=True', 'Restored=True']);
    assert.ok(a.migrationsApi.reports.at(-1)!.restoredAt);
    assert.ok(a.recorder.events.includes('Normal Restored: Restored from the checkpoint of Migration move'));

    await a.reconcile('app-moved');
    assert.equal(a.api.status('app-moved')?.phase, 'Running');
  });

  it('reports a transfer that fails, and starts nothing', async () => {
    const a = agent(fromSource('wrong'));
    a.migrations.set(migration('Transferring', 'h0', host));
    advance(a, 'Transferring', published);
    a.cache.set(target());
    await a.reconcile('app-moved');
    await a.queued('app-moved');
    await a.reconcile('app-moved');
    assert.deepEqual(a.migrationsApi.conditions(), ['Transferred=False']);
    const [transferred] = a.migrationsApi.reports.at(-1)!.conditions as { message: string }[];
    assert.match(transferred!.message, /answered 401/, 'refused for its token, nothing else');
    assert.ok(a.recorder.reasons().includes('Warning TransferFailed'));
    assert.equal(a.api.status('app-moved')?.phase, 'Migrating');
    assert.deepEqual((await a.runtime.held('app-moved-uid')).containers, []);
  });

  it('reports a restore that fails and holds the Container: no second try, no start from the image', async () => {
    const a = agent();
    a.migrations.set(migration('Restoring', 'h0', host));
    a.cache.set(target());
    a.runtime.failing.set('CreateContainer', new Error('restore failed: criu says no'));
    await a.reconcile('app-moved');
    assert.deepEqual(a.migrationsApi.conditions(), ['Restored=False']);
    assert.ok(a.recorder.events.includes('Warning RestoreFailed: restore failed: criu says no'));

    a.runtime.failing.clear();
    await a.reconcile('app-moved');
    assert.equal(a.api.status('app-moved')?.phase, 'Migrating');
    assert.equal(a.api.status('app-moved')?.reason, 'RestoreFailed');
    assert.deepEqual(
      (await a.runtime.held('app-moved-uid')).containers,
      [],
      'the controller decides what next',
    );
  });

  // Anyone who may edit the namespace can annotate a Container to restore a Migration; only the
  // Container the controller recorded gets the checkpoint. Each impostor asks for it at the moment
  // the real target would fetch (Transferring) and restore (Restoring).
  for (const [what, impostor, on] of [
    [
      'another Container',
      () => container('thief', {}, { annotations: { [restoreFromAnnotation]: 'move' } }),
      /its target is Container app-moved, not thief/,
    ],
    [
      'a Container of the same name with another UID (deleted and created again)',
      () =>
        container('app-moved', {}, { uid: 'other-uid', annotations: { [restoreFromAnnotation]: 'move' } }),
      /its target is the Container app-moved with UID app-moved-uid, not this one \(UID other-uid\)/,
    ],
  ] as const) {
    it(`never fetches nor restores the checkpoint into ${what}`, async () => {
      const a = agent(fromSource('secret'));
      const c = impostor();
      a.cache.set(c);
      const fetched = fetches;
      for (const phase of ['Transferring', 'Restoring']) {
        a.migrations.set(migration(phase, 'h0', host));
        await a.reconcile(c.metadata.name!);
        assert.equal(a.api.status(c.metadata.name!)?.phase, 'Migrating', phase);
        assert.equal(a.api.status(c.metadata.name!)?.reason, 'NotMigrationTarget', phase);
        assert.match(a.api.status(c.metadata.name!)?.message ?? '', on);
      }
      assert.equal(fetches, fetched, 'no transfer token was asked for');
      assert.deepEqual(await a.runtime.held(c.metadata.uid!), { sandboxes: [], containers: [] });
      assert.deepEqual(a.migrationsApi.reports, [], 'nothing reported on the Migration');
      assert.deepEqual(a.recorder.reasons(), ['Warning NotMigrationTarget'], 'one Event says why');
    });
  }

  it('never acts as the target on another Host than the one recorded', async () => {
    const a = agent(fromSource('secret'));
    a.migrations.set(migration('Transferring', 'h0', 'h2'));
    a.cache.set(target());
    await a.reconcile('app-moved');
    assert.equal(a.api.status('app-moved')?.reason, 'NotMigrationTarget');
    assert.match(a.api.status('app-moved')?.message ?? '', /its target Host is h2, not h1/);
    assert.deepEqual(a.migrationsApi.reports, []);
  });

  it('waits, fetching nothing, while the Migration has not recorded its target', async () => {
    const a = agent(fromSource('secret'));
    const m = migration('Transferring', 'h0', host);
    a.migrations.set({ ...m, status: { ...m.status!, targetContainerUID: undefined } });
    a.cache.set(target());
    const fetched = fetches;
    await a.reconcile('app-moved');
    assert.equal(a.api.status('app-moved')?.reason, 'WaitingForCheckpoint');
    assert.match(a.api.status('app-moved')?.message ?? '', /has not recorded its target yet/);
    assert.equal(fetches, fetched);
    assert.deepEqual(a.migrationsApi.reports, []);
    assert.deepEqual(a.recorder.reasons(), []);
  });

  it('holds a Container whose Migration is not there', async () => {
    const a = agent();
    a.cache.set(target());
    await a.reconcile('app-moved');
    assert.equal(a.api.status('app-moved')?.reason, 'MigrationNotFound');
    assert.deepEqual(await a.runtime.held('app-moved-uid'), { sandboxes: [], containers: [] });
  });
});
