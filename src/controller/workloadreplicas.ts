// A Workload's replicas: the revision of a template (its hash), the Container made from it, which
// Containers count as replicas while one is on the move, and how the rollout sees each of them.
import crypto from 'node:crypto';
import {
  containerFinished,
  migratedToAnnotation,
  migrationLabel,
  templateHashLabel,
  workloadLabel,
  type Container,
  type Workload,
  type WorkloadSpec,
} from '../api/v1alpha1/index.js';
import { isTrue } from '../kube/conditions.js';
import type { Replica } from './rollout.js';
import type { ConcreteTemplate } from './workloadimage.js';

/**
 * The template's hash: the same template (defaults applied) always gives the same 10 hex digits.
 * The Workload hashes its concrete template (workloadimage.ts), so a new digest is a new revision.
 */
export function templateHash(template: WorkloadSpec['template']): string {
  return crypto.createHash('sha256').update(canonicalJSON(template)).digest('hex').slice(0, 10);
}

function canonicalJSON(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJSON).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJSON(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * A new replica of `revision`: named <workload>-<revision>-<5 random characters>, labelled with the
 * template's labels, gantry.dev/workload and gantry.dev/template-hash, controlled by the Workload.
 */
export function replicaContainer(
  wl: Workload,
  spec: WorkloadSpec,
  template: ConcreteTemplate,
  revision: string,
): Container {
  const name = wl.metadata.name!;
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Container',
    metadata: {
      name: `${name}-${revision}-${randomSuffix()}`,
      namespace: wl.metadata.namespace,
      labels: { ...template.metadata?.labels, [workloadLabel]: name, [templateHashLabel]: revision },
      ...(template.metadata?.annotations ? { annotations: template.metadata.annotations } : {}),
      ownerReferences: [
        {
          apiVersion: wl.apiVersion,
          kind: 'Workload',
          name,
          uid: wl.metadata.uid!,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      ...template.spec,
      ...(spec.placement.nodeSelector ? { nodeSelector: spec.placement.nodeSelector } : {}),
    },
  };
}

/**
 * The Containers that count as replicas. A migration's target and source are one replica: the
 * source counts until the Migration hands over (it sets migrated-to on the source, then removes the
 * migration label from the target), the target from then on. So the Workload neither replaces a
 * replica that is moving nor deletes one because a move briefly shows two.
 */
export function countedReplicas(containers: Container[]): Container[] {
  const names = new Map(containers.map((c) => [c.metadata.name, c]));
  return containers.filter((c) => {
    if (c.metadata.labels?.[migrationLabel]) return false;
    const to = c.metadata.annotations?.[migratedToAnnotation];
    const target = to ? names.get(to) : undefined;
    return !target || !!target.metadata.labels?.[migrationLabel];
  });
}

/** How the rollout sees a Container. */
export function toReplica(c: Container): Replica {
  const phase = c.status?.phase;
  return {
    name: c.metadata.name!,
    revision: c.metadata.labels?.[templateHashLabel] ?? '',
    ready: phase === 'Running' && isTrue(c.status?.conditions, 'Ready'),
    nodeName: c.spec?.nodeName,
    createdAt: Date.parse(String(c.metadata.creationTimestamp ?? '')) || 0,
    deleting: !!c.metadata.deletionTimestamp,
    finished: containerFinished(c),
  };
}

/** Five characters from Kubernetes' name-suffix alphabet (no vowels, no look-alikes). */
function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  return Array.from({ length: 5 }, () => alphabet[crypto.randomInt(alphabet.length)]).join('');
}
