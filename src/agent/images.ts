// Keeps the images of Image objects warm on this host: every Image whose nodeSelector matches the
// Host's labels is pulled (by its resolved digest once the controller has one), `keep: true`
// images are pulled again if something removed them, and the image of a deleted Image is removed
// when nothing on the host still uses it. Pulls in progress and failures are reported in the
// Host's status (imagePulls), from which the controller aggregates Image.status.
import { type Container, type Image, selectorMatches } from '../api/v1alpha1/index.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../kube/controller.js';
import { objectKey } from '../kube/keys.js';
import type { Cache } from '../kube/store.js';
import type { Logger } from '../obs/logger.js';
import type { CriClient } from '../cri/client.js';
import type { PullAuth } from './pullsecrets.js';
import { type ImagePuller, PullError } from './pull.js';

export interface ImagePullState {
  image: string;
  state: 'Pulling' | 'Failed';
  reason?: string;
  message?: string;
}

export interface ImageWarmerDeps {
  cri: CriClient;
  puller: ImagePuller;
  images: Cache<Image>;
  containers: Cache<Container>;
  /** The labels of this host's Host object. */
  hostLabels: () => Record<string, string>;
  pullAuth: (image: Image) => Promise<PullAuth>;
  enqueue: (key: string) => void;
  /** Called when the set of pulls in progress or failed changes (the Host status shows it). */
  onPullsChanged: () => void;
}

/** The reference to pull for an Image: its resolved digest when known, else its tag. */
export function wantedReference(image: Image): string {
  return image.status?.resolvedImage ?? image.spec.image;
}

export class ImageWarmer implements Reconciler {
  private readonly pulls = new Map<string, ImagePullState>();
  /** References pulled for Image objects, by Image key: what to remove once the Image is gone. */
  private readonly pulledFor = new Map<string, string>();

  constructor(private readonly deps: ImageWarmerDeps) {}

  /** Pulls in progress and failed ones, for Host.status.imagePulls. */
  pullStates(): ImagePullState[] {
    return [...this.pulls.values()].sort((a, b) => a.image.localeCompare(b.image));
  }

  wants(image: Image): boolean {
    const selector = image.spec.nodeSelector;
    return !selector || selectorMatches({ matchLabels: selector }, this.deps.hostLabels());
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const image = this.deps.images.get(key);
    if (!image || !this.wants(image)) {
      this.setPull(key, undefined);
      const ref = this.pulledFor.get(key);
      if (ref !== undefined) {
        this.pulledFor.delete(key);
        await this.removeIfUnused(ref, ctx.log);
      }
      return;
    }
    const ref = wantedReference(image);
    const previous = this.pulledFor.get(key);
    const present = await this.deps.puller.present(ref);
    const repull = image.spec.pullPolicy === 'Always' && previous !== ref;
    if (present && !repull) {
      this.pulledFor.set(key, ref);
      this.setPull(key, undefined);
      if (previous && previous !== ref) await this.removeIfUnused(previous, ctx.log);
      return;
    }
    if (present === undefined && previous === ref && !image.spec.keep) {
      // Pulled before and removed since: only `keep` images come back.
      return;
    }
    this.setPull(key, { image: key, state: 'Pulling' });
    try {
      await this.deps.puller.ensure(ref, 'Always', (await this.deps.pullAuth(image)).auth);
      this.pulledFor.set(key, ref);
      this.setPull(key, undefined);
      ctx.log.info('Pulled image', { image: ref });
      if (previous && previous !== ref) await this.removeIfUnused(previous, ctx.log);
    } catch (e) {
      if (!(e instanceof PullError)) {
        this.setPull(key, {
          image: key,
          state: 'Failed',
          reason: 'ErrImagePull',
          message: (e as Error).message,
        });
        throw e;
      }
      this.setPull(key, { image: key, state: 'Failed', reason: e.reason, message: e.message });
      return { requeueAfter: Math.max(1000, e.retryAt - Date.now()) };
    }
  }

  /** Requeues every wanted `keep` Image, so one removed behind our back is pulled again. */
  resyncKept(): void {
    for (const image of this.deps.images.list()) {
      if (image.spec.keep && this.wants(image)) this.deps.enqueue(objectKey(image));
    }
  }

  private setPull(key: string, state: ImagePullState | undefined): void {
    const before = JSON.stringify(this.pulls.get(key));
    if (state) this.pulls.set(key, state);
    else this.pulls.delete(key);
    if (JSON.stringify(state) !== before) this.deps.onPullsChanged();
  }

  /**
   * Removes an image nothing here uses any more: no runtime container runs it, no Container bound
   * to this host names it, and no other wanted Image (kept or not) refers to it. A reference names
   * an image, not a tag: removing `app:1` removes the image `app@sha256:...` is too, so what the
   * others want is compared by the image it resolves to.
   */
  private async removeIfUnused(ref: string, log: Logger): Promise<void> {
    const id = await this.deps.puller.present(ref);
    if (!id) return;
    const wanted = [
      ...this.deps.images
        .list()
        .filter((i) => this.wants(i))
        .map(wantedReference),
      ...this.deps.containers.list().map((c) => c.spec.image),
    ];
    for (const other of new Set(wanted)) if ((await this.deps.puller.present(other)) === id) return;
    const { containers } = await this.deps.cri.listContainers();
    if (containers.some((c) => c.imageRef === id || c.image?.image === id)) return;
    await this.deps.cri.removeImage({ image: { image: ref } });
    log.info('Removed image no Image or container uses', { image: ref });
  }
}
