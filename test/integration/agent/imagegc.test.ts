// Image garbage collection by a real agent on a real containerd host. With thresholds that call
// any disk full, the image nothing uses is removed, while the image a running Container uses, the
// one an Image object keeps warm here, and the runtime's pinned sandbox image stay.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { CriClient } from '../../../src/cri/client.js';
import {
  agentLog,
  agentPorts,
  installCrds,
  startAgent,
  stopAgent,
} from '../../../src/localcluster/gantry.js';
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

const logSize = () => (fs.existsSync(agentLog(host)) ? fs.statSync(agentLog(host)).size : 0);

/** The images the agent's garbage collection removed since `from` (a log size): its log records each. */
function removedByAgent(from: number): string[] {
  return fs
    .readFileSync(agentLog(host))
    .subarray(from)
    .toString('utf8')
    .split('\n')
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as { msg?: string; image?: string }];
      } catch {
        return [];
      }
    })
    .filter((l) => l.msg === 'Removed unused image')
    .map((l) => l.image!);
}

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

    // From here on, these three are needed: no garbage collection round may remove them.
    const from = logSize();
    const ids = Object.fromEntries(
      await Promise.all(
        [web, counter, pause].map(async (ref) => [
          ref,
          (await cri.imageStatus({ image: { image: ref } })).image?.id,
        ]),
      ),
    ) as Record<string, string | undefined>;
    await cri.pullImage({ image: { image: web2 } });
    const web2Id = (await cri.imageStatus({ image: { image: web2 } })).image!.id;
    await eventually('the unused image to be removed', async () => !(await present(web2)), {
      timeoutMs: 30_000,
    });
    await new Promise((r) => setTimeout(r, 3000)); // a few more rounds
    // Every removal the agent made, as its log records them (not a look at one moment).
    const removed = removedByAgent(from);
    assert.ok(
      removed.includes(web2Id),
      `the agent removed ${web2} (${web2Id}); its log says: ${removed.join(', ')}`,
    );
    for (const [ref, id] of Object.entries(ids)) {
      assert.ok(id, `${ref} was present before`);
      assert.ok(!removed.includes(id), `${ref} (${id}) was removed at some point`);
      assert.ok(await present(ref), `${ref} stays`);
    }

    const metrics = await (await fetch(`http://127.0.0.1:${agentPorts(host).metrics}/metrics`)).text();
    const counted = Number(/^gantry_image_gc_removed_images_total (\d+)/m.exec(metrics)?.[1]);
    assert.ok(counted >= 1, `the agent counts what it removed (${counted})`);
  });
});
