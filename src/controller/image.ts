// The Image controller: resolves each Image's reference to a manifest digest and reports how many
// of the Hosts it selects hold that digest (their agents pull it; imagestatus.ts counts).
//  - A digest reference needs no registry. A tag is resolved when first seen, when the spec
//    changes, every refreshInterval, and after a failure with a backoff of 5 s doubling to 5 min.
//    A failed refresh keeps the last good digest, so Hosts keep what works.
//  - An Image with spec.build is not resolved but built: one Build per distinct inputs
//    (buildinputs.ts), run by a builder Host's agent; its digest becomes the Image's once it
//    succeeds, and a failed or running Build keeps the digest the Image had.
//  - A reconcile that changes nothing reads only the caches. Registry calls and status writes go
//    by a fresh read of the Image: the cache may not show our own last write yet, and acting on
//    it would resolve twice or write an older digest back.
import type { V1ConfigMap } from '@kubernetes/client-node';
import {
  durationMillis,
  formatImageReference,
  parseImageReference,
  parseSpec,
  pinnedImageReference,
  type Build,
  type Host,
  type Image,
  type ImageReference,
  type ImageSpec,
  type ImageStatus,
} from '../api/v1alpha1/index.js';
import { isApplyNoop } from '../kube/apply.js';
import { realClock, type Clock } from '../kube/clock.js';
import { getCondition, metaTime } from '../kube/conditions.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../kube/controller.js';
import type { CustomResourceClient } from '../kube/customresource.js';
import type { EventRecorder } from '../kube/events.js';
import type { Informer } from '../kube/informer.js';
import { objectKey, splitKey } from '../kube/keys.js';
import { watch, type Source } from '../kube/manager.js';
import { ItemExponentialFailureRateLimiter } from '../kube/ratelimiter.js';
import type { Cache } from '../kube/store.js';
import { resourceClient } from '../kube/resources.js';
import { fieldManager, type ControllerContext } from './context.js';
import type { Credentials } from '../kube/dockerconfig.js';
import { pullCredentials, secretReader, type SecretReader } from '../kube/pullsecrets.js';
import {
  aggregateHosts,
  hostState,
  imageStatus,
  invalidImageStatus,
  type ImageTarget,
  type Resolution,
} from './imagestatus.js';
import { RegistryClient, RegistryError } from './registry.js';
import { isConflict } from '../kube/errors.js';
import {
  buildImageLabel,
  buildInputs,
  buildName,
  buildResolution,
  buildsToPrune,
  defaultBuilderSelector,
  type BuildInputs,
  inputsHash,
  pickBuilder,
} from './buildinputs.js';

export function setupImageController(ctx: ControllerContext): void {
  const api = resourceClient(ctx.client, 'Image');
  const images = ctx.manager.informer<Image>({ path: api.collectionPath() });
  const hosts = ctx.manager.informer<Host>({ path: resourceClient(ctx.client, 'Host').collectionPath() });
  const buildsApi = resourceClient(ctx.client, 'Build');
  const builds = ctx.manager.informer<Build>({ path: buildsApi.collectionPath() });
  const configMaps = ctx.manager.informer<V1ConfigMap>({ path: '/api/v1/configmaps' });
  const reconciler = new ImageReconciler({
    images: images.cache,
    hosts: hosts.cache,
    builds: builds.cache,
    configMaps: configMaps.cache,
    api,
    buildsApi,
    readSecret: secretReader(ctx.client),
    registry: new RegistryClient({
      insecureRegistries: ctx.options.insecureRegistries,
      timeoutMs: ctx.options.registryTimeoutMs,
    }),
    recorder: ctx.recorder,
  });
  ctx.manager.controller({
    name: 'image',
    kind: 'Image',
    reconciler,
    watches: [
      watch(images),
      hostChanges(images, hosts),
      watch(builds, (b) => {
        const image = b.metadata.labels?.[buildImageLabel];
        return image ? [objectKey({ metadata: { namespace: b.metadata.namespace, name: image } })] : [];
      }),
      watch(configMaps, (cm) =>
        images.cache
          .listByNamespace(cm.metadata?.namespace ?? '')
          .filter((i) => i.spec?.build?.context.configMap?.name === cm.metadata?.name)
          .map((i) => objectKey(i)),
      ),
    ],
  });
}

function targetOf(image: Image): ImageTarget {
  return {
    key: objectKey(image),
    nodeSelector: image.spec?.nodeSelector,
    digest: image.status?.digest,
    resolvedImage: image.status?.resolvedImage,
  };
}

