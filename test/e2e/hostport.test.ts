// A hostPort (docker run -p HOST_PORT:PORT) on the local cluster's hosts, which share this
// machine's network namespace: each Host publishes on its own address, so one port number serves
// one Container per Host. A Workload with one replica more than there are Hosts gets one replica
// on every Host (never two on one, in any state the apiserver recorded) and the extra one waits,
// saying which port is in use; an HTTP request to <Host address>:<hostPort> from this machine
// reaches the replica on that Host. `kubectl gantry run -p HOST_PORT:PORT`, typed by a user bound
// to edit, waits for a free port; scaling the Workload down frees one once its replica is gone
// (not while it terminates), and the user's container is reached there.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Container, Host } from '../../src/api/v1alpha1/index.js';
import { startGantry, stopGantry } from '../../src/localcluster/gantry.js';
import { hostAddress } from '../../src/localcluster/network.js';
import { localDir } from '../../src/localcluster/state.js';
import { getObject, kubectl, kubectlOk, localCluster } from '../support/cluster.js';
import { typed, userWithRole } from '../support/users.js';
import { eventually } from '../support/wait.js';
import { WatchRecorder } from '../support/watch.js';

const cluster = localCluster();
const ns = `e2e-hostport-${process.pid}`;
const hostNames = cluster.hosts.map((h) => h.name).sort();
const hosts = hostNames.length;
const hostPort = 18080;

// Each Container serves its own name; asked to stop, it takes 10 s more: it terminates (its port
// still counted) long enough for the scheduler to be asked again meanwhile.
const serveName = [
  'mkdir -p /tmp/www && hostname > /tmp/www/index.html',
  'httpd -f -p 8080 -h /tmp/www & trap "sleep 10; kill $!; exit 0" TERM INT; wait',
].join('\n');

const workload = (replicas: number) =>
  JSON.stringify({
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Workload',
    metadata: { name: 'web', namespace: ns },
    spec: {
      replicas,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: {
          image: cluster.images.web,
          command: ['/bin/sh', '-c', serveName],
          ports: [{ containerPort: 8080, hostPort }],
        },
      },
    },
  });

const inUse = (n: number) =>
  `${n} ${n === 1 ? 'host has' : 'hosts have'} the host port ${hostPort}/TCP in use`;

async function containers(): Promise<Container[]> {
  return (
    JSON.parse(await kubectlOk(['get', 'containers.gantry.dev', '-n', ns, '-o', 'json'])) as {
      items: Container[];
    }
  ).items;
}

const scheduled = (c: Container) => c.status?.conditions?.find((x) => x.type === 'Scheduled');

/** The Host's address as its agent reports it (Host.status.address). */
async function addressOf(host: string): Promise<string> {
  return (await getObject<Host>(['host', host]))?.status?.address ?? '';
}

/** GET / on address:hostPort from this machine: the name of the Container that answered. */
async function whoAnswers(address: string): Promise<string> {
  const url = `http://${address}:${hostPort}/`;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3_000) });
    return (await res.text()).trim();
  } catch (e) {
    throw new Error(
      `${url}: ${String((e as Error).cause ?? e)} (is portmap in the CNI chain of Gantry's containerd?)`,
    );
  }
}

/** In every state the record went through, no Host had two Containers of ns publishing the port. */
function neverTwoOnOneHost(record: WatchRecorder<Container>): void {
  record.replay((live, event) => {
    const perHost = new Map<string, string[]>();
    for (const c of live.values()) {
      if (!c.spec.nodeName || !c.spec.ports?.some((p) => p.hostPort === hostPort)) continue;
      perHost.set(c.spec.nodeName, [...(perHost.get(c.spec.nodeName) ?? []), c.metadata.name!]);
    }
    for (const [host, names] of perHost)
      assert.equal(names.length, 1, `${names.join(' and ')} on ${host} at once (after ${event?.type})`);
  });
}

