import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { joinKey, objectKey, ownerKeys, splitKey } from '../../../src/kube/keys.js';

describe('keys', () => {
  it('names namespaced objects namespace/name and cluster objects name', () => {
    assert.equal(objectKey({ metadata: { namespace: 'ns', name: 'a' } }), 'ns/a');
    assert.equal(objectKey({ metadata: { name: 'host-1' } }), 'host-1');
    assert.throws(() => objectKey({ kind: 'Host', metadata: {} }), /no metadata.name/);
  });

  it('splits and joins keys', () => {
    assert.deepEqual(splitKey('ns/a'), { namespace: 'ns', name: 'a' });
    assert.deepEqual(splitKey('host-1'), { name: 'host-1' });
    assert.equal(joinKey(splitKey('ns/a')), 'ns/a');
    assert.equal(joinKey({ name: 'x' }), 'x');
  });

  it('maps an object to its owners of one kind', () => {
    const container = {
      metadata: {
        namespace: 'ns',
        name: 'web-abc',
        ownerReferences: [
          { apiVersion: 'gantry.dev/v1alpha1', kind: 'Workload', name: 'web', uid: '1' },
          { apiVersion: 'other.io/v1', kind: 'Workload', name: 'foreign', uid: '2' },
          { apiVersion: 'gantry.dev/v1alpha1', kind: 'Migration', name: 'm', uid: '3' },
        ],
      },
    };
    assert.deepEqual(ownerKeys('Workload')(container), ['ns/web', 'ns/foreign']);
    assert.deepEqual(ownerKeys('Workload', 'gantry.dev')(container), ['ns/web']);
    assert.deepEqual(ownerKeys('Workload')({ metadata: { name: 'x' } }), []);
  });
});