/** Host events requeue only the Images whose view of that Host changed (not every heartbeat). */
function hostChanges(images: Informer<Image>, hosts: Informer<Host>): Source {
  return {
    connect(enqueue) {
      const compare = (before: Host | undefined, after: Host | undefined): void => {
        for (const image of images.cache.list()) {
          const target = targetOf(image);
          const changed =
            JSON.stringify(hostState(target, before)) !== JSON.stringify(hostState(target, after));
          if (changed) enqueue(target.key);
        }
      };
      hosts.addEventHandler({
        onAdd: (host) => compare(undefined, host),
        onUpdate: (before, after) => compare(before, after),
        onDelete: (host) => compare(host, undefined),
      });
    },
  };
}

export interface ImageReconcilerOptions {
  images: Cache<Image>;
  hosts: Cache<Host>;
  builds: Cache<Build>;
  configMaps: Cache<V1ConfigMap>;
  api: Pick<CustomResourceClient<Image>, 'get' | 'applyStatus'>;
  buildsApi: Pick<CustomResourceClient<Build>, 'create' | 'delete'>;
  /** undefined when the Secret does not exist. */
  readSecret: SecretReader;
  registry: Pick<RegistryClient, 'digest' | 'inspect'>;
  recorder: Pick<EventRecorder, 'event'>;
  clock?: Clock;
}

/**
 * The parsed spec and whether the registry must be asked now, or why the spec is unusable. A built
 * image asks no registry: it has the Build of its current inputs instead, or why there is none.
 */
type Plan =
  | { ok: true; spec: ImageSpec; ref: ImageReference; due: boolean; build?: BuildPlan }
  | { ok: false; error: string };
type BuildPlan =
  | { ok: true; name: string; spec: BuildInputs; nodeName?: string }
  | { ok: false; reason: string; message: string };

export class ImageReconciler implements Reconciler {
  private readonly opts: ImageReconcilerOptions;
  private readonly clock: Clock;
  /** Failed resolutions per Image: 5 s doubling to 5 min, and when the next attempt is due. */
  private readonly failures = new ItemExponentialFailureRateLimiter<string>(5_000, 300_000);
  private readonly retryAt = new Map<string, number>();

  constructor(opts: ImageReconcilerOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? realClock;
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const cached = this.opts.images.get(key);
    if (!cached) return this.forget(key);
    const cachedPlan = this.plan(key, cached);
    if (!(cachedPlan.ok && cachedPlan.due)) {
      const status = this.status(cached, cachedPlan, undefined);
      if (unchanged(cached, status)) return this.requeue(key, cachedPlan, status);
    }
    const live = await this.opts.api.get(splitKey(key));
    if (!live) return this.forget(key);
    const plan = this.plan(key, live);
    if (plan.ok && plan.build?.ok) await this.ensureBuild(live, plan.build, ctx);
    const resolution = plan.ok && plan.due ? await this.resolve(key, live, plan, ctx) : undefined;
    const status = this.status(live, plan, resolution);
    const failed = getCondition(status.conditions, 'Resolved');
    const before = getCondition(live.status?.conditions, 'Resolved');
    if (failed?.reason === 'BuildFailed' && failed.message !== before?.message) {
      this.opts.recorder.event(live, 'Warning', 'BuildFailed', 'Build', failed.message);
    }
    await this.opts.api.applyStatus(splitKey(key), status, { fieldManager, live });
    return this.requeue(key, plan, status);
  }

  private plan(key: string, image: Image): Plan {
    const parsed = parseSpec('Image', image.spec);
    if (!parsed.ok) return { ok: false, error: parsed.error };
    const spec = parsed.value;
    const ref = parseImageReference(spec.image);
    if (spec.build) return { ok: true, spec, ref, due: false, build: this.buildPlan(image, spec) };
    return { ok: true, spec, ref, due: this.resolutionDue(key, image, spec, ref) };
  }

  /** The Build of the Image's current inputs, and the builder Host a new one would go to. */
  private buildPlan(image: Image, spec: ImageSpec): BuildPlan {
    const namespace = image.metadata?.namespace ?? '';
    const source = spec.build!.context.configMap?.name;
    const configMap = source ? this.opts.configMaps.get(`${namespace}/${source}`) : undefined;
    if (source && !configMap) {
      return {
        ok: false,
        reason: 'ConfigMapNotFound',
        message: `The build context's ConfigMap ${namespace}/${source} does not exist`,
      };
    }
    const inputs = buildInputs(spec, configMap);
    const name = buildName(image.metadata?.name ?? '', inputsHash(inputs));
    if (this.opts.builds.get(`${namespace}/${name}`)) return { ok: true, name, spec: inputs };
    const selector = spec.build!.nodeSelector;
    const nodeName = pickBuilder(this.opts.hosts.list(), selector, name);
    if (!nodeName) {
      const labels = Object.entries(selector ?? defaultBuilderSelector)
        .map(([k, v]) => `${k}=${v}`)
        .join(',');
      return {
        ok: false,
        reason: 'NoBuilder',
        message: `No Ready, schedulable Host labelled ${labels} to build on (a builder needs buildkitd beside its agent)`,
      };
    }
    return { ok: true, name, spec: inputs, nodeName };
  }