describe('hostPort (e2e)', { timeout: 600_000 }, () => {
  let record: WatchRecorder<Container>;
  let editor: string;

  before(async () => {
    await startGantry(cluster);
    await kubectlOk(['create', 'namespace', ns]);
    editor = await userWithRole(ns, 'editor', 'edit');
    record = await WatchRecorder.start<Container>(`/apis/gantry.dev/v1alpha1/namespaces/${ns}/containers`);
  });

  after(async () => {
    await record?.stop().catch(() => undefined);
    await kubectl(['delete', 'namespace', ns, '--wait=true', '--timeout=120s'], { timeoutMs: 150_000 });
    await stopGantry(cluster);
  });

  it("puts one replica on each Host, the extra one waits naming the port, and each Host's address reaches its own", async () => {
    await kubectlOk(['apply', '-f', '-'], { input: workload(hosts + 1) });
    const cs = await eventually(
      `${hosts} replicas running and one waiting`,
      async () => {
        const all = await containers();
        const running = all.filter((c) => c.status?.phase === 'Running');
        const waiting = all.filter((c) => scheduled(c)?.status === 'False');
        return all.length === hosts + 1 && running.length === hosts && waiting.length === 1 && all;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    const bound = cs.filter((c) => c.spec.nodeName);
    assert.deepEqual(bound.map((c) => c.spec.nodeName).sort(), hostNames, 'one replica on each Host');
    const waiting = cs.find((c) => !c.spec.nodeName)!;
    assert.equal(waiting.status?.phase, 'Pending');
    assert.equal(scheduled(waiting)?.reason, 'Unschedulable');
    assert.match(
      scheduled(waiting)!.message,
      new RegExp(`^0/\\d+ hosts? (is|are) available: .*${inUse(hosts)}`),
    );
    const events = JSON.parse(
      await kubectlOk([
        'get',
        'events',
        '-n',
        ns,
        '--field-selector',
        `involvedObject.name=${waiting.metadata.name}`,
        '-o',
        'json',
      ]),
    ) as { items: { type: string; reason: string; message: string }[] };
    assert.ok(
      events.items.some(
        (e) => e.type === 'Warning' && e.reason === 'FailedScheduling' && e.message.includes(inUse(hosts)),
      ),
      `no FailedScheduling event naming the port: ${JSON.stringify(events.items)}`,
    );

    for (const c of bound) {
      const host = c.spec.nodeName!;
      const address = await addressOf(host);
      // The agent reports the address it publishes on: the local cluster's own for that host.
      assert.equal(address, hostAddress(localDir, host, cluster.kubelet), `${host}'s address`);
      const answer = await eventually(`${address}:${hostPort} to answer`, () => whoAnswers(address), {
        timeoutMs: 30_000,
      });
      assert.equal(answer, c.metadata.name, `${address}:${hostPort} is ${host}'s replica`);
    }
    neverTwoOnOneHost(record);
  });

  it('kubectl gantry run -p HOST_PORT:PORT waits for a free port; a Workload scaled down frees one once its replica is gone', async () => {
    const run = await typed(editor, [
      'gantry',
      'run',
      cluster.images.web,
      '--name',
      'extra',
      '-p',
      `${hostPort}:8080`,
      '--',
      '/bin/sh',
      '-c',
      serveName,
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'container.gantry.dev/extra created\n');
    await eventually('extra to wait for the port', async () => {
      const extra = await getObject<Container>(['container', 'extra', '-n', ns]);
      return scheduled(extra!)?.status === 'False' && scheduled(extra!)!.message.includes(inUse(hosts));
    });

    // The scale-down removes the waiting replica and one running replica (ReplicaSet's order).
    await kubectlOk(['scale', 'workload/web', '-n', ns, `--replicas=${hosts - 1}`]);
    const freed = await eventually('a running replica to terminate', async () =>
      (await containers()).find((c) => c.spec.nodeName && c.metadata.deletionTimestamp),
    );
    // A bound Container deleted makes the scheduler try every waiting one again (its room may be
    // free): one deleted while the replica terminates asks it while the port is still held.
    const nudge = {
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Container',
      metadata: { name: 'nudge', namespace: ns },
      spec: { image: cluster.images.web, nodeName: `${ns}-nowhere` },
    };
    await kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(nudge) });
    await kubectlOk(['delete', 'container', 'nudge', '-n', ns, '--wait=true']);
    const extra = await eventually(
      'extra to be bound',
      async () => {
        const c = await getObject<Container>(['container', 'extra', '-n', ns]);
        return !!c?.spec.nodeName && c.status?.phase === 'Running' && c;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    assert.equal(extra.spec.nodeName, freed.spec.nodeName, "extra takes the freed Host's port");
    const events = record.events;
    const at = (what: (c: Container, type: string) => boolean) =>
      events.findIndex((e) => what(e.object, e.type));
    const nudged = at((c, type) => c.metadata.name === 'nudge' && type === 'DELETED');
    const gone = at((c, type) => c.metadata.uid === freed.metadata.uid && type === 'DELETED');
    const bound = at((c) => c.metadata.name === 'extra' && !!c.spec.nodeName);
    assert.ok(
      gone >= 0 && bound > gone,
      `extra was bound (event ${bound}) before ${freed.metadata.name} was gone (event ${gone})`,
    );
    assert.ok(
      nudged >= 0 && nudged < gone,
      `the nudge (event ${nudged}) came while ${freed.metadata.name} terminated`,
    );
    neverTwoOnOneHost(record);

    const address = await addressOf(extra.spec.nodeName!);
    assert.equal(
      await eventually(`${address}:${hostPort} to answer`, () => whoAnswers(address), { timeoutMs: 30_000 }),
      'extra',
    );
    const ps = await typed(editor, ['gantry', 'ps', '-o', 'wide']);
    assert.equal(ps.code, 0, ps.stderr);
    assert.match(ps.stdout, new RegExp(`^extra .* ${hostPort}->8080/tcp `, 'm'));
  });
});
