// The agent's Image warmer: an Image pulled by its tag before the controller resolved it, then
// wanted by digest, keeps its image (the tag and the digest name the same one); an image nothing
// wants any more goes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Container, Image } from '../../../src/api/v1alpha1/index.js';
import { ImageWarmer } from '../../../src/agent/images.js';
import type { ImagePuller } from '../../../src/agent/pull.js';
import type { CriClient } from '../../../src/cri/client.js';
import { Store } from '../../../src/kube/store.js';
import { ctx } from '../controller/fakes.js';

const tag = 'registry.example/web:1';
const byDigest = `registry.example/web@sha256:${'a'.repeat(64)}`;

/** A host's images: references that name an image ID; removing one reference removes the image. */
function host() {
  const refs = new Map<string, string>();
  const removed: string[] = [];
  const puller = {
    present: async (ref: string) => refs.get(ref),
    ensure: async (ref: string) => {
      // A pull by tag also records the digest, as containerd does.
      refs.set(tag, 'img-1');
      refs.set(byDigest, 'img-1');
      return refs.get(ref)!;
    },
  } as unknown as ImagePuller;
  const cri = {
    listContainers: async () => ({ containers: [] }),
    removeImage: async ({ image }: { image: { image: string } }) => {
      const id = refs.get(image.image);
      removed.push(image.image);
      for (const [ref, of] of refs) if (of === id) refs.delete(ref);
      return {};
    },
  } as unknown as CriClient;
  return { refs, removed, puller, cri };
}

function warmer(h: ReturnType<typeof host>, images: Store<Image>) {
  return new ImageWarmer({
    cri: h.cri,
    puller: h.puller,
    images,
    containers: new Store<Container>(),
    hostLabels: () => ({}),
    pullAuth: async () => ({ problems: [] }),
    enqueue: () => {},
    onPullsChanged: () => {},
  });
}

const image = (resolvedImage?: string): Image =>
  ({
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Image',
    metadata: { name: 'web', namespace: 'ns', uid: 'i1' },
    spec: { image: tag },
    ...(resolvedImage ? { status: { resolvedImage } } : {}),
  }) as Image;

describe('ImageWarmer', () => {
  it('keeps the image an Image pulled by tag once it is wanted by the digest the tag resolved to', async () => {
    const h = host();
    const images = new Store<Image>();
    const w = warmer(h, images);
    images.set(image());
    await w.reconcile('ns/web', ctx);
    assert.equal(h.refs.get(tag), 'img-1', 'pulled by tag');
    images.set(image(byDigest));
    await w.reconcile('ns/web', ctx);
    assert.deepEqual(h.removed, [], 'the tag names the image the digest names: nothing removed');
    assert.equal(h.refs.get(byDigest), 'img-1');
  });

  it('removes the image of a deleted Image that nothing else wants', async () => {
    const h = host();
    const images = new Store<Image>();
    const w = warmer(h, images);
    images.set(image(byDigest));
    await w.reconcile('ns/web', ctx);
    images.delete('ns/web');
    await w.reconcile('ns/web', ctx);
    assert.deepEqual(h.removed, [byDigest]);
  });
});
