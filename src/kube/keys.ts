// Work-queue and cache keys: `namespace/name` for namespaced objects, `name` for cluster ones.
import type { KubernetesObject } from '@kubernetes/client-node';

export interface ObjectName {
  namespace?: string;
  name: string;
}

export function objectKey(obj: KubernetesObject): string {
  const { namespace, name } = obj.metadata ?? {};
  if (!name) throw new Error(`object of kind ${obj.kind ?? '?'} has no metadata.name`);
  return namespace ? `${namespace}/${name}` : name;
}

export function splitKey(key: string): ObjectName {
  const slash = key.indexOf('/');
  return slash < 0 ? { name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

export function joinKey(name: ObjectName): string {
  return name.namespace ? `${name.namespace}/${name.name}` : name.name;
}

/**
 * Maps an object to the keys of its owners of `kind` (e.g. a Container to its Workload), for
 * watching owned objects. Owners share the object's namespace (or are cluster-scoped).
 */
export function ownerKeys(kind: string, apiGroup?: string): (obj: KubernetesObject) => string[] {
  return (obj) =>
    (obj.metadata?.ownerReferences ?? [])
      .filter(
        (ref) => ref.kind === kind && (apiGroup === undefined || ref.apiVersion.split('/')[0] === apiGroup),
      )
      .map((ref) => joinKey({ namespace: obj.metadata?.namespace, name: ref.name }));
}
