// Finalizers change as a merge patch of the whole list, conditional on the resourceVersion the
// list was read at: a concurrent change (another finalizer added, a namesake created) is a
// conflict to retry from fresh state, never an entry lost. One way for every writer, so no field
// manager "owns" the entry (server-side apply would only let its owner remove it).
import type { KubernetesObject } from '@kubernetes/client-node';
import { isConflict, isNotFound } from './errors.js';
import type { ObjectName } from './keys.js';

/** The metadata of a merge patch that adds or removes `finalizer`; undefined when already so. */
export function finalizerPatch(
  obj: KubernetesObject,
  finalizer: string,
  present: boolean,
): { resourceVersion?: string; finalizers: string[] } | undefined {
  const current = obj.metadata?.finalizers ?? [];
  if (current.includes(finalizer) === present) return undefined;
  return {
    resourceVersion: obj.metadata?.resourceVersion,
    finalizers: present ? [...current, finalizer] : current.filter((f) => f !== finalizer),
  };
}

interface FinalizerApi<T extends KubernetesObject> {
  get(name: ObjectName): Promise<T | undefined>;
  mergePatch(name: ObjectName, patch: object): Promise<T>;
}

/**
 * Sets or removes `finalizer` on `obj` (a cached copy): when the copy is stale the object is read
 * once more and the patch made from it. An object that is gone, or replaced by a namesake (another
 * UID), is left alone. A second conflict is thrown, for the caller's retry. Resolves with the
 * object as it is now (the patch's answer, or the copy the finalizer was already right on), or
 * undefined when it is gone.
 */
export async function setFinalizer<T extends KubernetesObject>(
  api: FinalizerApi<T>,
  name: ObjectName,
  obj: T,
  finalizer: string,
  present: boolean,
): Promise<T | undefined> {
  let current: T | undefined = obj;
  for (let fresh = false; ; fresh = true) {
    const metadata = finalizerPatch(current, finalizer, present);
    if (!metadata) return current;
    try {
      return await api.mergePatch(name, { metadata });
    } catch (e) {
      if (isNotFound(e)) return undefined;
      if (!isConflict(e) || fresh) throw e;
    }
    current = await api.get(name);
    if (!current || current.metadata?.uid !== obj.metadata?.uid) return undefined;
  }
}
