// How many things overlapped at once, from when each began and ended: the arithmetic behind
// "never more than N at a time" checks on recorded times (runtime records, status timestamps).

/** Something that existed from `start` to `end` (still, when end is undefined). */
export interface Interval<T> {
  item: T;
  start: bigint;
  end?: bigint;
}

/**
 * The most intervals that overlapped at one instant, when, and which. Intervals are half-open:
 * one that ends at the very instant another starts does not overlap it (so times truncated to
 * whole seconds never show an overlap that did not happen).
 */
export function maxOverlap<T>(intervals: readonly Interval<T>[]): { count: number; at?: bigint; items: T[] } {
  const edges = intervals
    .flatMap((i) => [
      { at: i.start, delta: 1, i },
      ...(i.end !== undefined ? [{ at: i.end, delta: -1, i }] : []),
    ])
    .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.delta - b.delta));
  const live = new Set<Interval<T>>();
  let best: { count: number; at?: bigint; items: T[] } = { count: 0, items: [] };
  for (const e of edges) {
    if (e.delta > 0) live.add(e.i);
    else live.delete(e.i);
    if (live.size > best.count) best = { count: live.size, at: e.at, items: [...live].map((x) => x.item) };
  }
  return best;
}
