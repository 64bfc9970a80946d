// A host cut off from the apiserver, not down: its agent reaches the apiserver through a TCP proxy
// the test can cut, while the host and its containers run on. With --fence-after-seconds the agent
// stops its Workload replicas before the controller replaces them on the other host, so no replica
// ever runs twice, and its bare Container runs on. When the connection comes back, nothing the
// controller replaced comes back to life there.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Container, Host } from '../../src/api/v1alpha1/index.js';
import { CriClient } from '../../src/cri/client.js';
import { labels as runtimeLabels } from '../../src/agent/runtimespec.js';
import {
  agentPorts,
  installCrds,
  startAgent,
  startController,
  stopAgent,
  stopController,
} from '../../src/localcluster/gantry.js';
import { getObject, kubectl, kubectlOk, localCluster } from '../support/cluster.js';
import { maxOverlap } from '../support/intervals.js';
import { nanosIso, RuntimeRecorder, runIntervals, type RuntimeRun } from '../support/runtime.js';
import { eventually } from '../support/wait.js';

const cluster = localCluster();
const [host1, host2] = cluster.hosts.map((h) => h.name) as [string, string];
const cri = Object.fromEntries(cluster.hosts.map((h) => [h.name, new CriClient(h.criSocket)]));
const ns = `e2e-fencing-${process.pid}`;
const agentArgs = [
  '--renew-interval-seconds=1',
  '--report-interval-seconds=5',
  '--restart-backoff-seconds=1',
];

/** A TCP proxy to the apiserver that can be cut (every connection dropped, new ones refused) and restored. */
class CuttableProxy {
  private readonly sockets = new Set<net.Socket>();
  private open = true;
  private readonly server: net.Server;

  constructor(target: { host: string; port: number }) {
    this.server = net.createServer((client) => {
      if (!this.open) return void client.destroy();
      const upstream = net.connect(target);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  cut(): void {
    this.open = false;
    for (const s of this.sockets) s.destroy();
  }

  restore(): void {
    this.open = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

const apiserver = new URL(cluster.apiServerURL);
const proxy = new CuttableProxy({ host: apiserver.hostname, port: Number(apiserver.port) });
const proxyKubeconfig = path.join(os.tmpdir(), `gantry-fencing-${process.pid}.kubeconfig`);

/** Running runtime containers of this test's Workload replicas, per host. */
async function runningReplicas(): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const [host, client] of Object.entries(cri)) {
    const { containers } = await client.listContainers({
      filter: { labelSelector: { [runtimeLabels.namespace]: ns }, state: { state: 'CONTAINER_RUNNING' } },
    });
    out[host] = containers
      .map((c) => c.labels[runtimeLabels.name] ?? '')
      .filter((name) => name.startsWith('web-'));
  }
  return out;
}

async function containers(): Promise<Container[]> {
  const out = await kubectlOk(['get', 'containers.gantry.dev', '-n', ns, '-o', 'json']);
  return (JSON.parse(out) as { items: Container[] }).items;
}

/** host-2's agent's gantry_agent_fenced, from its /metrics. */
async function fencedGauge(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${agentPorts(host2).metrics}/metrics`)).text();
  return Number(/^gantry_agent_fenced (\S+)$/m.exec(text)?.[1]);
}

const hostReady = async (name: string) =>
  (await getObject<Host>(['hosts.gantry.dev', name]))?.status?.conditions?.find((c) => c.type === 'Ready')
    ?.status;

describe('a host cut off from the apiserver, with self-fencing', { timeout: 300_000 }, () => {
  before(async () => {
    const port = await proxy.listen();
    fs.writeFileSync(
      proxyKubeconfig,
      fs
        .readFileSync(cluster.kubeconfig, 'utf8')
        .replaceAll(cluster.apiServerURL, `https://127.0.0.1:${port}`),
    );
    await installCrds(cluster);
    // Agents or a controller left running with other flags are restarted with these.
    await startController(cluster, ['--host-lost-grace=10s']);
    await startAgent(cluster, host1, agentArgs);
    // The later --kubeconfig wins: host-2 talks to the apiserver through the proxy only.
    await startAgent(cluster, host2, [
      ...agentArgs,
      `--kubeconfig=${proxyKubeconfig}`,
      '--fence-after-seconds=4',
    ]);
    await eventually(
      'both Hosts Ready',
      async () => (await hostReady(host1)) === 'True' && (await hostReady(host2)) === 'True',
    );
    await kubectlOk(['create', 'namespace', ns]);
  });

  after(async () => {
    proxy.restore();
    await kubectl(['delete', 'namespace', ns, '--wait=true', '--timeout=120s'], { timeoutMs: 150_000 });
    await Promise.all([stopAgent(host1), stopAgent(host2)]);
    await stopController();
    await proxy.close();
    fs.rmSync(proxyKubeconfig, { force: true });
    for (const c of Object.values(cri)) c.close();
  });