  /** Creates the Build unless it exists: the apiserver refuses a second one of the same name (inputs). */
  private async ensureBuild(
    image: Image,
    build: Extract<BuildPlan, { ok: true }>,
    ctx: ReconcileContext,
  ): Promise<void> {
    if (!build.nodeName) return; // it exists
    const { name: imageName, namespace, uid } = image.metadata!;
    const owned = this.opts.builds
      .listByNamespace(namespace ?? '')
      .filter((b) => b.metadata.ownerReferences?.some((r) => r.controller && r.uid === uid));
    try {
      await this.opts.buildsApi.create({
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Build',
        metadata: {
          name: build.name,
          namespace,
          labels: { [buildImageLabel]: imageName! },
          ownerReferences: [
            {
              apiVersion: 'gantry.dev/v1alpha1',
              kind: 'Image',
              name: imageName!,
              uid: uid!,
              controller: true,
              blockOwnerDeletion: true,
            },
          ],
        },
        spec: { ...build.spec, nodeName: build.nodeName },
      });
      ctx.log.info('Build created', { build: build.name, host: build.nodeName });
      this.opts.recorder.event(
        image,
        'Normal',
        'BuildCreated',
        'Build',
        `Build ${build.name} of ${image.spec.image} on ${build.nodeName}`,
      );
    } catch (err) {
      if (!isConflict(err)) throw err; // 409: made already, by us before a restart or another leader
    }
    for (const name of buildsToPrune(owned, build.name)) {
      await this.opts.buildsApi.delete({ namespace, name });
      ctx.log.info('Old Build deleted', { build: name });
    }
  }

  private resolutionDue(key: string, image: Image, spec: ImageSpec, ref: ImageReference): boolean {
    if (ref.digest) return false;
    const resolved = getCondition(image.status?.conditions, 'Resolved');
    if (!resolved || resolved.observedGeneration !== image.metadata?.generation) return true;
    const now = this.clock.now();
    if (resolved.status !== 'True') return now >= (this.retryAt.get(key) ?? 0);
    const last = Date.parse(image.status?.lastResolvedTime ?? '');
    if (!image.status?.digest || Number.isNaN(last)) return true;
    return spec.refreshInterval !== undefined && now >= last + durationMillis(spec.refreshInterval);
  }

  private status(image: Image, plan: Plan, resolved: Resolution | undefined): ImageStatus {
    const now = new Date(this.clock.now());
    const generation = image.metadata?.generation;
    const previous = image.status?.conditions;
    if (!plan.ok) return invalidImageStatus(generation, previous, plan.error, now);
    const resolution =
      resolved ??
      (plan.build ? this.builtResolution(image, plan.spec, plan.build) : knownResolution(image, plan, now));
    const target = { ...targetOf(image), digest: resolution.digest, resolvedImage: resolution.resolvedImage };
    const counts = aggregateHosts(target, this.opts.hosts.list());
    const status = imageStatus(generation, previous, resolution, counts, now);
    return plan.build?.ok ? { ...status, build: plan.build.name } : status;
  }

  private builtResolution(image: Image, spec: ImageSpec, build: BuildPlan): Resolution {
    const { digest, resolvedImage, lastResolvedTime, sizeBytes } = image.status ?? {};
    const previous = { digest, resolvedImage, lastResolvedTime, sizeBytes };
    if (!build.ok) {
      const kept = digest ? `; still using ${resolvedImage}` : '';
      return {
        ...previous,
        resolved: { status: 'False', reason: build.reason, message: build.message + kept },
      };
    }
    const current = this.opts.builds.get(`${image.metadata?.namespace}/${build.name}`);
    return buildResolution(spec, build.name, current, previous);
  }

