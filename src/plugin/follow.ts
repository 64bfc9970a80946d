// Following a Container's output across a migration: the move replaces the Container with one on
// the target Host (`status.targetContainer` of its Migration), so a follower whose stream ended
// because its Container went looks for the Migration that took it, and goes on with the copy.
import { migrationEnded, type Migration } from '../api/v1alpha1/index.js';
import { realClock, sleep } from '../kube/clock.js';
import type { Cluster } from './client.js';

/**
 * The newest Migration of the Container `name` created since `since` (the Container's own
 * creation: an older one moved an earlier Container of that name) that has not failed.
 */
export function latestMove(migrations: Migration[], name: string, since: Date): Migration | undefined {
  const created = (m: Migration) => new Date(m.metadata.creationTimestamp ?? 0).getTime();
  return migrations
    .filter(
      (m) =>
        m.spec.container === name &&
        created(m) >= new Date(since).getTime() &&
        !['Failed', 'RolledBack'].includes(m.status?.phase ?? ''),
    )
    .sort((a, b) => created(b) - created(a))[0];
}

/**
 * The Container that `name` moved into, once that copy runs; undefined when `name` did not move
 * (its stream ended for another reason: deleted, or its process ended for good).
 */
export async function movedTo(
  cluster: Cluster,
  from: { name: string; since: Date },
  timeoutMs = 60_000,
): Promise<string | undefined> {
  const migrations = cluster.api('Migration');
  const containers = cluster.api('Container');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = latestMove(await migrations.list({ namespace: cluster.namespace }), from.name, from.since);
    if (!m) return undefined;
    const target = m.status?.targetContainer;
    if (target) {
      const copy = await containers.get({ namespace: cluster.namespace, name: target });
      if (copy?.status?.phase === 'Running') return target;
    }
    if ((migrationEnded(m) && !target) || Date.now() > deadline) return undefined;
    await sleep(realClock, 500);
  }
}
