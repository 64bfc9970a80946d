// Which EndpointSlices a Service should have for the Gantry Containers it selects, as pure
// functions, after Kubernetes' EndpointSlice controller (pkg/controller/endpointslice):
//  - a Service labelled gantry.dev/select-containers=true selects, with its spec.selector, the
//    Containers of its namespace whose labels match (a Workload's replicas carry its template's);
//  - a Container is an endpoint once it has an IP on a Host and until it finishes or is stopped
//    (spec.stopped: nothing answers there until someone starts it again); ready when its
//    Ready condition is True and it is not being deleted, serving when Ready, terminating when
//    being deleted (kube-proxy sends only to ready ones, to serving terminating ones when none is);
//  - each Service port maps to targetPort: a number as it is, a name through the Container's
//    ports (name and protocol); a Container without that named port leaves that port out, so
//    Containers are grouped into slices by address type and the ports they resolve to;
//  - at most 100 endpoints a slice, named <service>-gantry-<hash of group and chunk>: the same
//    state always gives the same slices, so writing them is idempotent.
import crypto from 'node:crypto';
import type {
  DiscoveryV1EndpointPort,
  V1Endpoint,
  V1EndpointSlice,
  V1Service,
} from '@kubernetes/client-node';
import {
  containerFinished,
  containerStopped,
  endpointSliceManager,
  GROUP,
  selectContainersLabel,
  VERSION,
  type Container,
} from '../api/v1alpha1/index.js';
import { isTrue } from '../kube/conditions.js';

export const serviceNameLabel = 'kubernetes.io/service-name';
export const managedByLabel = 'endpointslice.kubernetes.io/managed-by';
export const maxEndpointsPerSlice = 100;

/** The Service asks for Gantry Containers and has a selector to find them with. */
export function selectsContainers(svc: V1Service): boolean {
  return (
    svc.metadata?.labels?.[selectContainersLabel] === 'true' &&
    svc.spec?.type !== 'ExternalName' &&
    Object.keys(svc.spec?.selector ?? {}).length > 0
  );
}

/** The Service's selector matches the Container's labels (both in one namespace). */
export function selects(svc: V1Service, c: Container): boolean {
  if (svc.metadata?.namespace !== c.metadata.namespace) return false;
  const labels = c.metadata.labels ?? {};
  return Object.entries(svc.spec?.selector ?? {}).every(([k, v]) => labels[k] === v);
}

/** The Service's ports as the Container serves them (targetPort by number, or by name and protocol). */
export function endpointPorts(svc: V1Service, c: Container): DiscoveryV1EndpointPort[] {
  return (svc.spec?.ports ?? []).flatMap((sp) => {
    const protocol = sp.protocol ?? 'TCP';
    const target = sp.targetPort ?? sp.port;
    const port =
      typeof target === 'number'
        ? target
        : c.spec.ports?.find((p) => p.name === target && p.protocol === protocol)?.containerPort;
    if (port === undefined) return [];
    return [
      { name: sp.name ?? '', port, protocol, ...(sp.appProtocol ? { appProtocol: sp.appProtocol } : {}) },
    ];
  });
}

export function endpointOf(svc: V1Service, c: Container): V1Endpoint {
  const serving = isTrue(c.status?.conditions, 'Ready');
  const terminating = !!c.metadata.deletionTimestamp;
  return {
    addresses: [c.status!.ip!],
    conditions: {
      ready: svc.spec?.publishNotReadyAddresses === true || (serving && !terminating),
      serving,
      terminating,
    },
    nodeName: c.spec.nodeName,
    targetRef: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'Container',
      namespace: c.metadata.namespace,
      name: c.metadata.name,
      uid: c.metadata.uid,
    },
  };
}

/**
 * A Container that has an address on a Host and will run again by itself: an endpoint, ready or
 * not. A stopped one is left out, or publishNotReadyAddresses would publish it as ready.
 */
function hasEndpoint(c: Container): boolean {
  return !!c.status?.ip && !!c.spec?.nodeName && !containerFinished(c) && !containerStopped(c);
}

/** Every EndpointSlice the Service should have for `containers` (those of its namespace), sorted by name. */
export function endpointSlices(svc: V1Service, containers: readonly Container[]): V1EndpointSlice[] {
  if (!selectsContainers(svc)) return [];
  const groups = new Map<
    string,
    { addressType: string; ports: DiscoveryV1EndpointPort[]; members: Container[] }
  >();
  const selected = containers
    .filter((c) => selects(svc, c) && hasEndpoint(c))
    .sort((a, b) => (a.metadata.name! < b.metadata.name! ? -1 : 1));
  for (const c of selected) {
    const addressType = c.status!.ip!.includes(':') ? 'IPv6' : 'IPv4';
    const ports = endpointPorts(svc, c);
    const key = JSON.stringify([addressType, ports]);
    let group = groups.get(key);
    if (!group) groups.set(key, (group = { addressType, ports, members: [] }));
    group.members.push(c);
  }
  const slices: V1EndpointSlice[] = [];
  for (const [key, group] of groups) {
    for (let i = 0; i < group.members.length; i += maxEndpointsPerSlice) {
      const chunk = group.members.slice(i, i + maxEndpointsPerSlice);
      slices.push({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name: sliceName(svc.metadata!.name!, `${key}/${i / maxEndpointsPerSlice}`),
          namespace: svc.metadata!.namespace,
          labels: { [serviceNameLabel]: svc.metadata!.name!, [managedByLabel]: endpointSliceManager },
          ownerReferences: [
            {
              apiVersion: 'v1',
              kind: 'Service',
              name: svc.metadata!.name!,
              uid: svc.metadata!.uid!,
              controller: true,
            },
          ],
        },
        addressType: group.addressType,
        endpoints: chunk.map((c) => endpointOf(svc, c)),
        ports: group.ports,
      });
    }
  }
  return slices.sort((a, b) => (a.metadata!.name! < b.metadata!.name! ? -1 : 1));
}

function sliceName(service: string, group: string): string {
  return `${service}-gantry-${crypto.createHash('sha256').update(group).digest('hex').slice(0, 10)}`;
}

/** The Services (of `services`, one namespace's) whose slices list or should list the Container. */
export function servicesSelecting(services: readonly V1Service[], c: Container): V1Service[] {
  return services.filter((svc) => selectsContainers(svc) && selects(svc, c));
}
