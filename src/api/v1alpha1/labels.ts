// Names on Gantry objects that more than one component reads or writes: labels, annotations,
// finalizers and the names of helper objects. They are
// part of the API: users select by them and tools may show them. (Labels on runtime objects, which
// only the agent reads, live in src/agent/runtimespec.ts.)

/** On a Workload's Containers: the Workload's name. */
export const workloadLabel = 'gantry.dev/workload';
/** On a Workload's Containers: the hash of the template they were made from. */
export const templateHashLabel = 'gantry.dev/template-hash';

/**
 * On a Service: "true" makes its spec.selector select Gantry Containers too (by their labels, in the
 * Service's namespace), and Gantry writes EndpointSlices for them.
 */
export const selectContainersLabel = 'gantry.dev/select-containers';
/** endpointslice.kubernetes.io/managed-by on the EndpointSlices Gantry writes (kube-proxy merges them with others). */
export const endpointSliceManager = 'gantry.dev';

/** On a migration's target Container: the Migration creating it. Its Workload does not count it yet. */
export const migrationLabel = 'gantry.dev/migration';
/** On a migration's target Container: the name of the Migration whose checkpoint it restores. */
export const restoreFromAnnotation = 'gantry.dev/restore-from';
/** On a migration's target Container: the source's Host, which the scheduler must not choose. */
export const avoidHostAnnotation = 'gantry.dev/migration-avoid-host';
/** On a migration's target Container: "true" when only Hosts that can restore checkpoints fit. */
export const needsCheckpointAnnotation = 'gantry.dev/migration-needs-checkpoint';
/** While set on a Container, the scheduler leaves it unbound (like a Pod's schedulingGates). */
export const schedulingGateAnnotation = 'gantry.dev/scheduling-gate';
/** On a migration's target Container: the Container it replaces. */
export const migratedFromAnnotation = 'gantry.dev/migrated-from';
/**
 * On a migration's source Container once the target has taken over: the target's name. From then on
 * the Workload counts the target in its place, so the pair is one replica at every moment.
 */
export const migratedToAnnotation = 'gantry.dev/migrated-to';

/** On Migrations a drain created: the Host being drained, and the UID of the Container moved. */
export const drainHostLabel = 'gantry.dev/drain-host';
export const drainContainerLabel = 'gantry.dev/drain-container';

/** On every Container an agent acts on: removed by that agent once the runtime holds nothing of it. */
export const runtimeCleanupFinalizer = 'gantry.dev/runtime-cleanup';

/** A Host's heartbeat Lease: renewed by its agent, read by the controller to tell a lost Host. */
export function hostLeaseName(host: string): string {
  return `gantry-host-${host}`;
}

/** On a checkpoint Migration while its transfer token's Secret may exist: the controller removes both. */
export const transferTokenFinalizer = 'gantry.dev/transfer-token';

/** The Secret (in the agents' namespace) holding a migration's transfer token, named after the Migration's UID. */
export function transferSecretName(migrationUid: string): string {
  return `gantry-migration-${migrationUid}`;
}

/**
 * On a Host, written by its agent: where Gantry's aggregated API server reaches that agent for its
 * Containers' logs (https://<address>:<port>, mutual TLS: src/kube/streamtls.ts).
 */
export const streamEndpointAnnotation = 'gantry.dev/stream-endpoint';

/** The aggregated API (an APIService) serving containers/log. */
export const subresourcesGroup = 'subresources.gantry.dev';
