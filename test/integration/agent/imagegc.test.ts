// Image garbage collection by a real agent on a real containerd host. With thresholds that call
// any disk full, the image nothing uses is removed, while the image a running Container uses, the
// one an Image object keeps warm here, and the runtime's pinned sandbox image stay.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CriClient } from '../../../src/cri/client.js';
import { agentPorts, installCrds, startAgent, stopAgent } from '../../../src/localcluster/gantry.js';
import { getObject, kubectl, kubectlOk, localCluster } from '../../support/cluster.js';
import { eventually } from '../../support/wait.js';
import type { Container } from '../../../src/api/v1alpha1/index.js';

const cluster = localCluster();
const host = cluster.hosts[1]!.name;
const cri = new CriClient(cluster.hosts[1]!.criSocket);
const ns = `imagegc-it-${process.pid}`;
const gcArgs = [
  '--image-gc-high-threshold-percent=0',
  '--image-gc-low-threshold-percent=0',
  '--image-gc-min-age-seconds=0',
  '--image-gc-interval-seconds=1',
];

const present = async (ref: string): Promise<boolean> =>
  !!(await cri.imageStatus({ image: { image: ref } })).image;

const apply = (kind: string, name: string, spec: Record<string, unknown>) =>
  kubectlOk(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'gantry.dev/v1alpha1',
      kind,
      metadata: { name, namespace: ns },
      spec,
    }),
  });

describe('image garbage collection', () => {
  before(async () => {
    await installCrds(cluster);
    await kubectlOk(['create', 'namespace', ns]);
    // An agent left running with other flags is restarted with these (startAgent compares).
    await startAgent(cluster, host, gcArgs);
  });

  after(async () => {
    await kubectl(['delete', 'containers.gantry.dev,images.gantry.dev', '--all', '-n', ns, '--wait=true']);
    await kubectl(['delete', 'namespace', ns, '--wait=false']);
    await stopAgent(host);
    cri.close();
  });

  it('removes what nothing uses and keeps what a Container, an Image or the runtime needs', async () => {
    const { web, web2, counter, pause } = cluster.images;
    await apply('Container', 'web', { image: web, nodeName: host });
    await apply('Image', 'warm', { image: counter });
    await eventually('the Container to run', async () => {
      const c = await getObject<Container>(['containers.gantry.dev', '-n', ns, 'web']);
      return c?.status?.phase === 'Running';
    });
    await eventually('the Image to be pulled here', () => present(counter), { timeoutMs: 30_000 });

    await cri.pullImage({ image: { image: web2 } });
    await eventually('the unused image to be removed', async () => !(await present(web2)), {
      timeoutMs: 30_000,
    });
    await new Promise((r) => setTimeout(r, 3000)); // a few more rounds
    for (const ref of [web, counter, pause]) assert.ok(await present(ref), `${ref} stays`);

    const metrics = await (await fetch(`http://127.0.0.1:${agentPorts(host).metrics}/metrics`)).text();
    const removed = Number(/^gantry_image_gc_removed_images_total (\d+)/m.exec(metrics)?.[1]);
    assert.ok(removed >= 1, `the agent counts what it removed (${removed})`);
  });
});