  it('stops its Workload replicas before they are replaced, keeps its bare Container, and starts nothing twice', async () => {
    await kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Workload',
        metadata: { name: 'web', namespace: ns },
        spec: {
          replicas: 4,
          selector: { matchLabels: { app: 'web' } },
          template: { metadata: { labels: { app: 'web' } }, spec: { image: cluster.images.web } },
        },
      }),
    });
    await kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Container',
        metadata: { name: 'bare', namespace: ns },
        spec: { image: cluster.images.web, nodeName: host2 },
      }),
    });
    const before = await eventually('2 replicas running on each host, and the bare Container', async () => {
      const running = await runningReplicas();
      const bare = (await containers()).find((c) => c.metadata.name === 'bare');
      return running[host1]!.length === 2 && running[host2]!.length === 2 && bare?.status?.phase === 'Running'
        ? running
        : undefined;
    });

    // What every host's containerd records, from before the cut until after the connection is back:
    // when each container started and finished, by the runtime's own clock (this machine's).
    const cutAt = BigInt(Date.now()) * 1_000_000n;
    const recorded = await RuntimeRecorder.during(cri, async () => {
      proxy.cut();
      const replaced = await eventually(
        'the 4 replicas to run on host-1',
        async () => {
          const running = await runningReplicas();
          return running[host1]!.length === 4 && running[host2]!.length === 0 ? running : undefined;
        },
        { timeoutMs: 90_000 },
      );
      const moved = replaced[host1]!.filter((name) => !before[host1]!.includes(name));
      assert.equal(moved.length, 2, 'two replacements were started on host-1');
      assert.equal(await fencedGauge(), 1, 'the agent says it is fenced (alert GantryHostFenced)');

      proxy.restore();
      await eventually('host-2 Ready again', async () => (await hostReady(host2)) === 'True', {
        timeoutMs: 60_000,
      });
      await eventually('the bare Container reported Running again', async () => {
        const bare = (await containers()).find((c) => c.metadata.name === 'bare');
        return (
          bare?.status?.phase === 'Running' &&
          bare.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')
        );
      });
      await new Promise((r) => setTimeout(r, 5000)); // time for a wrong restart to show
      assert.equal(await fencedGauge(), 0);
    });
    const runs = recorded.runs.filter((r) => r.labels[runtimeLabels.namespace] === ns);
    const replicas = runs.filter((r) => (r.labels[runtimeLabels.name] ?? '').startsWith('web-'));
    const show = (list: RuntimeRun[]) =>
      list
        .map(
          (r) =>
            `${r.host} ${r.labels[runtimeLabels.name]} ${nanosIso(r.startedAt)}..${nanosIso(r.finishedAt)}`,
        )
        .join('\n  ');
    const ranAtCut = (r: RuntimeRun) =>
      r.startedAt !== undefined &&
      r.startedAt < cutAt &&
      (r.finishedAt === undefined || r.finishedAt > cutAt);

    const fenced = replicas.filter((r) => r.host === host2 && ranAtCut(r));
    const replacements = replicas.filter((r) => r.host === host1 && r.startedAt! > cutAt);
    assert.equal(fenced.length, 2, `two replicas ran on host-2 at the cut:\n  ${show(replicas)}`);
    assert.equal(replacements.length, 2, `two replacements started on host-1:\n  ${show(replicas)}`);
    assert.ok(
      fenced.every((r) => r.finishedAt !== undefined),
      `the fence stopped host-2's replicas:\n  ${show(fenced)}`,
    );
    const most = maxOverlap(runIntervals(replicas));
    const fencedBy = fenced.reduce((t, r) => (r.finishedAt! > t ? r.finishedAt! : t), 0n);
    const replacedFrom = replacements.reduce(
      (t, r) => (r.startedAt! < t ? r.startedAt! : t),
      replacements[0]!.startedAt!,
    );
    console.log(
      `# fencing: host-2's replicas stopped by ${nanosIso(fencedBy)}, replacements started from ${nanosIso(replacedFrom)} ` +
        `(${Number((replacedFrom - fencedBy) / 1_000_000n)} ms later); at most ${most.count} replicas at once`,
    );
    assert.ok(
      most.count <= 4,
      `${most.count} replicas ran at once at ${nanosIso(most.at)} (the runtimes' records):\n  ${show(most.items)}`,
    );
    const restartedBehindFence = replicas.filter((r) => r.host === host2 && r.startedAt! > cutAt);
    assert.deepEqual(
      show(restartedBehindFence),
      '',
      'nothing the controller replaced started again on host-2',
    );
    const bare = runs.filter((r) => r.labels[runtimeLabels.name] === 'bare');
    assert.ok(
      bare.length === 1 && ranAtCut(bare[0]!) && bare[0]!.finishedAt === undefined,
      `the bare Container ran on behind the fence, never stopped:\n  ${show(bare)}`,
    );

    const final = await runningReplicas();
    assert.deepEqual(final[host2], [], 'nothing the controller replaced runs on host-2');
    assert.equal(final[host1]!.length, 4);
  });
});
