// The Workload's planning maths, pure: given its Containers, what to create and what to delete
// next. The rules are the Deployment controller's (pkg/controller/deployment), with Containers of
// the current template revision in the role of the new ReplicaSet's Pods:
//  - maxSurge resolves rounding up, maxUnavailable rounding down; both 0 means maxUnavailable 1;
//  - RollingUpdate scales the current revision up to at most replicas + maxSurge Containers, then
//    removes old ones while at least replicas - maxUnavailable stay Ready: unready old ones first,
//    then ready ones, never taking availability below that floor;
//  - Recreate removes every old Container and creates the new ones once all old ones are gone;
//  - a step either creates or deletes (never both), and the caller waits until its cache shows
//    the step before planning again.
// Containers being deleted count for nothing; finished ones (Succeeded, Failed) are deleted and
// replaced. Scaling down removes, in order: unscheduled, not ready, those on the Host with the most
// replicas, the newest (ReplicaSet's ranking).

import { DEFAULT_ROLLING_UPDATE, type WorkloadSpec } from '../api/v1alpha1/index.js';

/** What the plan needs to know of one Container of the Workload. */
export interface Replica {
  name: string;
  /** Template hash of the revision it was made from. */
  revision: string;
  ready: boolean;
  nodeName?: string;
  /** Creation time, ms since the epoch. */
  createdAt: number;
  /** deletionTimestamp is set. */
  deleting: boolean;
  /** Phase Succeeded or Failed: it will not run again. */
  finished: boolean;
}

export type IntOrPercent = number | string;

export type Strategy =
  { type: 'RollingUpdate'; maxSurge: IntOrPercent; maxUnavailable: IntOrPercent } | { type: 'Recreate' };

/** A Workload spec's rollout strategy, with the default rolling update filled in. */
export function strategyOf(spec: WorkloadSpec): Strategy {
  if (spec.strategy.type === 'Recreate') return { type: 'Recreate' };
  const { maxSurge, maxUnavailable } = spec.strategy.rollingUpdate ?? DEFAULT_ROLLING_UPDATE;
  return { type: 'RollingUpdate', maxSurge, maxUnavailable };
}

export interface RolloutInput {
  replicas: number;
  /** Template hash of the current template. */
  revision: string;
  strategy: Strategy;
  containers: readonly Replica[];
}

export interface RolloutPlan {
  /** Containers of the current revision to create. */
  create: number;
  /** Names of Containers to delete. */
  delete: string[];
}

/** An int-or-percent against `total`: percentages round up or down as Deployment's do. */
export function scaledValue(value: IntOrPercent, total: number, roundUp: boolean): number {
  if (typeof value === 'number') return value;
  const exact = (Number.parseInt(value, 10) * total) / 100;
  return roundUp ? Math.ceil(exact) : Math.floor(exact);
}

/** Deployment's ResolveFenceposts: [maxSurge, maxUnavailable] in replicas. */
export function resolveFenceposts(
  maxSurge: IntOrPercent,
  maxUnavailable: IntOrPercent,
  replicas: number,
): [surge: number, unavailable: number] {
  const surge = scaledValue(maxSurge, replicas, true);
  const unavailable = scaledValue(maxUnavailable, replicas, false);
  return surge === 0 && unavailable === 0 ? [0, 1] : [surge, unavailable];
}

/** Replicas that may be unavailable: Deployment's MaxUnavailable (0 for Recreate, at most replicas). */
export function maxUnavailable(strategy: Strategy, replicas: number): number {
  if (strategy.type !== 'RollingUpdate' || replicas === 0) return 0;
  return Math.min(replicas, resolveFenceposts(strategy.maxSurge, strategy.maxUnavailable, replicas)[1]);
}

/**
 * `candidates` in the order they should be deleted; `all` are the Workload's live Containers, for
 * the count of replicas per Host.
 */
export function deletionOrder(candidates: readonly Replica[], all: readonly Replica[]): Replica[] {
  const perHost = new Map<string, number>();
  for (const c of all) if (c.nodeName) perHost.set(c.nodeName, (perHost.get(c.nodeName) ?? 0) + 1);
  const key = (c: Replica): [number, number, number, number] => [
    c.nodeName ? 1 : 0,
    c.ready ? 1 : 0,
    -(perHost.get(c.nodeName ?? '') ?? 0),
    -c.createdAt,
  ];
  return [...candidates].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i]! - kb[i]!;
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  });
}

const names = (list: readonly Replica[]): string[] => list.map((c) => c.name);

export function planRollout(input: RolloutInput): RolloutPlan {
  const { replicas, revision, strategy, containers } = input;
  const finished = containers.filter((c) => !c.deleting && c.finished);
  const live = containers.filter((c) => !c.deleting && !c.finished);
  const current = live.filter((c) => c.revision === revision);
  const old = live.filter((c) => c.revision !== revision);
  const plan = (create: number, remove: readonly Replica[] = []): RolloutPlan => ({
    create,
    delete: [...names(finished), ...names(remove)],
  });

  if (strategy.type === 'Recreate') {
    if (old.length > 0) return plan(0, old);
    // New ones start only once no old one runs any more, as Deployment's Recreate waits for its Pods.
    if (containers.some((c) => c.revision !== revision && c.deleting)) return plan(0);
  }
  if (current.length > replicas)
    return plan(0, deletionOrder(current, live).slice(0, current.length - replicas));
  if (old.length === 0 || strategy.type !== 'RollingUpdate') return plan(replicas - current.length);

  const [surge, unavailable] = resolveFenceposts(strategy.maxSurge, strategy.maxUnavailable, replicas);
  const scaleUp = Math.min(replicas + surge - live.length, replicas - current.length);
  if (scaleUp > 0) return plan(scaleUp);

  const minAvailable = replicas - unavailable;
  const currentUnavailable = current.filter((c) => !c.ready).length;
  const maxScaledDown = live.length - minAvailable - currentUnavailable;
  if (maxScaledDown <= 0) return plan(0);
  // Unready old Containers first: removing them costs no availability, and they may never get ready.
  const unhealthy = deletionOrder(
    old.filter((c) => !c.ready),
    live,
  ).slice(0, maxScaledDown);
  const rest = old.filter((c) => !unhealthy.includes(c));
  const available = live.filter((c) => c.ready).length;
  const byAvailability = deletionOrder(rest, live).slice(0, Math.max(0, available - minAvailable));
  return plan(0, [...unhealthy, ...byAvailability]);
}
