// The Image controller on the real cluster, run as the real process: a tag resolves to exactly
// the digest the local registry serves; a missing tag gives Resolved=False with a Warning
// event; Host reports (written as agents would) turn into counts and the Ready condition.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { EventsV1Api } from '@kubernetes/client-node';
import type { Image, ImageInput } from '../../../src/api/v1alpha1/index.js';
import { getCondition } from '../../../src/kube/conditions.js';
import { localCluster } from '../../support/cluster.js';
import { eventually } from '../../support/wait.js';
import {
  baseArgs,
  clients,
  ControllerProcess,
  createNamespace,
  deleteNamespace,
  installCrds,
  uniqueName,
} from './harness.js';

const ns = uniqueName('gantry-ctrl-image');
const registry = localCluster().registry;
const pool = { 'gantry.dev/test-pool': ns }; // only this file's Hosts carry it
const hostNames = ['a', 'b', 'c'].map((s) => `${ns}-${s}`);
const { client, images, hosts } = clients();
let controller: ControllerProcess;

/** What the registry itself says about a tag: digest (of the bytes it serves) and config + layers. */
async function registryManifest(repo: string, tag: string): Promise<{ digest: string; size: number }> {
  const res = await fetch(`http://${registry}/v2/${repo}/manifests/${tag}`, {
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  assert.equal(res.status, 200);
  const body = Buffer.from(await res.arrayBuffer());
  const manifest = JSON.parse(body.toString()) as { config: { size: number }; layers: { size: number }[] };
  return {
    digest: `sha256:${createHash('sha256').update(body).digest('hex')}`,
    size: manifest.config.size + manifest.layers.reduce((s, l) => s + l.size, 0),
  };
}

async function createImage(name: string, image: string): Promise<void> {
  const obj: ImageInput = {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Image',
    metadata: { name, namespace: ns },
    spec: { image, nodeSelector: pool },
  };
  await images.create(obj as Image);
}

async function imageWhere(name: string, what: string, check: (img: Image) => boolean): Promise<Image> {
  return eventually(`Image ${name}: ${what}`, async () => {
    const img = await images.get({ namespace: ns, name });
    return img && check(img) ? img : undefined;
  });
}

/** Writes a Host's status as its agent would: Ready (heartbeating), with `status` added. */
async function report(host: string, status: object): Promise<void> {
  const ready = {
    type: 'Ready',
    status: 'True',
    reason: 'Heartbeat',
    message: '',
    lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  };
  await hosts.applyStatus(
    { name: host },
    { conditions: [ready], ...status },
    { fieldManager: `gantry-agent/${host}` },
  );
}

describe('Image controller', () => {
  before(async () => {
    await installCrds();
    await createNamespace(ns);
    controller = new ControllerProcess([...baseArgs(), '--leader-elect=false']);
    await controller.waitForLog('caches synced', (l) => l.msg === 'Caches synced');
  });

  after(async () => {
    const code = await controller?.stop();
    await Promise.all(hostNames.map((name) => hosts.delete({ name })));
    await deleteNamespace(ns);
    assert.equal(code, 0, 'the controller exits 0 after SIGTERM');
  });

  it("resolves a tag to the registry's own digest and size", async () => {
    const expected = await registryManifest('gantry/web', '1');
    await createImage('web', `${registry}/gantry/web:1`);
    const img = await imageWhere(
      'web',
      'resolved',
      (i) => getCondition(i.status?.conditions, 'Resolved')?.status === 'True',
    );
    const status = img.status!;
    assert.equal(status.digest, expected.digest);
    assert.equal(status.resolvedImage, `${registry}/gantry/web@${expected.digest}`);
    assert.equal(status.sizeBytes, expected.size);
    assert.ok(status.lastResolvedTime);
    assert.equal(status.observedGeneration, 1);
    const resolved = getCondition(status.conditions, 'Resolved')!;
    assert.equal(resolved.reason, 'Resolved');
    assert.equal(resolved.observedGeneration, 1);
  });

  it('reports a missing tag as Resolved=False, ManifestUnknown, with a Warning event', async () => {
    await createImage('missing', `${registry}/gantry/web:no-such-tag`);
    const img = await imageWhere(
      'missing',
      'Resolved=False',
      (i) => getCondition(i.status?.conditions, 'Resolved')?.status === 'False',
    );
    const resolved = getCondition(img.status?.conditions, 'Resolved')!;
    assert.equal(resolved.reason, 'ManifestUnknown');
    assert.match(resolved.message, /gantry\/web:no-such-tag/);
    assert.equal(getCondition(img.status?.conditions, 'Ready')?.status, 'False');
    assert.equal(img.status?.digest, undefined);
    const event = await eventually('a Warning event about the Image', async () => {
      const list = await client.api(EventsV1Api).listNamespacedEvent({ namespace: ns });
      return list.items.find((e) => e.regarding?.name === 'missing' && e.reason === 'ManifestUnknown');
    });
    assert.equal(event.type, 'Warning');
    assert.equal(event.regarding?.kind, 'Image');
    assert.equal(event.reportingController, 'gantry.dev/controller');
  });

  it('counts the selected Hosts that hold, pull or failed to pull the digest', async () => {
    const { digest } = await registryManifest('gantry/web', '1');
    for (const name of hostNames) {
      await hosts.create({
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Host',
        metadata: { name, labels: pool },
      } as never);
    }
    const [a, b, c] = hostNames as [string, string, string];
    const key = `${ns}/web`;
    await report(a, { images: [{ digest, names: [`${registry}/gantry/web:1`] }] });
    await report(b, { imagePulls: [{ image: key, state: 'Pulling' }] });
    await report(c, {
      imagePulls: [{ image: key, state: 'Failed', reason: 'Unauthorized', message: 'denied' }],
    });
    const partly = await imageWhere(
      'web',
      'one ready, one pulling, one failed',
      (i) => i.status?.failedHosts === 1,
    );
    assert.deepEqual(
      [
        partly.status?.desiredHosts,
        partly.status?.readyHosts,
        partly.status?.pullingHosts,
        partly.status?.failedHosts,
      ],
      [3, 1, 1, 1],
    );
    assert.deepEqual(partly.status?.failures, [{ host: c, reason: 'Unauthorized', message: 'denied' }]);
    const notReady = getCondition(partly.status?.conditions, 'Ready')!;
    assert.equal(notReady.status, 'False');
    assert.equal(notReady.reason, 'PullFailed');

    // A repo-digest name counts as holding it, as a bare image ID does.
    await report(b, {
      images: [{ digest: `sha256:${'0'.repeat(64)}`, names: [`${registry}/gantry/web@${digest}`] }],
    });
    await report(c, { images: [{ digest }] });
    const ready = await imageWhere(
      'web',
      'Ready',
      (i) => getCondition(i.status?.conditions, 'Ready')?.status === 'True',
    );
    assert.deepEqual(
      [ready.status?.desiredHosts, ready.status?.readyHosts, ready.status?.failedHosts],
      [3, 3, 0],
    );
    assert.equal(ready.status?.failures, undefined);
    assert.equal(getCondition(ready.status?.conditions, 'Ready')?.reason, 'AllHostsReady');
  });

  it('writes nothing while nothing changes', async () => {
    const before = await images.get({ namespace: ns, name: 'web' });
    await new Promise((r) => setTimeout(r, 1500));
    const later = await images.get({ namespace: ns, name: 'web' });
    assert.equal(later?.metadata?.resourceVersion, before?.metadata?.resourceVersion);
  });
});
