// A hostile tenant on the local cluster (issue 12): a user bound to the built-in `edit` role in one
// namespace tries to have another user's process restored into a Container of their own. The
// gantry.dev/ annotation that asks for it is refused with a message that says why; and a Container
// carrying it anyway (a cluster admin may set it) is held, never restored into: the agent gives a
// checkpoint only to the Container the controller recorded in the Migration's status. In a namespace
// labelled for the restricted Pod Security level, the same user can create only Containers and
// Workloads that meet it, and is told what is missing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Container, Host, Migration } from '../../src/api/v1alpha1/index.js';
import { labels as runtimeLabels } from '../../src/agent/runtimespec.js';
import { CriClient } from '../../src/cri/client.js';
import { startAgent, startGantry, stopAgent } from '../../src/localcluster/gantry.js';
import { deleteTestNamespace, getObject, kubectl, kubectlOk, localCluster } from '../support/cluster.js';
import { RuntimeRecorder, type RuntimeRun } from '../support/runtime.js';
import { eventually } from '../support/wait.js';

const cluster = localCluster();
const [host1, host2] = cluster.hosts.map((h) => h.name) as [string, string];
const ns = `e2e-tenant-${process.pid}`;
const tenant = `tenant-${process.pid}`;
// The flags of the other e2e files, so the processes they left running are reused.
const controllerArgs = ['--host-lost-grace=10s'];
const agentArgs = [
  '--renew-interval-seconds=2',
  '--report-interval-seconds=5',
  '--restart-backoff-seconds=1',
];
const restoreFrom = 'gantry.dev/restore-from';
const denied =
  /ValidatingAdmissionPolicy 'gantry-local-reserved-annotations' with binding '[^']+' denied request/;

const object = (kind: string, name: string, spec: object, annotations?: Record<string, string>) =>
  JSON.stringify({
    apiVersion: 'gantry.dev/v1alpha1',
    kind,
    metadata: { name, namespace: ns, ...(annotations ? { annotations } : {}) },
    spec,
  });

/** kubectl as the tenant: a user bound to `edit` in the namespace, nothing more. */
const asTenant = (args: string[], input?: string) => kubectl([...args, `--as=${tenant}`], { input });

const getContainer = (name: string) => getObject<Container>(['containers.gantry.dev', '-n', ns, name]);
const getMigration = (name: string) => getObject<Migration>(['migrations.gantry.dev', '-n', ns, name]);

before(async () => {
  await startGantry(cluster, { controller: controllerArgs, agent: agentArgs });
  await kubectlOk(['create', 'namespace', ns]);
  await kubectlOk([
    'create',
    'rolebinding',
    'tenant-edit',
    '-n',
    ns,
    '--clusterrole=edit',
    `--user=${tenant}`,
  ]);
});

after(async () => {
  await startAgent(cluster, host2, agentArgs);
  await deleteTestNamespace(ns);
});

