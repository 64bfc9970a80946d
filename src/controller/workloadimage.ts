// A Workload whose template names an Image object (imageFrom) runs that Image's digest. Pure
// functions: the template with the digest filled in (so the template hash, and with it the
// revision, changes when the digest does), and the Hosts still pulling that digest, which a
// rollout waits for before it creates Containers of it.
import type { Host, Image, WorkloadSpec } from '../api/v1alpha1/index.js';
import { hostState } from './imagestatus.js';

type Template = WorkloadSpec['template'];
type TemplateSpec = Template['spec'];

/** A template as a Container is made from it: an image reference, no imageFrom. */
export type ConcreteTemplate = Omit<Template, 'spec'> & {
  spec: Omit<TemplateSpec, 'image' | 'imageFrom'> & { image: string };
};

export type TemplateImage =
  | { ok: true; template: ConcreteTemplate; image?: Image }
  | { ok: false; reason: 'ImageNotFound' | 'ImageNotReady'; message: string };

/**
 * The template with its image reference: as written, or the digest-pinned reference of the Image
 * it names (found by `image(name)` in the Workload's namespace). A template with `image` is
 * returned as it is, so its hash is the one it always had.
 */
export function concreteTemplate(
  template: Template,
  image: (name: string) => Image | undefined,
): TemplateImage {
  const { imageFrom, image: reference, ...rest } = template.spec;
  if (reference !== undefined) return { ok: true, template: template as ConcreteTemplate };
  const name = imageFrom!.name;
  const found = image(name);
  if (!found) return { ok: false, reason: 'ImageNotFound', message: `Image ${name} does not exist` };
  const pinned = found.status?.resolvedImage;
  if (!pinned) {
    return {
      ok: false,
      reason: 'ImageNotReady',
      message: `Image ${name} has no digest yet`,
    };
  }
  return { ok: true, template: { ...template, spec: { ...rest, image: pinned } }, image: found };
}

/**
 * The Hosts a rollout of `image`'s digest waits for: Ready, uncordoned Hosts that both the Image
 * warms (its node selector) and the Workload may use (its placement's), pulling the digest or yet
 * to. A Host whose pull failed is not waited for: the Image's status says why, and a Container
 * there would report the same error.
 */
export function hostsPulling(
  image: Image,
  placement: Record<string, string> | undefined,
  hosts: readonly Host[],
  imageKey: string,
): string[] {
  const selector = { ...image.spec.nodeSelector };
  for (const [k, v] of Object.entries(placement ?? {})) {
    if (selector[k] !== undefined && selector[k] !== v) return []; // no Host can be both
    selector[k] = v;
  }
  const target = {
    key: imageKey,
    nodeSelector: selector,
    digest: image.status?.digest,
    resolvedImage: image.status?.resolvedImage,
  };
  return hosts
    .filter((h) => !cordoned(h) && ['Pulling', 'Waiting'].includes(hostState(target, h).state))
    .map((h) => h.metadata.name!)
    .sort();
}

/** A cordoned or draining Host gets no new replicas (as the scheduler sees it): nothing to wait for. */
function cordoned(host: Host): boolean {
  return (
    !!host.spec?.unschedulable ||
    !!host.spec?.drain ||
    host.status?.conditions?.some((c) => c.type === 'Schedulable' && c.status === 'False') === true
  );
}
