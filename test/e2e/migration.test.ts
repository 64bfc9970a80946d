// Migrations as a user drives them, with kubectl, on the local cluster's two hosts: a counter moved
// live by checkpoint keeps counting, a Workload moved by restart never fails a request, a restore
// whose agent dies rolls back to the source, and a drain empties a host a few at a time.
// The checkpoint tests need CRIU through containerd; where the cluster's probe says it does not
// work here, they fail with the probe's answer: checkpoint migration is the headline feature, and
// a run that cannot show it has not shown that Gantry works.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Container, Host, Migration } from '../../src/api/v1alpha1/index.js';
import { CriClient } from '../../src/cri/client.js';
import { labels as runtimeLabels } from '../../src/agent/runtimespec.js';
import { startAgent, startGantry, stopAgent, stopGantry } from '../../src/localcluster/gantry.js';
import { deleteTestNamespace, getObject, kubectl, kubectlOk, localCluster } from '../support/cluster.js';
import { maxOverlap } from '../support/intervals.js';
import { eventually } from '../support/wait.js';
import { WatchRecorder } from '../support/watch.js';

const cluster = localCluster();
const [host1, host2] = cluster.hosts.map((h) => h.name) as [string, string];
const cri = Object.fromEntries(cluster.hosts.map((h) => [h.name, new CriClient(h.criSocket)]));
const ns = `e2e-migration-${process.pid}`;
const controllerArgs = ['--host-lost-grace=10s'];
const agentArgs = [
  '--renew-interval-seconds=2',
  '--report-interval-seconds=5',
  '--restart-backoff-seconds=1',
];

/** Fails (never skips) when this machine cannot checkpoint: the local cluster's probe, then both Hosts' own. */
async function checkpointWorks(): Promise<void> {
  assert.ok(
    cluster.checkpoint.works,
    `checkpoint/restore does not work on this machine, so checkpoint migration cannot be tested: ${cluster.checkpoint.detail}`,
  );
  for (const name of [host1, host2]) {
    const cp = (await getObject<Host>(['hosts.gantry.dev', name]))?.status?.checkpoint;
    assert.equal(cp?.supported, true, `Host ${name} cannot checkpoint: ${JSON.stringify(cp)}`);
  }
}

const manifest = (
  kind: string,
  name: string,
  spec: Record<string, unknown>,
  labels?: Record<string, string>,
) =>
  JSON.stringify({
    apiVersion: 'gantry.dev/v1alpha1',
    kind,
    metadata: { name, namespace: ns, labels },
    spec,
  });

const apply = (kind: string, name: string, spec: Record<string, unknown>) =>
  kubectlOk(['apply', '-f', '-'], { input: manifest(kind, name, spec) });

const getContainer = (name: string) => getObject<Container>(['containers.gantry.dev', '-n', ns, name]);
const getMigration = (name: string) => getObject<Migration>(['migrations.gantry.dev', '-n', ns, name]);

async function running(name: string): Promise<Container> {
  return eventually(`${name} Running`, async () => {
    const c = await getContainer(name);
    return c?.status?.phase === 'Running' && c.status.containerID ? c : undefined;
  });
}

const finalPhases = ['Succeeded', 'Failed', 'RolledBack'];
const ended = (m: Migration) => finalPhases.includes(m.status?.phase ?? '');

async function migrationDone(name: string, timeoutMs = 120_000): Promise<Migration> {
  return eventually(
    `Migration ${name} to finish`,
    async () => {
      const m = await getMigration(name);
      return m && ended(m) ? m : undefined;
    },
    { timeoutMs },
  );
}

/** The counter's value, read inside its container through the runtime of its host. */
async function count(c: Container): Promise<number> {
  const r = await cri[c.spec.nodeName!]!.execSync({
    containerId: c.status!.containerID!,
    cmd: ['cat', '/tmp/count'],
    timeout: 5,
  });
  return Number(r.stdout.toString().trim());
}