describe('a namespace editor', () => {
  it('may not set gantry.dev/ annotations on Containers or Workload templates, and is told why', async () => {
    const forged = object(
      'Container',
      'forged',
      { image: cluster.images.counter, nodeName: host1 },
      { [restoreFrom]: 'someone-elses-migration' },
    );
    // A policy just installed takes a moment to be enforced.
    const create = await eventually('the policy to refuse the annotation', async () => {
      const r = await asTenant(['create', '-f', '-'], forged);
      return r.code !== 0 ? r : undefined;
    });
    assert.match(create.stderr, denied);
    assert.match(
      create.stderr,
      new RegExp(
        `Container ${ns}/forged: annotations under gantry.dev/ are set by Gantry only \\(they record migrations and scheduling\\), so ${restoreFrom} may not be set, changed or removed: leave it out`,
      ),
    );
    const template = {
      replicas: 1,
      selector: { matchLabels: { app: 'w' } },
      template: {
        metadata: {
          labels: { app: 'w' },
          annotations: { [restoreFrom]: 'x', 'gantry.dev/scheduling-gate': 'y' },
        },
        spec: { image: cluster.images.counter },
      },
    };
    const workload = await asTenant(['create', '-f', '-'], object('Workload', 'w', template));
    assert.match(workload.stderr, denied);
    // Both keys are named, in the map's order (CEL has no sort).
    const named = workload.stderr.match(
      new RegExp(`the template of Workload ${ns}/w: .*, so (\\S+), (\\S+) may not be set`),
    );
    assert.ok(named, workload.stderr);
    assert.deepEqual([named[1], named[2]].sort(), ['gantry.dev/restore-from', 'gantry.dev/scheduling-gate']);

    // The same user may create and annotate Containers otherwise: the refusal is about those keys.
    const plain = await asTenant(
      ['create', '-f', '-'],
      object(
        'Container',
        'plain',
        { image: cluster.images.counter, nodeName: host1 },
        { 'example.com/note': 'ok' },
      ),
    );
    assert.equal(plain.code, 0, plain.stderr);
    const later = await asTenant([
      'annotate',
      'containers.gantry.dev',
      'plain',
      '-n',
      ns,
      `${restoreFrom}=x`,
    ]);
    assert.match(later.stderr, denied);
    assert.match(later.stderr, new RegExp(`Container ${ns}/plain: .*${restoreFrom} may not be set`));
    const other = await asTenant([
      'annotate',
      'containers.gantry.dev',
      'plain',
      '-n',
      ns,
      'example.com/other=1',
    ]);
    assert.equal(other.code, 0, other.stderr);
    // Cluster admins pass (they could remove the policy anyway); the next test relies on that.
    const admin = await kubectl(['create', '--dry-run=server', '-f', '-'], { input: forged });
    assert.equal(admin.code, 0, admin.stderr);
  });
});

describe('a namespace that enforces the restricted level', () => {
  const restrictedNs = `${ns}-restricted`;
  const refused =
    /ValidatingAdmissionPolicy 'gantry-local-restricted-level' with binding '[^']+' denied request/;
  const inRestricted = (kind: string, name: string, spec: object) =>
    JSON.stringify({
      apiVersion: 'gantry.dev/v1alpha1',
      kind,
      metadata: { name, namespace: restrictedNs },
      spec,
    });

  before(async () => {
    await kubectlOk(['create', 'namespace', restrictedNs]);
    await kubectlOk(['label', 'namespace', restrictedNs, 'pod-security.kubernetes.io/enforce=restricted']);
    await kubectlOk([
      'create',
      'rolebinding',
      'tenant-edit',
      '-n',
      restrictedNs,
      '--clusterrole=edit',
      `--user=${tenant}`,
    ]);
  });
  after(() => deleteTestNamespace(restrictedNs));

  it('refuses what its label forbids, naming what is missing, and runs what it allows', async () => {
    const bare = await eventually('the policy to refuse a Container without securityContext', async () => {
      const r = await asTenant(
        ['create', '-f', '-'],
        inRestricted('Container', 'bare', { image: cluster.images.web, nodeName: host1 }),
      );
      return r.code !== 0 ? r : undefined;
    });
    assert.match(bare.stderr, refused);
    assert.match(
      bare.stderr,
      new RegExp(
        `namespace ${restrictedNs} enforces the restricted level \\(pod-security.kubernetes.io/enforce=restricted\\), so spec.securityContext needs runAsNonRoot: true, capabilities.drop: \\[ALL\\]`,
      ),
    );
    const template = (securityContext: object) => ({
      replicas: 1,
      selector: { matchLabels: { app: 'r' } },
      template: { metadata: { labels: { app: 'r' } }, spec: { image: cluster.images.web, securityContext } },
    });
    const workload = await asTenant(
      ['create', '-f', '-'],
      inRestricted(
        'Workload',
        'r',
        template({ runAsNonRoot: true, runAsUser: 65534, capabilities: { drop: ['ALL'], add: ['CHOWN'] } }),
      ),
    );
    assert.match(workload.stderr, refused);
    assert.match(
      workload.stderr,
      /spec.template.spec.securityContext needs capabilities.add: at most \[NET_BIND_SERVICE\]/,
    );

    const allowed = {
      runAsNonRoot: true,
      runAsUser: 65534,
      capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] },
    };
    const ok = await asTenant(
      ['create', '-f', '-'],
      inRestricted('Container', 'confined', {
        image: cluster.images.web,
        nodeName: host1,
        securityContext: allowed,
      }),
    );
    assert.equal(ok.code, 0, ok.stderr);
    const running = await eventually('the compliant Container to run', async () => {
      const c = await getObject<Container>(['containers.gantry.dev', '-n', restrictedNs, 'confined']);
      return c?.status?.phase === 'Running' ? c : undefined;
    });
    assert.equal(running.status?.restartCount, 0);
  });
});

