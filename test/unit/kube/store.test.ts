import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Store } from '../../../src/kube/store.js';

interface Ctr {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  spec: { nodeName?: string };
}
const ctr = (namespace: string, name: string, nodeName?: string): Ctr => ({
  metadata: { namespace, name },
  spec: { nodeName },
});

describe('Store', () => {
  const byNode = { nodeName: (c: Ctr) => (c.spec.nodeName ? [c.spec.nodeName] : []) };

  it('gets, lists and lists by namespace', () => {
    const s = new Store<Ctr>(byNode);
    s.set(ctr('a', 'x'));
    s.set(ctr('a', 'y'));
    s.set(ctr('b', 'x'));
    assert.equal(s.size, 3);
    assert.equal(s.get('a/x')?.metadata.name, 'x');
    assert.equal(s.get('c/x'), undefined);
    assert.deepEqual(
      s
        .listByNamespace('a')
        .map((c) => c.metadata.name)
        .sort(),
      ['x', 'y'],
    );
    assert.deepEqual(s.listByNamespace('none'), []);
    assert.deepEqual(s.keys().sort(), ['a/x', 'a/y', 'b/x']);
  });

  it('keeps indexes right across updates and deletes', () => {
    const s = new Store<Ctr>(byNode);
    s.set(ctr('a', 'x', 'host-1'));
    s.set(ctr('a', 'y', 'host-1'));
    s.set(ctr('a', 'z')); // unscheduled: not indexed
    assert.equal(s.byIndex('nodeName', 'host-1').length, 2);
    const old = s.set(ctr('a', 'x', 'host-2')); // moved
    assert.equal(old?.spec.nodeName, 'host-1');
    assert.deepEqual(
      s.byIndex('nodeName', 'host-1').map((c) => c.metadata.name),
      ['y'],
    );
    assert.deepEqual(
      s.byIndex('nodeName', 'host-2').map((c) => c.metadata.name),
      ['x'],
    );
    assert.equal(s.delete('a/y')?.metadata.name, 'y');
    assert.deepEqual(s.byIndex('nodeName', 'host-1'), []);
    assert.equal(s.delete('a/y'), undefined);
    assert.throws(() => s.byIndex('nope', 'x'), /no index/);
  });
});
