// What a Container's spec.stopped (docker stop, docker start) asks of its agent, given what the
// runtime holds. Pure: it decides from the spec, the state of the latest runtime container and the
// phase the agent last reported, which is the record that the last run ended in a stop (a runtime
// container's labels cannot change once it exists), so a restarted agent decides the same.
import type { ContainerPhase, ContainerSpec } from '../api/v1alpha1/index.js';
import type { ContainerState } from '../cri/client.js';

export type StopStep =
  /** Nothing to do with stopping: the usual lifecycle (start, restart, replace) goes on. */
  | 'none'
  /** Stopped is asked and the process runs: SIGTERM, then SIGKILL after the grace period. */
  | 'stop'
  /** Stopped is asked and nothing runs: report Stopped, start nothing, restart policy aside. */
  | 'report'
  /** Stopped no longer, and the last run ended in a stop: run again now, restart policy and back-off aside. */
  | 'start';

export interface StopFacts {
  /** spec.stopped, on a Container that may be stopped (not a Workload's replica). */
  stopped: boolean;
  /** The runtime's state of the latest attempt; undefined when it holds none. */
  latest?: ContainerState;
  /** The phase the agent last reported. */
  phase?: ContainerPhase;
}

export function stopStep({ stopped, latest, phase }: StopFacts): StopStep {
  if (stopped) return latest === 'CONTAINER_RUNNING' ? 'stop' : 'report';
  const exited = latest !== undefined && latest !== 'CONTAINER_RUNNING' && latest !== 'CONTAINER_CREATED';
  return exited && (phase === 'Stopping' || phase === 'Stopped') ? 'start' : 'none';
}

/** Seconds between SIGTERM and SIGKILL for a stop: stopGracePeriodSeconds when set (stop -t). */
export function stopGraceSeconds(spec: ContainerSpec): number {
  return spec.stopGracePeriodSeconds ?? spec.terminationGracePeriodSeconds;
}
