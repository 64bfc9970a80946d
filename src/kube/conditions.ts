// metav1.Condition helpers (pure): conditions are a list keyed by `type`, and
// lastTransitionTime moves only when `status` flips, so "since when" stays meaningful and an
// unchanged status produces an unchanged object (and no write).

import type { Condition } from '../api/v1alpha1/index.js';

export type { Condition, ConditionStatus } from '../api/v1alpha1/index.js';

export type ConditionUpdate = Omit<Condition, 'lastTransitionTime'>;

/** metav1.Time's wire format: RFC 3339 without fractional seconds. */
export function metaTime(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z');
}

/**
 * Returns a new list with `update` applied: an existing condition of that type is replaced in
 * place (keeping lastTransitionTime unless the status changed), a new one is appended.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  update: ConditionUpdate,
  now: Date = new Date(),
): Condition[] {
  const list = conditions ?? [];
  const existing = list.find((c) => c.type === update.type);
  const lastTransitionTime =
    existing && existing.status === update.status ? existing.lastTransitionTime : metaTime(now);
  const next: Condition = { ...update, lastTransitionTime };
  return existing ? list.map((c) => (c === existing ? next : c)) : [...list, next];
}

export function getCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return getCondition(conditions, type)?.status === 'True';
}

export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}

/**
 * Where an object stands for kstatus (sigs.k8s.io/cli-utils), which Flux, Argo CD's generic
 * health and `kubectl wait` scripts rely on. kstatus does not read Ready on custom resources: it
 * reads observedGeneration and two "abnormal-true" conditions, Reconciling (still working) and
 * Stalled (stuck until someone changes something); neither present means done.
 */
export type Progress =
  { state: 'Current' } | { state: 'Reconciling' | 'Stalled'; reason: string; message: string };

/** Sets Reconciling or Stalled as `progress` says and removes the other (both when Current). */
export function setProgress(
  conditions: readonly Condition[] | undefined,
  progress: Progress,
  observedGeneration: number | undefined,
  now: Date = new Date(),
): Condition[] {
  const others = (conditions ?? []).filter(
    (c) => c.type !== (progress.state === 'Reconciling' ? 'Stalled' : 'Reconciling'),
  );
  if (progress.state === 'Current') return others.filter((c) => c.type !== 'Stalled');
  const { state: type, reason, message } = progress;
  return setCondition(others, { type, status: 'True', reason, message, observedGeneration }, now);
}

/** The kstatus conditions' types, for writers that keep a fixed set of conditions. */
export const progressConditionTypes = ['Reconciling', 'Stalled'];

/**
 * Progress read off a Ready condition: True is Current; False with one of `stalledReasons` is
 * Stalled; any other False or Unknown is Reconciling. Ready's reason and message carry over.
 */
export function progressOf(
  ready: ConditionUpdate | undefined,
  stalledReasons: ReadonlySet<string>,
): Progress {
  if (!ready) return { state: 'Reconciling', reason: 'Initializing', message: '' };
  if (ready.status === 'True') return { state: 'Current' };
  const state = ready.status === 'False' && stalledReasons.has(ready.reason) ? 'Stalled' : 'Reconciling';
  return { state, reason: ready.reason, message: ready.message };
}