describe('a Container that carries the annotation anyway', () => {
  it("is held, and another user's checkpoint is never restored into it", async () => {
    assert.ok(
      cluster.checkpoint.works,
      `checkpoint/restore does not work on this machine, so this cannot be tested: ${cluster.checkpoint.detail}`,
    );
    await eventually('both Hosts to report checkpoint support', async () => {
      const hosts = await Promise.all([host1, host2].map((h) => getObject<Host>(['hosts.gantry.dev', h])));
      return hosts.every((h) => h?.status?.checkpoint?.supported) || undefined;
    });
    await kubectlOk(['apply', '-f', '-'], {
      input: object('Container', 'victim', { image: cluster.images.counter, nodeName: host1 }),
    });
    await eventually(
      'the victim Running',
      async () => (await getContainer('victim'))?.status?.phase === 'Running',
    );
    const recorder = await RuntimeRecorder.start({ [host1]: new CriClient(cluster.hosts[0]!.criSocket) });
    let forgedUid = '';
    let runs: RuntimeRun[] = [];
    // With the target's agent away, the migration waits in Transferring with the checkpoint made:
    // the moment a forged target would take it.
    await stopAgent(host2);
    try {
      await kubectlOk(['apply', '-f', '-'], {
        input: object('Migration', 'move', { container: 'victim', targetHost: host2, timeoutSeconds: 60 }),
      });
      const m = await eventually('the checkpoint made, waiting for its transfer', async () => {
        const x = await getMigration('move');
        if (['Succeeded', 'Failed', 'RolledBack'].includes(x?.status?.phase ?? ''))
          throw new Error(`the Migration ended: ${x?.status?.message}`);
        return x?.status?.phase === 'Transferring' ? x : undefined;
      });
      // Created by a cluster admin, whom the policy lets through: on the source's own Host.
      await kubectlOk(['apply', '-f', '-'], {
        input: object(
          'Container',
          'thief',
          { image: cluster.images.counter, nodeName: host1 },
          { [restoreFrom]: 'move' },
        ),
      });
      const thief = await eventually('the agent to decide about the forged Container', async () => {
        const c = await getContainer('thief');
        return c?.status?.reason ? c : undefined;
      });
      forgedUid = thief.metadata.uid!;
      assert.equal(thief.status?.phase, 'Migrating', JSON.stringify(thief.status));
      assert.equal(thief.status?.reason, 'NotMigrationTarget', thief.status?.message);
      assert.match(
        thief.status?.message ?? '',
        new RegExp(
          `not restoring the checkpoint of Migration move: its target is Container ${m.status!.targetContainer}, not thief`,
        ),
      );
      type Event = { type: string; reason: string; reportingInstance: string; regarding: { name: string } };
      const events = await kubectlOk(['get', 'events.events.k8s.io', '-n', ns, '-o', 'json']);
      const about = (JSON.parse(events) as { items: Event[] }).items.filter(
        (e) => e.regarding.name === 'thief',
      );
      assert.deepEqual(
        about.map((e) => `${e.type} ${e.reason} by ${e.reportingInstance}`),
        [`Warning NotMigrationTarget by gantry-agent/${host1}`],
      );
      // Nothing reported a transfer on the Migration while the real target was away.
      const now = await getMigration('move');
      assert.ok(!now?.status?.conditions?.some((c) => c.type === 'Transferred'), JSON.stringify(now?.status));
    } finally {
      runs = await recorder.stop();
      await startAgent(cluster, host2, agentArgs);
    }
    assert.deepEqual(
      runs.filter((r) => r.labels[runtimeLabels.uid] === forgedUid),
      [],
      'the runtime ran something for the forged Container',
    );
  });
});
