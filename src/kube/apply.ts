// Server-side apply: each writer (field manager) sends only the fields it owns, with force, so
// writers never fight over fields (cert-manager's way of writing status). This module decides
// when a writer can skip the request because the live object already says what it would
// apply: no write, no new resourceVersion, no watch event bouncing back into the queue. The
// requests are KubeClient.apply (any kind) and CustomResourceClient.apply / applyStatus.
import type { KubernetesObject } from '@kubernetes/client-node';

export interface ApplyOptions {
  /** e.g. 'gantry-controller', 'gantry-agent/<host>'. */
  fieldManager: string;
  /** Take over fields another manager owns. Default true (controllers own what they write). */
  force?: boolean;
}

interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  subresource?: string;
  fieldsV1?: unknown;
}

/**
 * True when applying `applied` as `fieldManager` would change nothing on `live`: every applied
 * value is already there, and no field this manager applied last time is missing from
 * `applied` (the apply would remove it). Lists compare element by element, in order, except
 * condition lists, which compare by type (a condition we stopped writing is not noticed).
 * `subresource` is 'status' for applies to /status.
 */
export function isApplyNoop(
  applied: object,
  live: KubernetesObject | undefined,
  fieldManager: string,
  subresource = '',
): boolean {
  if (!live) return false;
  const wanted = JSON.parse(JSON.stringify(applied)) as unknown; // Dates and MicroTimes to strings
  if (!isSubset(wanted, live)) return false;
  const managed = (live.metadata?.managedFields ?? []) as ManagedFieldsEntry[];
  const mine = managed.find(
    (m) => m.manager === fieldManager && m.operation === 'Apply' && (m.subresource ?? '') === subresource,
  );
  return !mine || !dropsOwnedField(mine.fieldsV1, wanted);
}

/** A list of conditions (objects keyed by `type`): each writer owns only its own entries. */
function isConditionList(list: unknown[]): list is { type: string }[] {
  return list.length > 0 && list.every((e) => typeof (e as { type?: unknown } | null)?.type === 'string');
}

function isSubset(wanted: unknown, live: unknown): boolean {
  if (wanted === null) return live === null || live === undefined;
  if (Array.isArray(wanted)) {
    if (!Array.isArray(live)) return false;
    if (isConditionList(wanted)) {
      // Other managers' conditions may sit beside ours: match ours by type, in any order.
      return wanted.every((w) =>
        isSubset(
          w,
          live.find((l) => (l as { type?: unknown } | null)?.type === w.type),
        ),
      );
    }
    return live.length === wanted.length && wanted.every((w, i) => isSubset(w, live[i]));
  }
  if (typeof wanted === 'object') {
    if (typeof live !== 'object' || live === null || Array.isArray(live)) return false;
    const liveRecord = live as Record<string, unknown>;
    return Object.entries(wanted).every(([k, v]) => isSubset(v, liveRecord[k]));
  }
  return wanted === live;
}

/**
 * Walks the manager's fieldsV1 ({"f:status": {"f:phase": {}}}) over the applied object: a map
 * field owned but no longer applied would be removed. List internals (k:, v:, i:) are covered by
 * the element-wise comparison above.
 */
function dropsOwnedField(fields: unknown, wanted: unknown): boolean {
  if (typeof fields !== 'object' || fields === null) return false;
  if (typeof wanted !== 'object' || wanted === null || Array.isArray(wanted)) return false;
  const wantedRecord = wanted as Record<string, unknown>;
  for (const [path, sub] of Object.entries(fields)) {
    if (!path.startsWith('f:')) continue;
    const name = path.slice(2);
    if (!(name in wantedRecord)) return true;
    if (dropsOwnedField(sub, wantedRecord[name])) return true;
  }
  return false;
}
