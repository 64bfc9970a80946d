// An object's status as kstatus computes it for custom resources (sigs.k8s.io/cli-utils,
// pkg/kstatus/status generic rules), which is what Flux health checks, Argo CD-style tooling and
// `kubectl wait` scripts go by. Tests use it to read Gantry's objects the way those tools do.

export type KstatusResult = 'Terminating' | 'InProgress' | 'Failed' | 'Current';

export interface KstatusObject {
  metadata: { generation?: number; deletionTimestamp?: unknown };
  status?: { observedGeneration?: number; conditions?: readonly { type: string; status: string }[] };
}

export function kstatus(o: KstatusObject): KstatusResult {
  if (o.metadata.deletionTimestamp) return 'Terminating';
  const observed = o.status?.observedGeneration;
  if (observed !== undefined && observed !== o.metadata.generation) return 'InProgress';
  const isTrue = (type: string) => o.status?.conditions?.some((c) => c.type === type && c.status === 'True');
  if (isTrue('Reconciling')) return 'InProgress';
  if (isTrue('Stalled')) return 'Failed';
  return 'Current';
}
