// A status write decided on a cached object carries that object's resourceVersion: the real
// apiserver applies it while the object is unchanged and refuses it (409) once someone else wrote,
// so a controller whose cache lags never overwrites newer state with a stale decision.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Host } from '../../../src/api/v1alpha1/index.js';
import { isConflict } from '../../../src/kube/errors.js';
import { clients, installCrds, uniqueName } from './harness.js';

const { hosts } = clients();
const name = uniqueName('gantry-ctrl-precondition');

describe('applyStatus with a resourceVersion', () => {
  before(async () => {
    await installCrds();
    await hosts.create({
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Host',
      metadata: { name },
      spec: {},
    } as Host);
  });

  after(async () => {
    await hosts.delete({ name });
  });

  it('applies at the current version and is refused at an older one', async () => {
    const seen = (await hosts.get({ name }))!;
    const first = await hosts.applyStatus(
      { name },
      { containers: 1 },
      { fieldManager: 'gantry-test-a', resourceVersion: seen.metadata.resourceVersion },
    );
    assert.equal(first.status?.containers, 1);
    assert.notEqual(first.metadata.resourceVersion, seen.metadata.resourceVersion);

    const stale = hosts.applyStatus(
      { name },
      { containers: 2 },
      { fieldManager: 'gantry-test-b', resourceVersion: seen.metadata.resourceVersion },
    );
    await assert.rejects(stale, (e: unknown) => isConflict(e), 'a write from an older version is a 409');
    assert.equal((await hosts.get({ name }))?.status?.containers, 1, 'the newer status is kept');

    const unconditional = await hosts.applyStatus(
      { name },
      { containers: 3 },
      { fieldManager: 'gantry-test-b' },
    );
    assert.equal(unconditional.status?.containers, 3, 'without a resourceVersion the write is unconditional');
  });
});
