// The Image status as pure functions of what is known: the resolution of the reference, and the
// Hosts' own reports (status.images: what they hold; status.imagePulls: pulls in progress or
// failed, keyed by "<namespace>/<name>" of the Image). Counts are over the desired Hosts only,
// so a Host that leaves the node selector stops counting at once, and each desired Host is in
// at most one of ready, pulling, failed.
import {
  normalizeImageReference,
  type Condition,
  type Host,
  type ImageStatus,
} from '../api/v1alpha1/index.js';
import {
  isTrue,
  progressConditionTypes,
  progressOf,
  setCondition,
  setProgress,
  type ConditionUpdate,
} from '../kube/conditions.js';

/** What of an Image the aggregation needs. */
export interface ImageTarget {
  /** "<namespace>/<name>", as Hosts name it in status.imagePulls. */
  key: string;
  nodeSelector?: Record<string, string>;
  /** The resolved digest, if any. */
  digest?: string;
  /** registry/path@digest */
  resolvedImage?: string;
}

/** One Host as seen from one Image. */
export type HostState =
  | { state: 'NotDesired' }
  | { state: 'Ready' }
  | { state: 'Pulling' }
  | { state: 'Failed'; reason: string; message: string }
  | { state: 'Waiting' };

export interface HostCounts {
  desiredHosts: number;
  readyHosts: number;
  pullingHosts: number;
  failedHosts: number;
  /** The failed Hosts' errors, by host name, at most maxFailures. */
  failures: { host: string; reason: string; message: string }[];
}

/** The API keeps at most this many failures. */
export const maxFailures = 10;
const maxMessage = 4096;

type HostReport = Pick<Host, 'metadata'> & {
  status?: Pick<NonNullable<Host['status']>, 'images' | 'imagePulls' | 'conditions'>;
};

/**
 * What one Host means for one Image. Only Ready Hosts are desired: a lost Host (or one whose agent
 * never reported) cannot pull, and counting it would keep the Image unready for as long as it is down.
 */
export function hostState(image: ImageTarget, host: HostReport | undefined): HostState {
  if (!host || !isTrue(host.status?.conditions, 'Ready')) {
    return { state: 'NotDesired' };
  }
  const labels = host.metadata?.labels ?? {};
  const selected = Object.entries(image.nodeSelector ?? {}).every(([k, v]) => labels[k] === v);
  if (!selected) return { state: 'NotDesired' };
  if (image.digest && (host.status?.images ?? []).some((i) => holds(i, image))) return { state: 'Ready' };
  const pull = (host.status?.imagePulls ?? []).find((p) => p.image === image.key);
  if (pull?.state === 'Pulling') return { state: 'Pulling' };
  if (pull?.state === 'Failed') {
    return {
      state: 'Failed',
      reason: pull.reason || 'PullFailed',
      message: (pull.message ?? '').slice(0, maxMessage),
    };
  }
  return { state: 'Waiting' };
}

/** The image entry is the digest itself, or names it as <repo>@<digest>. */
function holds(entry: { digest: string; names?: string[] }, image: ImageTarget): boolean {
  if (entry.digest === image.digest) return true;
  const pinned = image.resolvedImage;
  return (
    pinned !== undefined && (entry.names ?? []).some((name) => name === pinned || normalized(name) === pinned)
  );
}

function normalized(name: string): string | undefined {
  try {
    return normalizeImageReference(name);
  } catch {
    return undefined; // a name the runtime reports that is no reference at all
  }
}

export function aggregateHosts(image: ImageTarget, hosts: readonly HostReport[]): HostCounts {
  const counts: HostCounts = {
    desiredHosts: 0,
    readyHosts: 0,
    pullingHosts: 0,
    failedHosts: 0,
    failures: [],
  };
  for (const host of hosts) {
    const s = hostState(image, host);
    if (s.state === 'NotDesired') continue;
    counts.desiredHosts++;
    if (s.state === 'Ready') counts.readyHosts++;
    if (s.state === 'Pulling') counts.pullingHosts++;
    if (s.state === 'Failed') {
      counts.failedHosts++;
      counts.failures.push({ host: host.metadata?.name ?? '', reason: s.reason, message: s.message });
    }
  }
  counts.failures.sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
  counts.failures = counts.failures.slice(0, maxFailures);
  return counts;
}

