// Copying a Node's labels to its Host (pure logic; the RBAC test checks it on a real apiserver).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubernetesObject, V1Node } from '@kubernetes/client-node';
import type { Host } from '../../../src/api/v1alpha1/index.js';
import { HostLabelReconciler, nodeLabelsFieldManager } from '../../../src/controller/hostlabels.js';
import { Store } from '../../../src/kube/store.js';

function setup() {
  const hosts = new Store<Host>();
  const nodes = new Store<V1Node>();
  const applied: { obj: KubernetesObject; fieldManager: string }[] = [];
  const reconciler = new HostLabelReconciler({
    hosts,
    nodes,
    hostsApi: {
      apply: async (obj, { fieldManager }) => {
        applied.push({ obj, fieldManager });
        return obj as Host;
      },
    },
  });
  return { hosts, nodes, applied, reconciler };
}

const host = (labels: Record<string, string>, owned: string[] = []): Host =>
  ({
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Host',
    metadata: {
      name: 'h1',
      uid: 'h1-uid',
      labels,
      managedFields: [
        {
          manager: nodeLabelsFieldManager,
          operation: 'Apply',
          fieldsV1: { 'f:metadata': { 'f:labels': Object.fromEntries(owned.map((k) => [`f:${k}`, {}])) } },
        },
      ],
    },
    spec: {},
  }) as Host;

describe('host labels', () => {
  it("applies the Node's labels under its own field manager, with the Host's UID so a deleted Host is not created again", async () => {
    const t = setup();
    t.hosts.set(host({ 'kubernetes.io/hostname': 'h1' }));
    t.nodes.set({ metadata: { name: 'h1', labels: { zone: 'a', 'kubernetes.io/hostname': 'h1' } } });
    await t.reconciler.reconcile('h1');
    assert.deepEqual(t.applied, [
      {
        obj: {
          apiVersion: 'gantry.dev/v1alpha1',
          kind: 'Host',
          metadata: { name: 'h1', uid: 'h1-uid', labels: { zone: 'a', 'kubernetes.io/hostname': 'h1' } },
        },
        fieldManager: nodeLabelsFieldManager,
      },
    ]);
  });

  it('writes nothing when the Host has them, and removes those it copied once the Node drops them', async () => {
    const t = setup();
    t.hosts.set(host({ zone: 'a', team: 'x' }, ['zone']));
    t.nodes.set({ metadata: { name: 'h1', labels: { zone: 'a' } } });
    await t.reconciler.reconcile('h1');
    assert.equal(t.applied.length, 0, 'nothing to change');
    t.nodes.set({ metadata: { name: 'h1', labels: {} } });
    await t.reconciler.reconcile('h1');
    assert.deepEqual(
      t.applied.map((a) => a.obj.metadata?.labels),
      [{}],
      'zone goes; team was not ours',
    );
  });

  it('does nothing for a Host that is gone', async () => {
    const t = setup();
    t.nodes.set({ metadata: { name: 'h1', labels: { zone: 'a' } } });
    await t.reconciler.reconcile('h1');
    assert.deepEqual(t.applied, []);
  });
});
