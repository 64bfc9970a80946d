// The informer's cache: objects by key, plus indexes (by namespace, and any the caller defines,
// e.g. Containers by spec.nodeName) so lookups do not scan everything.
import type { KubernetesObject } from '@kubernetes/client-node';
import { objectKey } from './keys.js';

/** The values an object is indexed under ([] leaves it out of the index). */
export type IndexFunc<T> = (obj: T) => string[];

/**
 * What readers of an informer's cache get. Objects are shared with the cache: never mutate
 * them (structuredClone first).
 */
export interface Cache<T extends KubernetesObject> {
  /** By `namespace/name` or `name`. */
  get(key: string): T | undefined;
  list(): T[];
  listByNamespace(namespace: string): T[];
  /** Objects whose index function returned `value`. */
  byIndex(index: string, value: string): T[];
  keys(): string[];
  readonly size: number;
}

const namespaceIndex = '__namespace';

export class Store<T extends KubernetesObject> implements Cache<T> {
  private readonly items = new Map<string, T>();
  private readonly indexers: Map<string, IndexFunc<T>>;
  private readonly indexes = new Map<string, Map<string, Set<string>>>();

  constructor(indexers: Record<string, IndexFunc<T>> = {}) {
    this.indexers = new Map(Object.entries(indexers));
    this.indexers.set(namespaceIndex, (obj) => (obj.metadata?.namespace ? [obj.metadata.namespace] : []));
    for (const name of this.indexers.keys()) this.indexes.set(name, new Map());
  }

  get size(): number {
    return this.items.size;
  }

  get(key: string): T | undefined {
    return this.items.get(key);
  }

  list(): T[] {
    return [...this.items.values()];
  }

  listByNamespace(namespace: string): T[] {
    return this.byIndex(namespaceIndex, namespace);
  }

  byIndex(index: string, value: string): T[] {
    const values = this.indexes.get(index);
    if (!values) throw new Error(`no index named "${index}"`);
    return [...(values.get(value) ?? [])].map((key) => this.items.get(key)!);
  }

  keys(): string[] {
    return [...this.items.keys()];
  }

  /** Stores `obj`, returning the object it replaced. */
  set(obj: T): T | undefined {
    const key = objectKey(obj);
    const old = this.items.get(key);
    if (old) this.unindex(key, old);
    this.items.set(key, obj);
    this.index(key, obj);
    return old;
  }

  /** Removes the object under `key`, returning it. */
  delete(key: string): T | undefined {
    const old = this.items.get(key);
    if (!old) return undefined;
    this.unindex(key, old);
    this.items.delete(key);
    return old;
  }

  private index(key: string, obj: T): void {
    for (const [name, fn] of this.indexers) {
      const values = this.indexes.get(name)!;
      for (const value of fn(obj)) {
        let keys = values.get(value);
        if (!keys) values.set(value, (keys = new Set()));
        keys.add(key);
      }
    }
  }

  private unindex(key: string, obj: T): void {
    for (const [name, fn] of this.indexers) {
      const values = this.indexes.get(name)!;
      for (const value of fn(obj)) {
        const keys = values.get(value);
        keys?.delete(key);
        if (keys?.size === 0) values.delete(value);
      }
    }
  }
}