/** What is known about the reference: the digest (kept from before if a refresh failed) and the Resolved condition. */
export interface Resolution {
  digest?: string;
  resolvedImage?: string;
  lastResolvedTime?: string;
  sizeBytes?: number;
  resolved: Omit<ConditionUpdate, 'type' | 'observedGeneration'>;
}

/** The Ready condition: resolved, and every desired Host holds the digest. */
export function readyCondition(
  resolution: Resolution,
  counts: HostCounts,
): Omit<ConditionUpdate, 'type' | 'observedGeneration'> {
  if (resolution.resolved.status !== 'True') return resolution.resolved;
  const { desiredHosts: desired, readyHosts: ready, pullingHosts: pulling, failedHosts: failed } = counts;
  if (desired === 0) {
    return {
      status: 'True',
      reason: 'NoMatchingHosts',
      message: 'No Host matches the node selector, so there is nothing to pull',
    };
  }
  if (ready === desired) {
    return {
      status: 'True',
      reason: 'AllHostsReady',
      message: `All ${desired} Hosts hold ${resolution.digest}`,
    };
  }
  const held = `${ready} of ${desired} Hosts hold ${resolution.digest}`;
  if (failed > 0) {
    const first = counts.failures[0];
    const example = first ? `; ${first.host}: ${first.reason}: ${first.message}` : '';
    return {
      status: 'False',
      reason: 'PullFailed',
      message: `${held}; ${failed} failed to pull it (see status.failures)${example}`.slice(0, maxMessage),
    };
  }
  if (pulling > 0) return { status: 'False', reason: 'Pulling', message: `${held}; ${pulling} pulling` };
  return { status: 'False', reason: 'WaitingForHosts', message: `${held}; waiting for the others to pull` };
}

/** The whole status the controller applies. */
export function imageStatus(
  generation: number | undefined,
  previous: readonly Condition[] | undefined,
  resolution: Resolution,
  counts: HostCounts,
  now: Date,
): ImageStatus {
  let conditions = setCondition(
    previous,
    { type: 'Resolved', observedGeneration: generation, ...resolution.resolved },
    now,
  );
  const ready = readyCondition(resolution, counts);
  conditions = setCondition(conditions, { type: 'Ready', observedGeneration: generation, ...ready }, now);
  const waiting = ready.reason === 'Pulling' || ready.reason === 'WaitingForHosts';
  conditions = setProgress(
    conditions,
    progressOf({ type: 'Ready', ...ready }, waiting ? new Set() : new Set([ready.reason])),
    generation,
    now,
  );
  return {
    observedGeneration: generation,
    ...(resolution.digest !== undefined && { digest: resolution.digest }),
    ...(resolution.resolvedImage !== undefined && { resolvedImage: resolution.resolvedImage }),
    ...(resolution.lastResolvedTime !== undefined && { lastResolvedTime: resolution.lastResolvedTime }),
    ...(resolution.sizeBytes !== undefined && { sizeBytes: resolution.sizeBytes }),
    desiredHosts: counts.desiredHosts,
    readyHosts: counts.readyHosts,
    pullingHosts: counts.pullingHosts,
    failedHosts: counts.failedHosts,
    ...(counts.failures.length > 0 && { failures: counts.failures }),
    conditions: conditions.filter((c) => imageConditionTypes.includes(c.type)),
  };
}

const imageConditionTypes = ['Resolved', 'Ready', ...progressConditionTypes];

/** The status of an Image whose spec does not parse: both conditions False with the parse error. */
export function invalidImageStatus(
  generation: number | undefined,
  previous: readonly Condition[] | undefined,
  message: string,
  now: Date,
): ImageStatus {
  const update = { status: 'False', reason: 'InvalidSpec', message, observedGeneration: generation } as const;
  let conditions = setCondition(previous, { type: 'Resolved', ...update }, now);
  conditions = setCondition(conditions, { type: 'Ready', ...update }, now);
  conditions = setProgress(conditions, { state: 'Stalled', reason: 'InvalidSpec', message }, generation, now);
  return {
    observedGeneration: generation,
    conditions: conditions.filter((c) => imageConditionTypes.includes(c.type)),
  };
}
