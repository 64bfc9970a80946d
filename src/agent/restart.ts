// What happens when a container's process exits: restart it (after a back-off that grows with
// every quick crash, like the kubelet's CrashLoopBackOff) or leave it exited. Pure: everything it
// needs is in the runtime's record of the exited attempt, so a restarted agent decides the same.

export type RestartPolicy = 'Always' | 'OnFailure' | 'Never';

export interface BackoffSettings {
  /** Delay before the first restart; doubles with each quick crash. Kubelet: 10 s. */
  initialMs: number;
  /** Kubelet: 300 s. */
  maxMs: number;
  /** A run at least this long resets the back-off. Kubelet: 10 min. */
  resetAfterMs: number;
}

export const defaultBackoff: BackoffSettings = { initialMs: 10_000, maxMs: 300_000, resetAfterMs: 600_000 };

export interface ExitedRun {
  exitCode: number;
  startedAt?: Date;
  finishedAt?: Date;
  /** The back-off step this run was started with (0 for the first). */
  backoffStep: number;
}

export type RestartDecision =
  { restart: false; phase: 'Succeeded' | 'Failed' } | { restart: true; at: Date; backoffStep: number };

export function decideRestart(
  policy: RestartPolicy,
  run: ExitedRun,
  backoff: BackoffSettings,
): RestartDecision {
  const failed = run.exitCode !== 0;
  if (policy === 'Never' || (policy === 'OnFailure' && !failed)) {
    return { restart: false, phase: failed ? 'Failed' : 'Succeeded' };
  }
  const ranMs =
    run.startedAt && run.finishedAt
      ? run.finishedAt.getTime() - run.startedAt.getTime()
      : Number.POSITIVE_INFINITY;
  const step = ranMs >= backoff.resetAfterMs ? 0 : run.backoffStep + 1;
  const delay = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.max(0, step - 1));
  const from = run.finishedAt ?? new Date();
  return { restart: true, at: new Date(from.getTime() + (step === 0 ? 0 : delay)), backoffStep: step };
}
