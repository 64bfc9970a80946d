// Traffic to Gantry Containers through a Service, end to end on the local cluster: a container on
// host-1 calls one on host-2 by the Service's name (the cluster's DNS, CoreDNS, given to the
// containers by the agents), and two clients call a Workload without pause, one at the Service's
// ClusterIP from this machine, one by its name from inside a Gantry container, while it scales
// 2 -> 6 -> 2, rolls out a new template and has one replica migrated: every request's outcome is
// recorded, none may fail (no client retries), and every replica answers. A replica failing its
// health check is withdrawn from the Service's slice within interval x retries, measured on the
// apiserver's record of the slices (WatchRecorder), and the clients' record shows it answered
// nothing after kube-proxy followed.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { Container, Host, Migration } from '../../src/api/v1alpha1/index.js';
import { CriClient } from '../../src/cri/client.js';
import { startGantry, stopGantry } from '../../src/localcluster/gantry.js';
import { dnsRouted } from '../../src/localcluster/network.js';
import { deleteTestNamespace, getObject, kubectlOk, localCluster } from '../support/cluster.js';
import { getOnce, serveName } from '../support/http.js';
import { eventually } from '../support/wait.js';
import { WatchRecorder } from '../support/watch.js';

const cluster = localCluster();
const [host1, host2] = cluster.hosts.map((h) => h.name) as [string, string];
const cri = Object.fromEntries(cluster.hosts.map((h) => [h.name, new CriClient(h.criSocket)]));
const ns = `e2e-traffic-${process.pid}`;
const health = { intervalSeconds: 1, retries: 2 };

const template = (revision: string, labels: Record<string, string>) => ({
  metadata: { labels },
  spec: {
    image: cluster.images.web,
    command: ['/bin/sh', '-c', serveName],
    env: [{ name: 'REVISION', value: revision }],
    ports: [{ name: 'http', containerPort: 8080 }],
    healthCheck: { httpGet: { port: 8080, path: '/healthz' }, timeoutSeconds: 1, ...health },
  },
});

const object = (kind: string, name: string, spec: Record<string, unknown>, labels?: Record<string, string>) =>
  JSON.stringify({
    apiVersion: kind === 'Service' ? 'v1' : 'gantry.dev/v1alpha1',
    kind,
    metadata: { name, namespace: ns, ...(labels ? { labels } : {}) },
    spec,
  });

const apply = (kind: string, name: string, spec: Record<string, unknown>, labels?: Record<string, string>) =>
  kubectlOk(['apply', '-f', '-'], { input: object(kind, name, spec, labels) });

/** A Service (port 80 to the Containers' `http`) that selects Gantry Containers labelled app=<app>. */
const applyService = (name: string, app: string) =>
  apply(
    'Service',
    name,
    { selector: { app }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
    { 'gantry.dev/select-containers': 'true' },
  );

const applyWorkload = (replicas: number, revision = '1') =>
  apply('Workload', 'web', {
    replicas,
    selector: { matchLabels: { app: 'web' } },
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 1 } },
    template: template(revision, { app: 'web' }),
  });

const isReady = (c: Container) =>
  c.status?.phase === 'Running' &&
  !c.metadata.deletionTimestamp &&
  c.status.conditions?.some((x) => x.type === 'Ready' && x.status === 'True');

async function containers(selector: string): Promise<Container[]> {
  const out = await kubectlOk(['get', 'containers.gantry.dev', '-n', ns, '-l', selector, '-o', 'json']);
  return (JSON.parse(out) as { items: Container[] }).items;
}