/** Runtime containers of Gantry for one Container UID, on every host. */
async function runtimeCopies(uid: string): Promise<string[]> {
  const found: string[] = [];
  for (const [host, client] of Object.entries(cri)) {
    const { containers } = await client.listContainers({
      filter: { labelSelector: { [runtimeLabels.uid]: uid }, state: { state: 'CONTAINER_RUNNING' } },
    });
    for (const _ of containers) found.push(host);
  }
  return found;
}

before(async () => {
  await startGantry(cluster, { controller: controllerArgs, agent: agentArgs });
  await kubectlOk(['create', 'namespace', ns]);
  // Hosts report whether they can checkpoint; the controller needs to know before it picks.
  await eventually('both Hosts to report checkpoint support', async () => {
    const hosts = await Promise.all([host1, host2].map((h) => getObject<Host>(['hosts.gantry.dev', h])));
    return hosts.every((h) => h?.status?.checkpoint !== undefined) || undefined;
  });
});

const cordon = (host: string, unschedulable: boolean) =>
  kubectlOk([
    'patch',
    'hosts.gantry.dev',
    host,
    '--type=merge',
    '-p',
    JSON.stringify({ spec: { unschedulable } }),
  ]);

after(async () => {
  await kubectl(['patch', 'hosts.gantry.dev', host1, '--type=merge', '-p', '{"spec":{"drain":false}}']);
  await cordon(host2, false);
  await deleteTestNamespace(ns);
  await stopGantry(cluster);
  for (const c of Object.values(cri)) c.close();
});

describe('checkpoint migration', () => {
  it('moves the counter to the other host and it keeps counting', async () => {
    await checkpointWorks();
    await apply('Container', 'counter', { image: cluster.images.counter, nodeName: host1 });
    const source = await running('counter');
    const before = await eventually('the counter to pass 3', async () =>
      (await count(source)) >= 3 ? count(source) : undefined,
    );
    await apply('Migration', 'move-counter', {
      container: 'counter',
      mode: 'Checkpoint',
      timeoutSeconds: 120,
    });
    const m = await migrationDone('move-counter');
    assert.equal(m.status?.phase, 'Succeeded', m.status?.message);
    assert.equal(m.status?.sourceHost, host1);
    assert.equal(m.status?.targetHost, host2);
    assert.ok(
      m.status?.downtimeSeconds !== undefined && m.status.downtimeSeconds > 0,
      'downtime is measured',
    );
    assert.ok((m.status?.checkpointSizeBytes ?? 0) > 0, 'the checkpoint size is reported');
    console.log(
      `checkpoint migration of the counter: downtime ${m.status?.downtimeSeconds}s, archive ${m.status?.checkpointSizeBytes} bytes`,
    );

    const target = await running(m.status!.targetContainer!);
    assert.equal(target.spec.nodeName, host2);
    const after = await count(target);
    assert.ok(after >= before, `the count went back: ${before} before, ${after} after`);
    const later = await eventually('the moved counter to go on counting', async () =>
      (await count(target)) > after ? count(target) : undefined,
    );
    assert.ok(later > after);
    await eventually(
      'the source Container to be gone',
      async () => (await getContainer('counter')) === undefined || undefined,
    );
    assert.deepEqual(await runtimeCopies(source.metadata.uid!), [], 'nothing of the source is left running');
    assert.deepEqual(await runtimeCopies(target.metadata.uid!), [host2], 'one copy runs, on the target');
  });

  it('rolls back to the source when the target agent dies during the restore', async () => {
    await checkpointWorks();
    await apply('Container', 'counter-rb', { image: cluster.images.counter, nodeName: host1 });
    const source = await running('counter-rb');
    // Far enough that a fresh start (counting from 0, once a second) could not catch up before the
    // first read after the rollback.
    await eventually('the counter to pass 8', async () => (await count(source)) >= 8 || undefined, {
      timeoutMs: 30_000,
    });
    // Its phases as the apiserver records them, so the kill lands in the restore however short it is.
    const phases = await WatchRecorder.start<Migration>(
      `/apis/gantry.dev/v1alpha1/namespaces/${ns}/migrations`,
      {
        fieldSelector: 'metadata.name=move-rb',
      },
    );
    let before: number;
    try {
      before = await count(source);
      await apply('Migration', 'move-rb', { container: 'counter-rb', targetHost: host2, timeoutSeconds: 20 });
      await eventually(
        'the restore phase',
        () => {
          const m = phases.current().get(`${ns}/move-rb`);
          if (m && ended(m))
            throw new Error(`the Migration ended (${m.status?.phase}) before its restore was seen`);
          return m?.status?.phase === 'Transferring' || m?.status?.phase === 'Restoring';
        },
        { intervalMs: 10 },
      );
    } finally {
      await phases.stop().catch(() => undefined);
    }
    await stopAgent(host2, 'SIGKILL');
    try {
      const m = await migrationDone('move-rb');
      assert.equal(m.status?.phase, 'RolledBack', m.status?.message);
      const resumed = await running('counter-rb');
      assert.equal(resumed.spec.nodeName, host1);
      // The state kept: the first value read is not below the last one read before the move.
      const first = await count(resumed);
      assert.ok(
        first >= before,
        `the first count after the rollback (${first}) is not below the last before (${before})`,
      );
      const after = await eventually('the resumed counter to count on', async () =>
        (await count(resumed)) > first ? count(resumed) : undefined,
      );
      assert.ok(after > first, `it counts on: ${first}, then ${after}`);
    } finally {
      await startAgent(cluster, host2, agentArgs);
    }
    // The returning agent removes whatever its half-done restore left.
    const target = (await getMigration('move-rb'))?.status?.targetContainer;
    assert.ok(target, 'the Migration names its target');
    await eventually('no copy of the counter on the target host', async () => {
      const { containers } = await cri[host2]!.listContainers({
        filter: { labelSelector: { [runtimeLabels.name]: target, [runtimeLabels.namespace]: ns } },
      });
      return containers.length === 0 || undefined;
    });
    await kubectlOk(['delete', 'containers.gantry.dev', '-n', ns, 'counter-rb', '--wait=true']);
  });
});

