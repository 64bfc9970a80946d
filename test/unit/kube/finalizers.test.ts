// Finalizers change by a merge patch of the whole list on the resourceVersion it was read at: a
// stale copy is read once more, a namesake or a gone object is left alone.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubernetesObject } from '@kubernetes/client-node';
import { finalizerPatch, setFinalizer } from '../../../src/kube/finalizers.js';
import type { ObjectName } from '../../../src/kube/keys.js';

const f = 'example.com/cleanup';
const obj = (rv: string, finalizers: string[], uid = 'u1'): KubernetesObject => ({
  metadata: { name: 'a', namespace: 'ns', uid, resourceVersion: rv, finalizers },
});
const name: ObjectName = { namespace: 'ns', name: 'a' };

/** An apiserver holding one object, refusing a patch on a resourceVersion other than its own. */
function server(live: KubernetesObject | undefined) {
  const patches: object[] = [];
  let gets = 0;
  const api = {
    get: async () => {
      gets++;
      return live;
    },
    mergePatch: async (_: ObjectName, patch: object) => {
      patches.push(patch);
      if (!live) throw Object.assign(new Error('not found'), { code: 404 });
      const { resourceVersion, finalizers } = (
        patch as { metadata: { resourceVersion: string; finalizers: string[] } }
      ).metadata;
      if (resourceVersion !== live.metadata!.resourceVersion)
        throw Object.assign(new Error('conflict'), { code: 409 });
      live = obj(String(Number(resourceVersion) + 1), finalizers, live.metadata!.uid);
      return live;
    },
  };
  return { api, patches, gets: () => gets, live: () => live };
}

describe('finalizers', () => {
  it('patches nothing when the finalizer is already as asked', () => {
    assert.equal(finalizerPatch(obj('1', [f]), f, true), undefined);
    assert.equal(finalizerPatch(obj('1', []), f, false), undefined);
  });

  it("adds and removes one entry, keeping others', on the resourceVersion read", () => {
    assert.deepEqual(finalizerPatch(obj('7', ['other']), f, true), {
      resourceVersion: '7',
      finalizers: ['other', f],
    });
    assert.deepEqual(finalizerPatch(obj('7', [f, 'other']), f, false), {
      resourceVersion: '7',
      finalizers: ['other'],
    });
  });

  it('reads a stale copy once more and patches the fresh one', async () => {
    const s = server(obj('5', [f, 'other']));
    await setFinalizer(s.api, name, obj('3', [f]), f, false);
    assert.equal(s.gets(), 1);
    assert.deepEqual(s.live()!.metadata!.finalizers, ['other'], "another writer's finalizer stays");
  });

  it('leaves a namesake (another UID) and a gone object alone', async () => {
    const namesake = server(obj('5', [f], 'u2'));
    await setFinalizer(namesake.api, name, obj('3', [f]), f, false);
    assert.deepEqual(namesake.live()!.metadata!.finalizers, [f]);
    const gone = server(undefined);
    await setFinalizer(gone.api, name, obj('3', [f]), f, false);
  });

  it('throws a second conflict for the caller to retry', async () => {
    const s = server(obj('5', [f]));
    const racing = { ...s.api, get: async () => obj('4', [f]) };
    await assert.rejects(setFinalizer(racing, name, obj('3', [f]), f, false), /conflict/);
  });
});
