// The Workload's status as a pure function of what is known: the spec, the revision, the replicas
// as the rollout sees them and the status written before. Conditions follow Deployment's:
// Available, Progressing (with the progress deadline), Ready, and kstatus' Reconciling or Stalled.
import type { Condition, WorkloadSpec, WorkloadStatus } from '../api/v1alpha1/index.js';
import { formatLabelSelector } from '../api/v1alpha1/index.js';
import {
  getCondition,
  metaTime,
  progressConditionTypes,
  progressOf,
  setCondition,
  setProgress,
} from '../kube/conditions.js';
import { maxUnavailable, strategyOf, type Replica } from './rollout.js';

export interface StatusInput {
  generation: number | undefined;
  spec: WorkloadSpec;
  revision: string;
  replicas: readonly Replica[];
  previous: WorkloadStatus | undefined;
  now: number;
  /** A pending Container's reason for not being scheduled, if any. */
  unschedulable?: string;
  /** Why the rollout cannot go on for now (its image has no digest yet, or Hosts still pull it). */
  waiting?: Waiting;
}

export interface Waiting {
  reason: string;
  message: string;
}

/**
 * The Workload's status. lastProgressTime moves when this observation is progress (Deployment's
 * rules: more updated, ready or available replicas, fewer old ones, or a new revision or
 * generation), and the progress deadline counts from it. Once a rollout completed, Progressing
 * stays True until the next one: a completed rollout never times out.
 */
export function workloadStatus(input: StatusInput): WorkloadStatus {
  const { spec, revision, previous, generation } = input;
  const desired = spec.replicas;
  const live = input.replicas.filter((r) => !r.deleting && !r.finished);
  const ready = live.filter((r) => r.ready).length;
  const updated = live.filter((r) => r.revision === revision).length;
  const old = live.length - updated;
  const complete = !input.waiting && updated === desired && live.length === desired && ready === desired;
  const progressed =
    !previous ||
    previous.currentRevision !== revision ||
    previous.observedGeneration !== generation ||
    updated > (previous.updatedReplicas ?? 0) ||
    ready > (previous.readyReplicas ?? 0) ||
    old < (previous.replicas ?? 0) - (previous.updatedReplicas ?? 0);
  const recorded = Date.parse(previous?.lastProgressTime ?? '');
  // A status written before lastProgressTime existed starts the count now.
  const lastProgressAt = progressed || !Number.isFinite(recorded) ? input.now : recorded;
  const before = getCondition(previous?.conditions, 'Progressing');
  const settled = before?.reason === 'NewRevisionAvailable' && !progressed;
  const deadlineMs = spec.progressDeadlineSeconds * 1000;
  const timedOut = !complete && !settled && input.now - lastProgressAt > deadlineMs;
  const floor = desired - maxUnavailable(strategyOf(spec), desired);
  const now = new Date(input.now);
  let conditions = previous?.conditions ?? [];
  const set = (type: string, status: 'True' | 'False', reason: string, message: string): void => {
    conditions = setCondition(
      conditions,
      { type, status, reason, message, observedGeneration: generation },
      now,
    );
  };
  set(
    'Available',
    ready >= floor ? 'True' : 'False',
    ready >= floor ? 'MinimumReplicasAvailable' : 'MinimumReplicasUnavailable',
    `${ready} of ${desired} replicas available; at least ${floor} needed`,
  );
  if (complete || settled) {
    set('Progressing', 'True', 'NewRevisionAvailable', `Revision ${revision} is available`);
  } else if (timedOut) {
    set(
      'Progressing',
      'False',
      'ProgressDeadlineExceeded',
      `Revision ${revision} made no progress for ${spec.progressDeadlineSeconds}s`,
    );
  } else {
    const waiting = input.waiting ? `; ${input.waiting.message}` : '';
    set(
      'Progressing',
      'True',
      'RolloutProgressing',
      `Revision ${revision}: ${updated} of ${desired} updated${waiting}`,
    );
  }
  const notReady = timedOut
    ? 'ProgressDeadlineExceeded'
    : input.waiting
      ? input.waiting.reason
      : old > 0
        ? spec.strategy.type === 'Recreate'
          ? 'Recreating'
          : 'RollingUpdate'
        : live.length < desired
          ? 'ScalingUp'
          : live.length > desired
            ? 'ScalingDown'
            : 'WaitingForReady';
  const counts = `${ready} of ${desired} replicas ready, ${updated} updated to revision ${revision}`;
  if (complete) set('Ready', 'True', 'Ready', counts);
  else {
    const why = [counts, input.waiting?.message, input.unschedulable].filter(Boolean).join('; ');
    set('Ready', 'False', notReady, why);
  }
  conditions = setProgress(
    conditions,
    progressOf(getCondition(conditions, 'Ready'), workloadStalledReasons),
    generation,
    now,
  );
  return {
    observedGeneration: generation,
    replicas: live.length,
    readyReplicas: ready,
    updatedReplicas: updated,
    availableReplicas: ready,
    selector: formatLabelSelector(spec.selector),
    currentRevision: revision,
    lastProgressTime: metaTime(new Date(lastProgressAt)),
    conditions: conditions.filter((c) => workloadConditionTypes.includes(c.type)),
  };
}

/** The status of a Workload whose spec is invalid: Ready and Progressing False, Stalled. */
export function invalidWorkloadStatus(
  previous: WorkloadStatus | undefined,
  generation: number | undefined,
  error: string,
  now: Date,
): Pick<WorkloadStatus, 'observedGeneration' | 'conditions'> {
  let conditions: Condition[] = previous?.conditions ?? [];
  for (const type of ['Ready', 'Progressing']) {
    conditions = setCondition(
      conditions,
      { type, status: 'False', reason: 'InvalidSpec', message: error, observedGeneration: generation },
      now,
    );
  }
  conditions = setProgress(
    conditions,
    { state: 'Stalled', reason: 'InvalidSpec', message: error },
    generation,
    now,
  );
  return {
    observedGeneration: generation,
    conditions: conditions.filter((c) => c.type !== 'Available'),
  };
}

const workloadConditionTypes = ['Available', 'Progressing', 'Ready', ...progressConditionTypes];
/** Ready reasons that need a change from someone (kstatus Stalled); the others are still working. */
const workloadStalledReasons = new Set(['InvalidSpec', 'ProgressDeadlineExceeded']);
