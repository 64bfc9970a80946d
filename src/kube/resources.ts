// Typed apiserver access to Gantry's kinds, for every program (controller, agent, tools,
// benchmarks). Apart from the API package, so that API consumers without a client (gen-crds) do
// not load client-node's machinery.
import { GROUP, kinds, VERSION, type InputOf, type KindName, type ObjectOf } from '../api/v1alpha1/index.js';
import type { KubeClient } from './client.js';
import { CustomResourceClient } from './customresource.js';

export function resourceClient<K extends KindName>(
  client: KubeClient,
  kind: K,
): CustomResourceClient<ObjectOf<K>, InputOf<K>> {
  const def = kinds[kind];
  return new CustomResourceClient<ObjectOf<K>, InputOf<K>>(client, {
    group: GROUP,
    version: VERSION,
    plural: def.plural,
    kind: def.kind,
    namespaced: def.scope === 'Namespaced',
  });
}
