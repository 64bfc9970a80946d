// Which EndpointSlices a Service gets for the Gantry Containers it selects, as pure functions.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Service } from '@kubernetes/client-node';
import type { Container } from '../../../src/api/v1alpha1/index.js';
import {
  endpointSlices,
  maxEndpointsPerSlice,
  selectsContainers,
  servicesSelecting,
} from '../../../src/controller/serviceendpoints.js';

function service(over: { labels?: Record<string, string>; spec?: V1Service['spec'] } = {}): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: 'web',
      namespace: 'shop',
      uid: 'svc-uid',
      labels: over.labels ?? { 'gantry.dev/select-containers': 'true' },
    },
    spec: over.spec ?? {
      selector: { app: 'web' },
      ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }],
    },
  };
}

let n = 0;
function container(
  name: string,
  over: {
    ip?: string;
    ready?: boolean;
    deleting?: boolean;
    phase?: 'Running' | 'Succeeded' | 'Failed' | 'Stopping' | 'Stopped';
    labels?: Record<string, string>;
    ports?: NonNullable<Container['spec']['ports']>;
    namespace?: string;
  } = {},
): Container {
  return {
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Container',
    metadata: {
      name,
      namespace: over.namespace ?? 'shop',
      uid: `uid-${name}`,
      labels: over.labels ?? { app: 'web' },
      ...(over.deleting ? { deletionTimestamp: new Date('2026-01-01T00:00:00Z') } : {}),
    },
    spec: {
      image: 'gantry/web:1',
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      nodeName: 'host-1',
      ports: over.ports ?? [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
    },
    status: {
      phase: over.phase ?? 'Running',
      ip: over.ip ?? `10.88.101.${++n}`,
      conditions: [
        {
          type: 'Ready',
          status: over.ready === false ? 'False' : 'True',
          reason: 'Running',
          message: '',
          lastTransitionTime: '2026-01-01T00:00:00Z',
        },
      ],
    },
  };
}

const conditions = (svc: V1Service, cs: Container[]) =>
  endpointSlices(svc, cs).flatMap((s) =>
    s.endpoints.map((e) => [
      e.targetRef?.name,
      e.conditions?.ready,
      e.conditions?.serving,
      e.conditions?.terminating,
    ]),
  );

describe('which Services select Containers', () => {
  it('only those labelled for it, with a selector, not ExternalName', () => {
    assert.equal(selectsContainers(service()), true);
    assert.equal(selectsContainers(service({ labels: {} })), false);
    assert.equal(selectsContainers(service({ labels: { 'gantry.dev/select-containers': 'false' } })), false);
    assert.equal(selectsContainers(service({ spec: { ports: [{ port: 80 }] } })), false, 'no selector');
    assert.equal(selectsContainers(service({ spec: { selector: {}, ports: [{ port: 80 }] } })), false);
    assert.equal(
      selectsContainers(
        service({ spec: { type: 'ExternalName', externalName: 'x.example', selector: { a: 'b' } } }),
      ),
      false,
    );
    assert.deepEqual(endpointSlices(service({ labels: {} }), [container('a')]), []);
  });

  it("matches the selector against the Containers' labels in the Service's namespace", () => {
    const svc = service({ spec: { selector: { app: 'web', tier: 'front' }, ports: [{ port: 80 }] } });
    const both = container('both', { labels: { app: 'web', tier: 'front', extra: 'x' } });
    const one = container('one', { labels: { app: 'web' } });
    const elsewhere = container('elsewhere', { labels: { app: 'web', tier: 'front' }, namespace: 'other' });
    assert.deepEqual(
      endpointSlices(svc, [both, one, elsewhere]).flatMap((s) => s.endpoints.map((e) => e.targetRef?.name)),
      ['both'],
    );
    assert.deepEqual(servicesSelecting([svc, service({ labels: {} })], both), [svc]);
  });
});

describe('endpoints', () => {
  it('lists Ready Containers as ready and the others not, as the Pod endpoints are', () => {
    const cs = [
      container('a'),
      container('b', { ready: false }),
      container('c', { deleting: true }),
      container('d', { deleting: true, ready: false }),
    ];
    assert.deepEqual(conditions(service(), cs), [
      ['a', true, true, false],
      ['b', false, false, false],
      ['c', false, true, true],
      ['d', false, false, true],
    ]);
  });

  it('leaves out Containers without an address and finished ones', () => {
    const noIp = container('no-ip');
    delete noIp.status!.ip;
    const cs = [noIp, container('done', { phase: 'Succeeded' }), container('failed', { phase: 'Failed' })];
    assert.deepEqual(endpointSlices(service(), cs), []);
  });

  it('leaves out a stopped Container, even one whose address is still reported: not even publishNotReadyAddresses publishes it', () => {
    const svc = service();
    svc.spec!.publishNotReadyAddresses = true;
    const cs = [
      container('stopping', { phase: 'Stopping', ready: false }),
      container('stopped', { phase: 'Stopped', ready: false }),
    ];
    assert.deepEqual(endpointSlices(svc, cs), []);
  });

  it('publishNotReadyAddresses makes every endpoint ready', () => {
    const svc = service();
    svc.spec!.publishNotReadyAddresses = true;
    assert.deepEqual(conditions(svc, [container('b', { ready: false })]), [['b', true, false, false]]);
  });

  it('names the Container, its Host and its address', () => {
    const [slice] = endpointSlices(service(), [container('a', { ip: '10.88.101.7' })]);
    assert.deepEqual(slice!.endpoints[0], {
      addresses: ['10.88.101.7'],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: 'host-1',
      targetRef: {
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Container',
        namespace: 'shop',
        name: 'a',
        uid: 'uid-a',
      },
    });
  });
});

describe('slices', () => {
  it("are labelled for kube-proxy, owned by the Service, named after it, Gantry's own", () => {
    const [slice] = endpointSlices(service(), [container('a')]);
    assert.match(slice!.metadata!.name!, /^web-gantry-[0-9a-f]{10}$/);
    assert.deepEqual(slice!.metadata!.labels, {
      'kubernetes.io/service-name': 'web',
      'endpointslice.kubernetes.io/managed-by': 'gantry.dev',
    });
    assert.deepEqual(slice!.metadata!.ownerReferences, [
      { apiVersion: 'v1', kind: 'Service', name: 'web', uid: 'svc-uid', controller: true },
    ]);
    assert.equal(slice!.addressType, 'IPv4');
    assert.deepEqual(slice!.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
  });

  it('map a named targetPort through each Container, grouping Containers by the ports they resolve to', () => {
    const svc = service({
      spec: {
        selector: { app: 'web' },
        ports: [
          { name: 'http', port: 80, protocol: 'TCP', targetPort: 'web' },
          { name: 'dns', port: 53, protocol: 'UDP', targetPort: 'web' },
        ],
      },
    });
    const v1 = container('v1', { ports: [{ name: 'web', containerPort: 8080, protocol: 'TCP' }] });
    const v2 = container('v2', { ports: [{ name: 'web', containerPort: 9090, protocol: 'TCP' }] });
    const none = container('none', { ports: [{ containerPort: 8080, protocol: 'TCP' }] });
    const slices = endpointSlices(svc, [v1, v2, none]);
    const byMember = Object.fromEntries(
      slices.flatMap((s) => s.endpoints.map((e) => [e.targetRef!.name, s.ports])),
    );
    // The UDP port resolves for no one: a named port matches by name and protocol.
    assert.deepEqual(byMember, {
      v1: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      v2: [{ name: 'http', port: 9090, protocol: 'TCP' }],
      none: [],
    });
    assert.equal(slices.length, 3);
  });

  it('take a numeric targetPort as it is, and the port itself when there is none', () => {
    const svc = service({
      spec: { selector: { app: 'web' }, ports: [{ port: 8080 }, { name: 'x', port: 81, targetPort: 9 }] },
    });
    const [slice] = endpointSlices(svc, [container('a', { ports: [] })]);
    assert.deepEqual(slice!.ports, [
      { name: '', port: 8080, protocol: 'TCP' },
      { name: 'x', port: 9, protocol: 'TCP' },
    ]);
  });

  it(`hold at most ${maxEndpointsPerSlice} endpoints, sorted, the same slices for the same state`, () => {
    const cs = Array.from({ length: 250 }, (_, i) => container(`c-${String(i).padStart(3, '0')}`));
    const slices = endpointSlices(service(), cs);
    assert.deepEqual(
      slices.map((s) => s.endpoints.length).sort((a, b) => a - b),
      [50, 100, 100],
    );
    assert.equal(new Set(slices.map((s) => s.metadata!.name)).size, 3);
    const members = slices.flatMap((s) => s.endpoints.map((e) => e.targetRef!.name!)).sort();
    assert.deepEqual(members, cs.map((c) => c.metadata.name).sort());
    assert.deepEqual(endpointSlices(service(), [...cs].reverse()), slices);
  });

  it('keep IPv6 addresses apart', () => {
    const slices = endpointSlices(service(), [container('four'), container('six', { ip: 'fd00::5' })]);
    assert.deepEqual(slices.map((s) => s.addressType).sort(), ['IPv4', 'IPv6']);
  });
});
