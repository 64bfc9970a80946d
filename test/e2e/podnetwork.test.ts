// Gantry containers on kubelet nodes join the node's pod network: Gantry's containerd uses the
// node's CNI configuration, as the kubelet's does, so a Gantry container gets an address from the
// same range as the node's Pods, and Pods and Gantry containers on different nodes call each other,
// through Services (kube-proxy) and directly. Every answer names who served it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { V1Pod, V1Service } from '@kubernetes/client-node';
import type { Container } from '../../src/api/v1alpha1/index.js';
import { CriClient } from '../../src/cri/client.js';
import { startGantry, stopGantry } from '../../src/localcluster/gantry.js';
import { getObject, kubectl, kubectlOk, localCluster } from '../support/cluster.js';
import { eventually } from '../support/wait.js';

const cluster = localCluster();
const ns = `e2e-podnetwork-${process.pid}`;
const [host1, host2] = cluster.hosts.map((h) => h.name);
const cri = new CriClient(cluster.hosts[0]!.criSocket);

// Serves its hostname (a Container's or Pod's name) on 8080.
const serveName = 'mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www';
const restricted = { allowPrivilegeEscalation: false };

/**
 * A shell command printing the body of http://HOST:PORT/ (an HTTP/1.0 request through nc: the
 * test image's static busybox wget crashes in its name lookup code, even for an address).
 */
const httpGet = (host: string, port: number) =>
  `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${host} ${port} | tr -d '\\r' | sed '1,/^$/d'`;

function gantryContainer(name: string, nodeName: string, command: string) {
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Container',
    metadata: { name, namespace: ns, labels: { app: name } },
    spec: {
      image: cluster.images.web,
      nodeName,
      command: ['/bin/sh', '-c', command],
      ports: [{ name: 'http', containerPort: 8080 }],
    },
  };
}

function pod(name: string, nodeName: string, command: string, restartPolicy: 'Always' | 'Never') {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels: { app: name } },
    spec: {
      nodeName,
      restartPolicy,
      containers: [
        {
          name: 'c',
          image: cluster.images.web,
          command: ['/bin/sh', '-c', command],
          securityContext: restricted,
        },
      ],
    },
  };
}

function service(name: string, selects: string, gantry: boolean) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name,
      namespace: ns,
      labels: gantry ? { 'gantry.dev/select-containers': 'true' } : {},
    },
    spec: { selector: { app: selects }, ports: [{ port: 80, targetPort: 8080 }] },
  };
}

const apply = (o: object) => kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(o) });

async function runningContainer(name: string): Promise<Container> {
  return eventually(`Container ${name} Running with an address`, async () => {
    const c = await getObject<Container>(['containers.gantry.dev', '-n', ns, name]);
    return c?.status?.phase === 'Running' && c.status.ip ? c : undefined;
  });
}

async function runningPod(name: string): Promise<V1Pod> {
  return eventually(`Pod ${name} Running with an address`, async () => {
    const p = await getObject<V1Pod>(['pod', '-n', ns, name]);
    return p?.status?.phase === 'Running' && p.status.podIP ? p : undefined;
  });
}

async function clusterIP(name: string): Promise<string> {
  return (await getObject<V1Service>(['service', '-n', ns, name]))!.spec!.clusterIP!;
}

/** The /24 an IPv4 address lies in (each node's pod range here is one). */
const subnet = (ip: string) => ip.split('.').slice(0, 3).join('.');

describe('the pod network on kubelet nodes (e2e)', { timeout: 300_000 }, () => {
  before(async () => {
    assert.ok(cluster.kubelet, 'this test needs the local cluster with kubelet nodes (npm run cluster:up)');
    assert.ok(host2, 'this test needs two hosts');
    await startGantry(cluster);
    await kubectlOk(['create', 'namespace', ns]);
  });

  after(async () => {
    await kubectl(['delete', 'namespace', ns, '--wait=true', '--timeout=120s'], { timeoutMs: 150_000 });
    await stopGantry(cluster);
    cri.close();
  });

  it("gives a Gantry container an address of its node's pod range, beside the node's Pods", async () => {
    await apply(gantryContainer('gantry-web', host2!, serveName));
    await apply(pod('pod-web', host2!, serveName, 'Always'));
    const [c, p] = await Promise.all([runningContainer('gantry-web'), runningPod('pod-web')]);
    assert.equal(
      subnet(c.status!.ip!),
      subnet(p.status!.podIP!),
      `Container ${c.status!.ip} and Pod ${p.status!.podIP} on ${host2} are in one pod range`,
    );
  });

  it('lets a Pod on host-1 call a Gantry container on host-2, through its Service and directly', async () => {
    await apply(service('to-gantry', 'gantry-web', true));
    const c = await runningContainer('gantry-web');
    const ip = await clusterIP('to-gantry');
    // kube-proxy follows the new slice within a moment: the caller tries for a while, then prints.
    const call = (host: string, port: number) =>
      `for i in $(seq 30); do ${httpGet(host, port)} | grep . && break; sleep 1; done`;
    await apply(pod('caller', host1!, `${call(ip, 80)}; ${call(c.status!.ip!, 8080)}`, 'Never'));
    await eventually('the caller Pod to finish', async () => {
      const p = await getObject<V1Pod>(['pod', '-n', ns, 'caller']);
      return p?.status?.phase === 'Succeeded' || p?.status?.phase === 'Failed';
    });
    const answers = (await kubectlOk(['logs', '-n', ns, 'caller'])).trim().split('\n');
    assert.deepEqual(answers, ['gantry-web', 'gantry-web'], 'the Service and the address both answer');
  });

  it('lets a Gantry container on host-1 call a Pod on host-2 through its Service', async () => {
    await apply(service('to-pod', 'pod-web', false));
    const ip = await clusterIP('to-pod');
    await apply(gantryContainer('gantry-caller', host1!, 'exec sleep 3600'));
    const caller = await runningContainer('gantry-caller');
    const answer = await eventually(`${ip} to answer the Gantry container`, async () => {
      const r = await cri.execSync({
        containerId: caller.status!.containerID!,
        cmd: ['/bin/sh', '-c', httpGet(ip, 80)],
        timeout: 5,
      });
      return r.stdout.toString().trim() || undefined;
    });
    assert.equal(answer, 'pod-web');
  });
});
