// metav1.Condition helpers (pure): conditions are a list keyed by `type`, and
// lastTransitionTime moves only when `status` flips, so "since when" stays meaningful and an
// unchanged status produces an unchanged object (and no write).

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: string;
  status: ConditionStatus;
  observedGeneration?: number;
  /** RFC 3339, whole seconds (what metav1.Time serialises to). */
  lastTransitionTime: string;
  /** CamelCase, machine-readable. */
  reason: string;
  message: string;
}

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
