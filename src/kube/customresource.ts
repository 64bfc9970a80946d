// Typed access to one custom resource (group/version/plural) over CustomObjectsApi, hiding the
// namespaced/cluster split and client-node's patch content-type pitfall.
import {
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { isApplyNoop, type ApplyOptions } from './apply.js';
import type { KubeClient } from './client.js';
import { isNotFound } from './errors.js';
import type { ObjectName } from './keys.js';

export interface ResourceType {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
}

export interface ListOptions {
  /** Omit for all namespaces (or for a cluster-scoped resource). */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

export class CustomResourceClient<T extends KubernetesObject, Input extends KubernetesObject = T> {
  readonly apiVersion: string;
  private readonly api: CustomObjectsApi;

  constructor(
    client: KubeClient,
    readonly type: ResourceType,
  ) {
    this.api = client.api(CustomObjectsApi);
    this.apiVersion = `${type.group}/${type.version}`;
  }

  /** The collection path, for informers: all namespaces unless `namespace` is given. */
  collectionPath(namespace?: string): string {
    const ns = namespace && this.type.namespaced ? `/namespaces/${namespace}` : '';
    return `/apis/${this.type.group}/${this.type.version}${ns}/${this.type.plural}`;
  }

  /** undefined when it does not exist. */
  async get(name: ObjectName): Promise<T | undefined> {
    try {
      return (await (this.type.namespaced
        ? this.api.getNamespacedCustomObject({ ...this.base(), namespace: this.ns(name), name: name.name })
        : this.api.getClusterCustomObject({ ...this.base(), name: name.name }))) as T;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async list(opts: ListOptions = {}): Promise<T[]> {
    const query = { ...this.base(), labelSelector: opts.labelSelector, fieldSelector: opts.fieldSelector };
    const list = (await (this.type.namespaced && opts.namespace
      ? this.api.listNamespacedCustomObject({ ...query, namespace: opts.namespace })
      : this.api.listClusterCustomObject(query))) as KubernetesListObject<T>;
    return list.items.map((item) => ({ ...item, apiVersion: this.apiVersion, kind: this.type.kind }));
  }

  async create(obj: Input): Promise<T> {
    const body = { ...obj, apiVersion: this.apiVersion, kind: this.type.kind };
    return (await (this.type.namespaced
      ? this.api.createNamespacedCustomObject({ ...this.base(), namespace: this.ns(createdName(obj)), body })
      : this.api.createClusterCustomObject({ ...this.base(), body }))) as T;
  }

  /** A JSON merge patch of the main resource (e.g. metadata.finalizers, spec.nodeName). */
  async mergePatch(name: ObjectName, patch: object): Promise<T> {
    const options = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    return (await (this.type.namespaced
      ? this.api.patchNamespacedCustomObject(
          { ...this.base(), namespace: this.ns(name), name: name.name, body: patch },
          options,
        )
      : this.api.patchClusterCustomObject({ ...this.base(), name: name.name, body: patch }, options))) as T;
  }

  /**
   * Server-side apply of the fields in `obj` (spec, metadata.labels...) as `fieldManager`: only
   * the fields this writer owns, so `obj` is usually a fragment of a T.
   */
  async apply(obj: Partial<T> & KubernetesObject, opts: ApplyOptions): Promise<T> {
    const body = { ...obj, apiVersion: this.apiVersion, kind: this.type.kind };
    const params = { ...this.base(), name: nameOf(obj).name, body, fieldManager: opts.fieldManager };
    const force = opts.force ?? true;
    const options = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
    return (await (this.type.namespaced
      ? this.api.patchNamespacedCustomObject({ ...params, namespace: this.ns(nameOf(obj)), force }, options)
      : this.api.patchClusterCustomObject({ ...params, force }, options))) as T;
  }

  /**
   * Server-side apply of `status` on /status as `fieldManager`. Given the live object (from an
   * informer's cache), skips the request when it would change nothing and returns `live`. Given a
   * resourceVersion, applies only if the object is still at it (else 409 Conflict): for a write
   * decided on a cached object that may be behind the apiserver.
   */
  async applyStatus(
    name: ObjectName,
    status: object,
    opts: ApplyOptions & { live?: T; resourceVersion?: string },
  ): Promise<T> {
    const body = {
      apiVersion: this.apiVersion,
      kind: this.type.kind,
      metadata: {
        name: name.name,
        ...(name.namespace ? { namespace: name.namespace } : {}),
        ...(opts.resourceVersion ? { resourceVersion: opts.resourceVersion } : {}),
      },
      status,
    };
    if (opts.live && isApplyNoop(body, opts.live, opts.fieldManager, 'status')) return opts.live;
    const params = { ...this.base(), name: name.name, body, fieldManager: opts.fieldManager };
    const force = opts.force ?? true;
    const options = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
    return (await (this.type.namespaced
      ? this.api.patchNamespacedCustomObjectStatus({ ...params, namespace: this.ns(name), force }, options)
      : this.api.patchClusterCustomObjectStatus({ ...params, force }, options))) as T;
  }

  /** Deletes (background propagation); false when it was already gone. */
  async delete(name: ObjectName): Promise<boolean> {
    const params = { ...this.base(), name: name.name, propagationPolicy: 'Background' };
    try {
      await (this.type.namespaced
        ? this.api.deleteNamespacedCustomObject({ ...params, namespace: this.ns(name) })
        : this.api.deleteClusterCustomObject(params));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  private base(): { group: string; version: string; plural: string } {
    return { group: this.type.group, version: this.type.version, plural: this.type.plural };
  }

  private ns(name: ObjectName): string {
    if (!name.namespace)
      throw new Error(`${this.type.kind} ${name.name} is namespaced: a namespace is needed`);
    return name.namespace;
  }
}

/** The name to create `obj` under: its own, or the apiserver's pick from metadata.generateName. */
function createdName(obj: KubernetesObject): ObjectName {
  return obj.metadata?.generateName && !obj.metadata.name
    ? { name: obj.metadata.generateName, namespace: obj.metadata.namespace }
    : nameOf(obj);
}

function nameOf(obj: KubernetesObject): ObjectName {
  const name = obj.metadata?.name;
  if (!name) throw new Error('object has no metadata.name');
  return { name, namespace: obj.metadata?.namespace };
}