  /** Asks the registry; a failure keeps the last good digest and schedules a retry. */
  private async resolve(
    key: string,
    image: Image,
    plan: Extract<Plan, { ok: true }>,
    ctx: ReconcileContext,
  ): Promise<Resolution> {
    const { spec, ref } = plan;
    const known = knownResolution(image, plan, new Date(this.clock.now()));
    // A digest resolved for this very spec: a refresh, which may find the tag moved.
    const before = getCondition(image.status?.conditions, 'Resolved');
    const refresh = before?.status === 'True' && before.observedGeneration === image.metadata?.generation;
    const { credentials, notes } = await this.credentials(image, spec);
    const name = formatImageReference(ref);
    const registry = this.opts.registry;
    try {
      // A HEAD tells whether the tag moved (and Docker Hub does not count it against pull limits).
      const headDigest =
        refresh && known.digest ? await registry.digest(ref, credentials, ctx.signal) : undefined;
      const info =
        headDigest !== undefined && headDigest === known.digest
          ? { digest: headDigest, sizeBytes: known.sizeBytes }
          : await registry.inspect(ref, credentials, ctx.signal);
      this.forget(key);
      if (refresh && known.digest && known.digest !== info.digest) {
        ctx.log.info('Tag moved', { image: name, from: known.digest, to: info.digest });
        this.opts.recorder.event(
          image,
          'Normal',
          'TagMoved',
          'Resolve',
          `${name} moved from ${known.digest} to ${info.digest}`,
        );
      }
      return {
        digest: info.digest,
        resolvedImage: pinnedImageReference(spec.image, info.digest),
        lastResolvedTime: metaTime(new Date(this.clock.now())),
        sizeBytes: info.sizeBytes,
        resolved: { status: 'True', reason: 'Resolved', message: `${name} resolved to ${info.digest}` },
      };
    } catch (err) {
      if (!(err instanceof RegistryError)) throw err;
      const delayMs = this.failures.when(key);
      this.retryAt.set(key, this.clock.now() + delayMs);
      const kept = known.digest ? [`still using ${known.resolvedImage} from ${known.lastResolvedTime}`] : [];
      const message = [err.message, ...notes, ...kept].join('; ');
      ctx.log.info('Resolving failed', { image: name, reason: err.reason, err, retryInMs: delayMs });
      this.opts.recorder.event(image, 'Warning', err.reason, 'Resolve', message);
      return { ...known, resolved: { status: 'False', reason: err.reason, message } };
    }
  }

  /** Credentials from the pull Secrets; missing or malformed ones are skipped, as the kubelet does, and noted. */
  private async credentials(
    image: Image,
    spec: ImageSpec,
  ): Promise<{ credentials: Credentials[]; notes: string[] }> {
    const names = (spec.pullSecrets ?? []).map((s) => s.name);
    const read = await pullCredentials(
      this.opts.readSecret,
      image.metadata?.namespace ?? '',
      names,
      spec.image,
    );
    return { credentials: read.credentials, notes: read.problems };
  }

  /** When to look again: at the next refresh, or the next retry of a failure. */
  private requeue(key: string, plan: Plan, status: ImageStatus): ReconcileResult | undefined {
    // A Host becoming a builder changes no Image's view of its Hosts: look again now and then.
    if (plan.ok && plan.build && !plan.build.ok) return { requeueAfter: 30_000 };
    if (!plan.ok || plan.ref.digest || plan.build) return undefined;
    const now = this.clock.now();
    const resolved = getCondition(status.conditions, 'Resolved');
    let at: number | undefined;
    if (resolved?.status !== 'True') at = this.retryAt.get(key);
    else if (plan.spec.refreshInterval && status.lastResolvedTime) {
      at = Date.parse(status.lastResolvedTime) + durationMillis(plan.spec.refreshInterval);
    }
    return at === undefined ? undefined : { requeueAfter: Math.max(1000, at - now) };
  }

  private forget(key: string): void {
    this.failures.forget(key);
    this.retryAt.delete(key);
  }
}

/** How the reference stands without asking the registry: pinned by digest, or as the status says. */
function knownResolution(image: Image, plan: Extract<Plan, { ok: true }>, now: Date): Resolution {
  const previous = image.status;
  const digest = plan.ref.digest;
  if (digest) {
    const same = previous?.digest === digest;
    return {
      digest,
      resolvedImage: pinnedImageReference(plan.spec.image, digest),
      lastResolvedTime: (same && previous.lastResolvedTime) || metaTime(now),
      sizeBytes: same ? previous.sizeBytes : undefined,
      resolved: {
        status: 'True',
        reason: 'PinnedByDigest',
        message: `The reference pins ${digest}; no registry lookup needed`,
      },
    };
  }
  const resolved = getCondition(previous?.conditions, 'Resolved');
  return {
    digest: previous?.digest,
    resolvedImage: previous?.resolvedImage,
    lastResolvedTime: previous?.lastResolvedTime,
    sizeBytes: previous?.sizeBytes,
    resolved: resolved
      ? { status: resolved.status, reason: resolved.reason, message: resolved.message }
      : { status: 'Unknown', reason: 'Resolving', message: 'The reference has not been resolved yet' },
  };
}

/** Whether applying `status` would leave `image` as it is (applyStatus's own test, on the cached object). */
function unchanged(image: Image, status: ImageStatus): boolean {
  const { name, namespace } = image.metadata ?? {};
  const body = { apiVersion: image.apiVersion, kind: image.kind, metadata: { name, namespace }, status };
  return isApplyNoop(body, image, fieldManager, 'status');
}