/** Waits until the Workload runs exactly `replicas` ready Containers of `revision` and nothing else. */
async function converged(replicas: number, revision = '1'): Promise<Container[]> {
  return eventually(
    `web to run ${replicas} ready replicas of revision ${revision} and nothing else`,
    async () => {
      const cs = await containers('app=web');
      const current = (c: Container) => c.spec.env?.some((e) => e.value === revision);
      return cs.length === replicas && cs.every((c) => isReady(c) && current(c)) && cs;
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  );
}

async function running(name: string): Promise<Container> {
  return eventually(`${name} to be ready`, async () => {
    const c = await getObject<Container>(['containers.gantry.dev', '-n', ns, name]);
    return c && isReady(c) ? c : undefined;
  });
}

/** Runs a command in a Gantry container through its host's runtime (CRI ExecSync). */
async function exec(c: Container, cmd: string[], timeout = 10) {
  const r = await cri[c.spec.nodeName!]!.execSync({ containerId: c.status!.containerID!, cmd, timeout });
  return { exitCode: r.exitCode, stdout: r.stdout.toString().trim(), stderr: r.stderr.toString().trim() };
}

/** Gantry's endpoints of a Service in one recorded state: address -> ready. */
function endpoints(slices: Iterable<V1EndpointSlice>): Map<string, boolean> {
  const out = new Map<string, boolean>();
  for (const s of slices) {
    if (s.metadata?.labels?.['endpointslice.kubernetes.io/managed-by'] !== 'gantry.dev') continue;
    for (const e of s.endpoints ?? []) out.set(e.addresses[0]!, e.conditions?.ready === true);
  }
  return out;
}

/** One request of a client, as it went. */
interface Outcome {
  client: 'clusterIP' | 'name';
  startedAt: number;
  endedAt: number;
  /** The replica that answered; undefined when the request failed. */
  answer?: string;
  error?: string;
}

/**
 * Two clients calling the Workload's Service without pause and without retries, each outcome
 * recorded: one at the ClusterIP from this machine (kube-proxy's rules), one by the Service's name
 * from inside a Gantry container on host-1 (its resolv.conf, CoreDNS at 10.0.0.10, then the
 * ClusterIP from the container's network), with busybox wget.
 */
class Clients {
  readonly outcomes: Outcome[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[];

  constructor(clusterIP: string, inside: Container) {
    this.loops = [
      this.loop('clusterIP', async () => {
        const res = await getOnce(`http://${clusterIP}/`, 5_000);
        if (res.status !== 200) throw new Error(`${clusterIP} answered HTTP ${res.status}: ${res.body}`);
        return res.body;
      }),
      this.loop('name', async () => {
        // No -T: busybox 1.35's wget crashes with it (SIGSEGV); the exec's timeout bounds the call.
        const r = await exec(inside, ['wget', '-qO-', 'http://web/'], 5);
        if (r.exitCode !== 0) throw new Error(`wget exited ${r.exitCode}: ${r.stderr}`);
        return r.stdout;
      }),
    ];
  }

  private async loop(client: Outcome['client'], call: () => Promise<string>): Promise<void> {
    while (!this.stopped) {
      const startedAt = Date.now();
      try {
        const answer = await call();
        this.outcomes.push({ client, startedAt, endedAt: Date.now(), answer });
      } catch (e) {
        this.outcomes.push({ client, startedAt, endedAt: Date.now(), error: (e as Error).message });
      }
    }
  }

  /**
   * Resolves once each of these Containers (by the name it answers with) has answered a request
   * that started after `since`: of either client, or of each one when `eachClient`.
   */
  async answeredBy(
    cs: Container[],
    since: number,
    { as = (c: Container) => c.metadata.name!, eachClient = false } = {},
  ): Promise<void> {
    const want = cs.map(as);
    const clients: Outcome['client'][][] = eachClient ? [['clusterIP'], ['name']] : [['clusterIP', 'name']];
    const answered = (by: Outcome['client'][]) =>
      new Set(
        this.outcomes
          .filter((o) => o.startedAt >= since && o.answer && by.includes(o.client))
          .map((o) => o.answer!),
      );
    await eventually(`${want.join(', ')} to answer ${eachClient ? 'each client' : 'the clients'}`, () =>
      clients.every((by) => want.every((n) => answered(by).has(n))),
    ).catch((e: Error) => {
      const seen = clients.map((by) => `${by.join(' or ')}: ${[...answered(by)].join(', ') || 'none'}`);
      throw new Error(`${e.message}; answered since: ${seen.join('; ')}`);
    });
  }

  async stop(): Promise<Outcome[]> {
    this.stopped = true;
    await Promise.all(this.loops);
    return this.outcomes;
  }
}

/** Requests per client and answers per replica, for the log. */
function tally(outcomes: readonly Outcome[]): string {
  const count = (xs: string[]) =>
    Object.entries(xs.reduce<Record<string, number>>((m, x) => ({ ...m, [x]: (m[x] ?? 0) + 1 }), {}))
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
  return (
    `by client: ${count(outcomes.map((o) => `${o.client} ${o.error ? 'failed' : 'ok'}`))}; ` +
    `by replica: ${count(outcomes.filter((o) => o.answer).map((o) => o.answer!))}`
  );
}

before(async () => {
  assert.ok(
    cluster.dns && (await dnsRouted()),
    "the local cluster runs without the cluster's DNS (brought up before it had CoreDNS): run `npm run cluster:up` again",
  );
  await startGantry(cluster, {
    agent: ['--restart-backoff-seconds=1', '--renew-interval-seconds=2', '--report-interval-seconds=5'],
  });
  await kubectlOk(['create', 'namespace', ns]);
});

after(async () => {
  await deleteTestNamespace(ns);
  await stopGantry(cluster);
  for (const c of Object.values(cri)) c.close();
});

describe("Service traffic to Gantry Containers, by ClusterIP and by the cluster's DNS (e2e)", () => {
  let client: Container;

  it("gives a container the cluster's DNS, and it calls a container on the other host by the Service's name", async () => {
    await apply('Container', 'echo', { ...template('1', {}).spec, nodeName: host2 }, { app: 'echo' });
    await applyService('echo', 'echo');
    // Any container will do as a client: this one waits, and stops at once when asked.
    await apply('Container', 'client', {
      image: cluster.images.web,
      command: ['/bin/sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done'],
      nodeName: host1,
    });
    client = await running('client');
    const echo = await running('echo');

    const resolv = await exec(client, ['cat', '/etc/resolv.conf']);
    assert.match(resolv.stdout, new RegExp(`^nameserver ${cluster.dns!.ip.replaceAll('.', '\\.')}$`, 'm'));
    assert.match(
      resolv.stdout,
      new RegExp(`^search ${ns}\\.svc\\.cluster\\.local svc\\.cluster\\.local cluster\\.local$`, 'm'),
    );
    assert.match(resolv.stdout, /^options ndots:5$/m);

    const clusterIP = (await getObject<V1Service>(['service', '-n', ns, 'echo']))!.spec!.clusterIP!;
    // busybox's nslookup asks every search domain and says which one answered.
    const lookup = await exec(client, ['nslookup', 'echo']);
    assert.match(
      lookup.stdout,
      new RegExp(
        `^Name:\\s+echo\\.${ns}\\.svc\\.cluster\\.local\\nAddress: ${clusterIP.replaceAll('.', '\\.')}$`,
        'm',
      ),
      `nslookup echo: ${lookup.stdout} ${lookup.stderr}`,
    );
    // Once Gantry has listed the endpoint (the Service's slice), the name answers with the container.
    const answer = await eventually('echo to answer by its name', async () => {
      const r = await exec(client, ['wget', '-qO-', 'http://echo/'], 5);
      return r.exitCode === 0 && r.stdout;
    });
    assert.equal(answer, echo.metadata.name, `${host1} -> ${host2} by the name echo`);
    assert.equal(echo.spec.nodeName, host2);
    assert.equal(client.spec.nodeName, host1);
    // And as <service>.<namespace>, as from another namespace.
    const qualified = await exec(client, ['wget', '-qO-', `http://echo.${ns}/`], 5);
    assert.equal(qualified.stdout, echo.metadata.name, qualified.stderr);

    // A name outside the cluster is refused at once, not after the resolver's timeouts.
    const startedAt = Date.now();
    const outside = await exec(client, ['wget', '-qO-', 'http://example.com/'], 5);
    const tookMs = Date.now() - startedAt;
    assert.notEqual(outside.exitCode, 0);
    assert.match(outside.stderr, /bad address/);
    assert.ok(tookMs < 2_000, `an outside name took ${tookMs} ms to fail`);
  });

  it('fails no request while the Workload scales 2 -> 6 -> 2, rolls out and has a replica migrated, and every replica answers; a replica failing its health check is withdrawn within interval x retries', async () => {
    assert.ok(client, 'the client container of the first test runs');
    for (const name of [host1, host2]) {
      // An agent restarted by before() reports its probe's verdict a moment after it starts.
      const cp = await eventually(
        `Host ${name} to report whether it can checkpoint`,
        async () => (await getObject<Host>(['hosts.gantry.dev', name]))?.status?.checkpoint,
      );
      assert.equal(
        cp?.supported,
        true,
        `Host ${name} cannot checkpoint, so no replica can be migrated: ${JSON.stringify(cp)}`,
      );
    }
    const slices = await WatchRecorder.start<V1EndpointSlice>(
      `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
      { labelSelector: 'kubernetes.io/service-name=web' },
    );
    let clients: Clients | undefined;
    try {
      await applyWorkload(2);
      await applyService('web', 'web');
      const clusterIP = (await getObject<V1Service>(['service', '-n', ns, 'web']))!.spec!.clusterIP!;
      let cs = await converged(2);
      await eventually('the slice to list both replicas ready', () => {
        const ready = [...endpoints(slices.current().values())].filter(([, r]) => r).length;
        return ready === 2;
      });
      clients = new Clients(clusterIP, client);
      let since = Date.now();
      // The first requests may be sent before kube-proxy has the new Service's rules: the record
      // starts once both replicas have answered each client.
      await clients.answeredBy(cs, since, { eachClient: true });
      const recordFrom = clients.outcomes.length;
      const marks: { what: string; at: number }[] = [{ what: 'steady', at: 0 }];

      const steps: [string, () => Promise<Container[]>][] = [
        ['scale to 6', () => applyWorkload(6).then(() => converged(6))],
        ['scale to 2', () => applyWorkload(2).then(() => converged(2))],
        ['roll out revision 2', () => applyWorkload(2, '2').then(() => converged(2, '2'))],
      ];
      for (const [what, step] of steps) {
        since = Date.now();
        marks.push({ what, at: since });
        cs = await step();
        await clients.answeredBy(cs, since);
        console.log(
          `# ${what}: serving ${cs.map((c) => `${c.metadata.name} on ${c.spec.nodeName}`).join(', ')}`,
        );
      }

      // One replica moves, memory and all: the same process answers from the other host.
      const moving = cs[0]!;
      marks.push({ what: 'migrate', at: Date.now() });
      await apply('Migration', 'move-web', {
        container: moving.metadata.name!,
        mode: 'Checkpoint',
        timeoutSeconds: 120,
      });
      const m = await eventually(
        'the Migration to finish',
        async () => {
          const m = await getObject<Migration>(['migrations.gantry.dev', '-n', ns, 'move-web']);
          return m && ['Succeeded', 'Failed', 'RolledBack'].includes(m.status?.phase ?? '') ? m : undefined;
        },
        { timeoutMs: 120_000 },
      );
      assert.equal(m.status?.phase, 'Succeeded', m.status?.message);
      cs = await converged(2, '2');
      const moved = cs.find((c) => c.metadata.name === m.status?.targetContainer);
      assert.ok(moved, `${m.status?.targetContainer} serves`);
      assert.notEqual(moved.spec.nodeName, moving.spec.nodeName);
      // Its hostname file came along in the checkpoint: it answers with the name it had, and only
      // it can now (the source stopped at its checkpoint).
      const answerOf = (c: Container) =>
        c.metadata.name === moved.metadata.name ? moving.metadata.name! : c.metadata.name!;
      since = Date.now();
      await clients.answeredBy(cs, since, { as: answerOf });
      console.log(
        `# migrate ${moving.metadata.name} from ${moving.spec.nodeName} to ${moved.spec.nodeName}: downtime ${m.status?.downtimeSeconds}s`,
      );

      // Health: one replica's check starts failing; it must leave the slice within interval x retries.
      const [sick, well] = cs as [Container, Container];
      const failedAt = Date.now();
      marks.push({ what: 'health check failing', at: failedAt });
      await exec(sick, ['rm', '/tmp/www/healthz']);
      const withdrawn = await eventually(`${sick.metadata.name} to be marked not ready in the slice`, () =>
        slices.events.find(
          (e) => e.receivedAt >= failedAt && endpoints([e.object]).get(sick.status!.ip!) === false,
        ),
      );
      // Requests go on for a few seconds more: the record must show the sick replica unanswering.
      since = Date.now();
      await eventually('5 s of requests after the withdrawal', () => Date.now() - since > 5_000, {
        intervalMs: 500,
      });
      const outcomes = await clients.stop();
      clients = undefined;

      const recorded = outcomes.slice(recordFrom);
      const failures = recorded.filter((o) => o.error);
      console.log(`# ${recorded.length} requests, ${failures.length} failed; ${tally(recorded)}`);
      const during = (t: number) => marks.findLast((mark) => mark.at <= t)?.what ?? 'before';
      assert.deepEqual(
        failures.map(
          (f) => `${new Date(f.startedAt).toISOString()} (${during(f.startedAt)}) ${f.client}: ${f.error}`,
        ),
        [],
        `${failures.length} of ${recorded.length} requests failed`,
      );

      const sickName = answerOf(sick);
      const ready = sick.status?.conditions?.find((c) => c.type === 'Ready');
      const sickNow = await getObject<Container>(['containers.gantry.dev', '-n', ns, sick.metadata.name!]);
      const notReady = sickNow?.status?.conditions?.find((c) => c.type === 'Ready');
      // Healthy again only after its Ready condition was read: it turns True within a check.
      await exec(sick, ['touch', '/tmp/www/healthz']);
      assert.equal(notReady?.status, 'False', `${sick.metadata.name} is not ready`);
      const boundMs = health.intervalSeconds * health.retries * 1000;
      const tookMs = withdrawn.receivedAt - failedAt;
      const lastAnswer = Math.max(...recorded.filter((o) => o.answer === sickName).map((o) => o.startedAt));
      console.log(
        `# ${sick.metadata.name}: health failing from ${new Date(failedAt).toISOString()}, Ready=False at ` +
          `${notReady?.lastTransitionTime} (was True since ${ready?.lastTransitionTime}), withdrawn from the ` +
          `slice ${tookMs} ms later (interval x retries = ${boundMs} ms), its last answered request started ` +
          `${lastAnswer - withdrawn.receivedAt} ms after that`,
      );
      // Its Ready condition (to the second) and its slice entry: within interval x retries, plus one
      // check's timeout (1 s) and the writes of the status and the slice.
      const readyFalseMs = Date.parse(notReady!.lastTransitionTime!) - failedAt;
      assert.ok(
        readyFalseMs <= boundMs + 2_000,
        `Ready=False ${readyFalseMs} ms after its check began failing: over ${boundMs} ms and 2 s of slack`,
      );
      assert.ok(
        tookMs <= boundMs + 2_000,
        `withdrawn ${tookMs} ms after its check began failing: over ${boundMs} ms and 2 s of slack`,
      );
      // kube-proxy follows a slice within its minimum sync period (1 s) and the rules' write.
      assert.ok(
        lastAnswer - withdrawn.receivedAt <= 2_000,
        `${sickName} still answered a request started ${lastAnswer - withdrawn.receivedAt} ms after its withdrawal`,
      );
      assert.ok(
        recorded.some((o) => o.answer === answerOf(well) && o.startedAt > withdrawn.receivedAt + 2_000),
        'the healthy replica answered after the withdrawal',
      );
    } finally {
      await clients?.stop();
      await slices.stop().catch(() => undefined);
    }
  });
});
