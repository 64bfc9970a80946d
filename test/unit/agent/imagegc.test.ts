// Image garbage collection: which images go (the plan, pure) and which images count as in use
// (against a recording runtime and hand-filled caches; the disk is this machine's temp directory).
import assert from 'node:assert/strict';
import os from 'node:os';
import { describe, it } from 'node:test';
import type { Container, Image as ImageObject } from '../../../src/api/v1alpha1/index.js';
import type { Container as RuntimeContainer, Image } from '../../../src/cri/client.js';
import { ImageGc, imagesToRemove, type GcCandidate } from '../../../src/agent/imagegc.js';
import { FakeClock } from '../../../src/kube/clock.js';
import { Store } from '../../../src/kube/store.js';
import { createLogger } from '../../../src/obs/logger.js';

const thresholds = { highPercent: 85, lowPercent: 80, minAgeMs: 60_000 };
const candidate = (id: string, size: number, unusedSince: number): GcCandidate => ({ id, size, unusedSince });

describe('imagesToRemove', () => {
  const old = [candidate('a', 30, 0), candidate('b', 50, 0), candidate('c', 10, 1000)];

  it('removes nothing below the high threshold', () => {
    assert.deepEqual(imagesToRemove({ capacity: 1000, used: 849 }, old, thresholds, 100_000), []);
  });

  it('above it, removes the longest unused first (larger first among equals) until the low threshold', () => {
    // 100 to free: b (50), a (30), then c (10) too, though all three do not quite reach it.
    const chosen = imagesToRemove({ capacity: 1000, used: 900 }, old, thresholds, 100_000);
    assert.deepEqual(
      chosen.map((c) => c.id),
      ['b', 'a', 'c'],
    );
    const less = imagesToRemove({ capacity: 1000, used: 860 }, old, thresholds, 100_000);
    assert.deepEqual(
      less.map((c) => c.id),
      ['b', 'a'],
      '60 to free: b and a are enough',
    );
  });

  it('spares images unused for less than the minimum age, even if that leaves the disk full', () => {
    const chosen = imagesToRemove({ capacity: 1000, used: 990 }, old, thresholds, 60_500);
    assert.deepEqual(
      chosen.map((c) => c.id),
      ['b', 'a'],
    );
  });
});

describe('ImageGc', () => {
  const image = (id: string, tag: string, extra: Partial<Image> = {}): Image =>
    ({ id, repoTags: [tag], repoDigests: [], size: 1000n, username: '', pinned: false, ...extra }) as Image;

  function setup() {
    const present = [
      image('sha256:pause', 'registry.example/pause:1', { pinned: true }),
      image('sha256:running', 'registry.example/running:1'),
      image('sha256:bound', 'registry.example/bound:1'),
      image('sha256:warm', 'registry.example/warm:1'),
      image('sha256:other-host', 'registry.example/elsewhere:1'),
      image('sha256:unused', 'registry.example/unused:1'),
    ];
    const removed: string[] = [];
    const cri = {
      imageFsInfo: async () => ({
        imageFilesystems: [{ timestamp: 0n, fsId: { mountpoint: os.tmpdir() } }],
        containerFilesystems: [],
      }),
      listImages: async () => ({ images: present.filter((i) => !removed.includes(i.id)) }),
      listContainers: async () => ({
        containers: [{ imageRef: 'sha256:running', image: { image: 'sha256:running' } } as RuntimeContainer],
      }),
      removeImage: async ({ image: ref }: { image: { image: string } }) => void removed.push(ref.image),
    };
    const containers = new Store<Container>();
    containers.set({
      metadata: { name: 'c', namespace: 'ns' },
      spec: { image: 'registry.example/bound:1' },
    } as Container);
    const images = new Store<ImageObject>();
    for (const [name, ref, here] of [
      ['warm', 'registry.example/warm:1', true],
      ['elsewhere', 'registry.example/elsewhere:1', false],
    ] as const) {
      images.set({
        metadata: { name, namespace: 'ns' },
        spec: { image: ref, nodeSelector: { here: String(here) } },
      } as unknown as ImageObject);
    }
    const clock = new FakeClock(0);
    // Thresholds at 0: any disk counts as full, and everything unused goes.
    const gc = new ImageGc(
      { highPercent: 0, lowPercent: 0, minAgeMs: 60_000 },
      {
        cri,
        containers,
        images,
        wants: (i) => i.spec.nodeSelector?.here === 'true',
        clock,
        log: createLogger({ level: 'error' }),
      },
    );
    return { gc, clock, removed };
  }

  it('removes only images nothing here uses, once they have been unused for the minimum age', async () => {
    const { gc, clock, removed } = setup();
    await gc.collect();
    assert.deepEqual(removed, [], 'first seen unused just now');
    clock.advance(60_000);
    await gc.collect();
    assert.deepEqual(
      removed.sort(),
      ['sha256:other-host', 'sha256:unused'],
      'kept: the pinned sandbox image, one a container runs, one a bound Container names, one an Image wants here',
    );
  });
});
