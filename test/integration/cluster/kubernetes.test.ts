// The local cluster's control plane is a real kube-apiserver with etcd: objects written with
// kubectl are stored and read back, RBAC is on, and each host has its Node.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { kubectl, localCluster } from '../../support/cluster.js';

const ns = `gantry-env-${process.pid}`;

after(async () => {
  await kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=false']);
});

test('kubectl creates and reads back a namespace and a ConfigMap', async () => {
  assert.equal((await kubectl(['create', 'namespace', ns])).code, 0);
  const created = await kubectl(['-n', ns, 'create', 'configmap', 'probe', '--from-literal=answer=42']);
  assert.equal(created.code, 0, created.stderr);
  const read = await kubectl(['-n', ns, 'get', 'configmap', 'probe', '-o', 'jsonpath={.data.answer}']);
  assert.equal(read.stdout, '42');
});

test('authorization is RBAC: an unknown user is forbidden', async () => {
  const r = await kubectl(['auth', 'can-i', 'list', 'secrets', '--as', 'nobody']);
  assert.equal(r.stdout.trim(), 'no');
  const admin = await kubectl(['auth', 'can-i', 'list', 'secrets']);
  assert.equal(admin.stdout.trim(), 'yes');
});

test('every host has a core Node', async () => {
  const r = await kubectl(['get', 'nodes', '-o', 'jsonpath={.items[*].metadata.name}']);
  assert.equal(r.code, 0, r.stderr);
  const nodes = r.stdout.split(' ').sort();
  assert.deepEqual(
    nodes,
    localCluster()
      .hosts.map((h) => h.name)
      .sort(),
  );
});