describe('restart migration', () => {
  it('moves a 2-replica web Workload without a failed request', async () => {
    // Both replicas start on host-1 (host-2 cordoned); then host-2 opens for the move.
    await cordon(host2, true);
    await kubectlOk(['apply', '-f', '-'], {
      input: manifest('Workload', 'web', {
        replicas: 2,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: {
            image: cluster.images.web,
            healthCheck: { httpGet: { port: 8080 }, intervalSeconds: 1, timeoutSeconds: 1, retries: 1 },
          },
        },
      }),
    });
    const ready = async () =>
      (
        JSON.parse(
          await kubectlOk(['get', 'containers.gantry.dev', '-n', ns, '-l', 'app=web', '-o', 'json']),
        ) as { items: Container[] }
      ).items.filter(
        (c) =>
          c.status?.phase === 'Running' &&
          c.status.conditions?.some((x) => x.type === 'Ready' && x.status === 'True') &&
          !c.metadata.deletionTimestamp,
      );
    const replicas = await eventually('two ready replicas', async () =>
      (await ready()).length === 2 ? ready() : undefined,
    );
    assert.deepEqual(
      replicas.map((c) => c.spec.nodeName),
      [host1, host1],
    );
    const moving = replicas[0]!;
    await cordon(host2, false);

    // A client that sends to the replicas listed Ready. Its list is a moment old, as a load
    // balancer's is: a request that fails because its replica was deleted since (the source, at
    // hand-over) is one a real balancer would not have sent, and is counted apart.
    let failures = 0;
    let requests = 0;
    const raced = new Set<string>();
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        for (const c of await ready()) {
          requests++;
          const ok = await fetch(`http://${c.status!.ip}:8080/`, { signal: AbortSignal.timeout(2000) })
            .then((r) => r.ok)
            .catch(() => false);
          if (ok) continue;
          const now = await getContainer(c.metadata.name!);
          if (!now || now.metadata.deletionTimestamp) raced.add(c.metadata.name!);
          else failures++;
        }
      }
    })();
    await apply('Migration', 'move-web', {
      container: moving.metadata.name!,
      mode: 'Restart',
      timeoutSeconds: 120,
    });
    const m = await migrationDone('move-web');
    await new Promise((r) => setTimeout(r, 2000));
    stop = true;
    await loop;
    assert.equal(m.status?.phase, 'Succeeded', m.status?.message);
    assert.equal(m.status?.targetHost, host2);
    assert.ok(requests > 10, `enough requests were made (${requests})`);
    assert.equal(failures, 0, `${failures} of ${requests} requests failed`);
    assert.ok(
      [...raced].every((name) => name === moving.metadata.name),
      `only the moved replica went away under the client: ${[...raced].join(', ')}`,
    );
    assert.equal((await ready()).length, 2, 'the Workload has its two replicas');
  });
});

