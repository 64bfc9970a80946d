// Image garbage collection under disk pressure, the kubelet's way: when the image filesystem is
// fuller than the high threshold, remove unused images, the longest unused first, until it is at
// the low threshold. Unused means: no runtime container (running or exited) refers to it, no
// Container bound to this host names it, no Image object wanted here refers to it, and the runtime
// has not pinned it (the sandbox image). An image must also have been seen unused for minAge, so
// one pulled a moment ago for a Container about to be created is not taken from under it.
import fs from 'node:fs';
import { type Container, type Image as ImageObject, normalizeImageReference } from '../api/v1alpha1/index.js';
import type { Clock } from '../kube/clock.js';
import type { Cache } from '../kube/store.js';
import type { Logger } from '../obs/logger.js';
import { CriError, type CriClient, type Image } from '../cri/client.js';
import { wantedReference } from './images.js';
import { imageGcBytes, imageGcRemovals } from './metrics.js';

export interface ImageGcThresholds {
  /** Collect when the image filesystem is at least this full (percent). */
  highPercent: number;
  /** ...down to this (percent). */
  lowPercent: number;
  /** An image must have been unused this long to go. */
  minAgeMs: number;
}

export interface GcCandidate {
  id: string;
  size: number;
  /** When this agent first saw it unused (ms). */
  unusedSince: number;
}

/**
 * Which unused images to remove, in order, for a filesystem of `capacity` bytes with `used` in
 * use: none below the high threshold; else the longest unused first (the larger first among
 * equals) until enough is freed to reach the low threshold, or nothing is left to remove.
 */
export function imagesToRemove(
  disk: { capacity: number; used: number },
  candidates: readonly GcCandidate[],
  t: ImageGcThresholds,
  now: number,
): GcCandidate[] {
  if (disk.capacity <= 0 || (disk.used * 100) / disk.capacity < t.highPercent) return [];
  let toFree = disk.used - (disk.capacity * t.lowPercent) / 100;
  const chosen: GcCandidate[] = [];
  const oldestFirst = candidates
    .filter((c) => now - c.unusedSince >= t.minAgeMs)
    .sort((a, b) => a.unusedSince - b.unusedSince || b.size - a.size);
  for (const c of oldestFirst) {
    if (toFree <= 0) break;
    chosen.push(c);
    toFree -= c.size;
  }
  return chosen;
}

/** A reference in its normalized form, for comparing; one that does not parse stays as it is. */
function comparable(ref: string): string {
  try {
    return normalizeImageReference(ref);
  } catch {
    return ref;
  }
}

export interface ImageGcDeps {
  cri: Pick<CriClient, 'imageFsInfo' | 'listImages' | 'listContainers' | 'removeImage'>;
  containers: Cache<Container>;
  images: Cache<ImageObject>;
  /** Whether an Image object selects this host. */
  wants: (image: ImageObject) => boolean;
  clock: Clock;
  log: Logger;
}

export class ImageGc {
  private readonly unusedSince = new Map<string, number>();
  private warnedInvisible = false;

  constructor(
    private readonly thresholds: ImageGcThresholds,
    private readonly deps: ImageGcDeps,
  ) {}

  /** One round: looks at the disk and the images, removes what the thresholds call for. */
  async collect(): Promise<void> {
    const { cri, log } = this.deps;
    const mountpoint = (await cri.imageFsInfo()).imageFilesystems[0]?.fsId?.mountpoint;
    if (!mountpoint) return; // the runtime does not say where its images are
    const st = await fs.promises.statfs(mountpoint).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
      // In a pod without the runtime's root mounted: say so once, not every round.
      if (!this.warnedInvisible)
        log.warn('Image filesystem not visible: no image garbage collection', { mountpoint });
      this.warnedInvisible = true;
      return undefined;
    });
    if (!st) return;
    const disk = { capacity: st.blocks * st.bsize, used: (st.blocks - st.bavail) * st.bsize };
    const candidates = await this.unusedImages();
    const chosen = imagesToRemove(disk, candidates, this.thresholds, this.deps.clock.now());
    if (chosen.length === 0) return;
    log.info('Image filesystem above its high threshold: removing unused images', {
      mountpoint,
      usedPercent: Math.round((disk.used * 100) / disk.capacity),
      images: chosen.length,
    });
    for (const image of chosen) {
      try {
        await cri.removeImage({ image: { image: image.id } });
      } catch (e) {
        if (!(e instanceof CriError && e.isNotFound())) throw e;
      }
      this.unusedSince.delete(image.id);
      imageGcRemovals.inc();
      imageGcBytes.inc(image.size);
      log.info('Removed unused image', { image: image.id, bytes: image.size });
    }
  }

  /** The images nothing here uses, with the time each was first seen so (remembered across rounds). */
  private async unusedImages(): Promise<GcCandidate[]> {
    const { cri, containers, images, wants, clock } = this.deps;
    const [{ images: present }, { containers: runtime }] = await Promise.all([
      cri.listImages(),
      cri.listContainers(),
    ]);
    const usedIds = new Set(runtime.flatMap((c) => [c.imageRef, c.image?.image ?? '']));
    const wantedRefs = new Set(
      [
        ...containers.list().map((c) => c.spec.image),
        ...images
          .list()
          .filter(wants)
          .map((i) => wantedReference(i)),
      ].map(comparable),
    );
    const inUse = (image: Image): boolean =>
      image.pinned ||
      usedIds.has(image.id) ||
      [...image.repoTags, ...image.repoDigests].some(
        (ref) => usedIds.has(ref) || wantedRefs.has(comparable(ref)),
      );
    const now = clock.now();
    const unused = present.filter((image) => !inUse(image));
    const ids = new Set(unused.map((image) => image.id));
    for (const id of this.unusedSince.keys()) if (!ids.has(id)) this.unusedSince.delete(id);
    return unused.map((image) => {
      const since = this.unusedSince.get(image.id) ?? now;
      this.unusedSince.set(image.id, since);
      return { id: image.id, size: Number(image.size), unusedSince: since };
    });
  }
}