describe('drain', () => {
  it('moves every Container off a drained host, never more than maxConcurrentMigrations at a time', async () => {
    const names = ['d1', 'd2', 'd3', 'd4'];
    for (const n of names) await apply('Container', n, { image: cluster.images.counter, nodeName: host1 });
    for (const n of names) await running(n);
    // Every change of the drain's Migrations, in the apiserver's order, from before the drain
    // until every one of them has ended.
    const recorder = await WatchRecorder.start<Migration>(
      `/apis/gantry.dev/v1alpha1/namespaces/${ns}/migrations`,
      {
        labelSelector: `gantry.dev/drain-host=${host1}`,
      },
    );
    let drained: Migration[];
    try {
      await kubectlOk([
        'patch',
        'hosts.gantry.dev',
        host1,
        '--type=merge',
        '-p',
        '{"spec":{"drain":true,"maxConcurrentMigrations":2}}',
      ]);
      await eventually(
        'the host to be drained',
        async () => (await getObject<Host>(['hosts.gantry.dev', host1]))?.status?.drain?.phase === 'Drained',
        { timeoutMs: 240_000, intervalMs: 1000 },
      );
      // The watch may deliver the last endings a moment after the Host says Drained.
      drained = await eventually('the watch to have seen every Migration end', () => {
        const all = [...recorder.current().values()];
        return all.length >= names.length && all.every(ended) ? all : undefined;
      });
    } catch (e) {
      await recorder.stop().catch(() => undefined);
      throw e;
    }
    await recorder.stop();
    // In flight, for the drain: from its creation until it records a final phase.
    let most = 0;
    let when = '';
    recorder.replay((live, event) => {
      const active = [...live.values()].filter((m) => !ended(m));
      if (active.length > most) {
        most = active.length;
        when = `after ${event ? `${event.type} ${event.object.metadata.name} (resourceVersion ${event.object.metadata.resourceVersion})` : 'the initial list'}: ${active.map((m) => m.metadata.name).join(', ')}`;
      }
    });
    // The Migrations' own timestamps tell the same (to the second: a move that ended in the second
    // another began does not count as overlapping it).
    const stamped = maxOverlap(
      drained.map((m) => ({
        item: m.metadata.name!,
        start: BigInt(Date.parse(m.status?.startedAt ?? String(m.metadata.creationTimestamp))),
        end: BigInt(Date.parse(m.status!.completedAt!)),
      })),
    );
    console.log(
      `# drain: ${recorder.events.length} Migration events; at most ${most} in flight (${when}); ` +
        `${stamped.count} by startedAt/completedAt`,
    );
    assert.ok(most <= 2, `more than maxConcurrentMigrations=2 in flight at once: ${most}, ${when}`);
    assert.ok(
      stamped.count <= 2,
      `their timestamps overlap ${stamped.count} at once: ${stamped.items.join(', ')}`,
    );
    assert.equal(most, 2, 'the drain moved two at a time, up to its limit');
    const moved = drained.filter((m) => m.status?.phase === 'Succeeded');
    for (const n of names)
      assert.ok(
        moved.some((m) => m.spec.container === n),
        `${n} moved`,
      );
    for (const m of moved) {
      const c = await getContainer(m.status!.targetContainer!);
      assert.equal(c?.spec.nodeName, host2);
    }
  });
});
