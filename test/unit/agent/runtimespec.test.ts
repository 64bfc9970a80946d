import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSpec } from '../../../src/api/v1alpha1/index.js';
import {
  containerConfig,
  labels,
  linuxResources,
  sandboxConfig,
  securityContext,
  specHash,
} from '../../../src/agent/runtimespec.js';

function spec(input: Record<string, unknown>) {
  const r = parseSpec('Container', { image: '127.0.0.1:5000/gantry/web:1', ...input });
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

const id = { namespace: 'shop', name: 'web', uid: 'u-1', labels: { 'gantry.dev/workload': 'front' } };

test("a sandbox resolves names through the cluster's DNS as a Pod of its namespace does, when the agent is given it", () => {
  const withDns = sandboxConfig(id, spec({}), {
    logRoot: '/logs',
    attempt: 0,
    clusterDns: { server: '10.96.0.10', domain: 'cluster.local' },
  });
  assert.deepEqual(withDns.dnsConfig, {
    servers: ['10.96.0.10'],
    searches: ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local'],
    options: ['ndots:5'],
  });
  // Without: the runtime copies its host's resolv.conf, as before.
  assert.equal(sandboxConfig(id, spec({}), { logRoot: '/logs', attempt: 0 }).dnsConfig, undefined);
});

test('cgroup settings follow the kubelet: shares from requests, quota from limits', () => {
  const r = linuxResources(
    spec({ resources: { requests: { cpu: '250m' }, limits: { cpu: '500m', memory: '64Mi' } } }),
  );
  assert.deepEqual(r, {
    cpuShares: 256,
    cpuPeriod: 100_000,
    cpuQuota: 50_000,
    memoryLimitInBytes: 64n * 1024n * 1024n,
  });
  assert.deepEqual(linuxResources(spec({})), {});
  // A limit alone also sets the shares, as a request equal to it would.
  assert.equal(linuxResources(spec({ resources: { limits: { cpu: 2 } } }))?.cpuShares, 2048);
});

test('runtime objects carry labels that tie them to the Container and its Workload', () => {
  const sb = sandboxConfig(id, spec({ ports: [{ containerPort: 8080 }] }), { logRoot: '/logs', attempt: 0 });
  assert.equal(sb.labels?.[labels.uid], 'u-1');
  assert.equal(sb.labels?.[labels.workload], 'front');
  assert.equal(sb.logDirectory, '/logs/shop_web_u-1');
  assert.deepEqual(sb.portMappings, [{ containerPort: 8080, protocol: 'TCP' }]);
  const c = containerConfig(id, spec({ env: [{ name: 'A', value: '1' }] }), {
    image: 'sha256:abc',
    attempt: 3,
  });
  assert.equal(c.metadata.attempt, 3);
  assert.equal(c.logPath, 'container/3.log');
  assert.deepEqual(c.envs, [{ key: 'A', value: '1' }]);
  assert.equal(c.labels?.[labels.specHash], specHash(spec({ env: [{ name: 'A', value: '1' }] })));
  assert.equal(c.linux?.securityContext?.namespaceOptions?.pid, 'CONTAINER');
  // Its checkpoints take CRIU's options from the agent's file (tcp-close...), through runc.
  const withCriu = containerConfig(id, spec({}), {
    image: 'sha256:abc',
    attempt: 0,
    criuConfig: '/s/criu.conf',
  });
  assert.equal(withCriu.annotations?.['org.criu.config'], '/s/criu.conf');
});

test("publishes hostPorts on the Host's address, or on the hostIP a port names", () => {
  const ports = spec({
    ports: [
      { containerPort: 8080, hostPort: 80 },
      { containerPort: 53, protocol: 'UDP', hostPort: 53, hostIP: '192.0.2.7' },
      { containerPort: 9090 },
    ],
  });
  const published = [
    { containerPort: 8080, protocol: 'TCP', hostPort: 80, hostIp: '10.244.1.1' },
    { containerPort: 53, protocol: 'UDP', hostPort: 53, hostIp: '192.0.2.7' },
    { containerPort: 9090, protocol: 'TCP' },
  ];
  const opts = { logRoot: '/logs', attempt: 0 };
  assert.deepEqual(sandboxConfig(id, ports, { ...opts, nodeIP: '10.244.1.1' }).portMappings, published);
  // An agent without --node-ip publishes on every address (an empty host_ip), as the kubelet does.
  assert.equal(sandboxConfig(id, ports, opts).portMappings?.[0]?.hostIp, '');
});

test('the spec hash changes with what shapes the process, not with scheduling fields', () => {
  const base = specHash(spec({}));
  assert.notEqual(specHash(spec({ args: ['-v'] })), base);
  assert.notEqual(specHash(spec({ image: '127.0.0.1:5000/gantry/web:2' })), base);
  assert.equal(specHash(spec({ nodeName: 'host-1' })), base);
  assert.equal(specHash(spec({ healthCheck: { tcpSocket: { port: 80 } } })), base);
});

test('every container runs at the baseline level: RuntimeDefault seccomp, no NET_RAW, no_new_privs', () => {
  const sc = containerConfig(id, spec({}), { image: 'img', attempt: 0 }).linux?.securityContext;
  assert.deepEqual(sc, {
    namespaceOptions: { pid: 'CONTAINER' },
    seccomp: { profileType: 'RuntimeDefault' },
    noNewPrivs: true,
    capabilities: { addCapabilities: [], dropCapabilities: ['NET_RAW'] },
    readonlyRootfs: false,
  });
});

test('securityContext: user, group, read-only root, capabilities within the baseline level', () => {
  const sc = securityContext(
    spec({
      securityContext: {
        runAsUser: 1000,
        runAsGroup: 3000,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: true,
        capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] },
      },
    }),
  );
  assert.deepEqual(sc.runAsUser, { value: 1000 });
  assert.deepEqual(sc.runAsGroup, { value: 3000 });
  assert.equal(sc.readonlyRootfs, true);
  assert.equal(sc.noNewPrivs, false);
  assert.deepEqual(sc.capabilities, { addCapabilities: ['NET_BIND_SERVICE'], dropCapabilities: ['ALL'] });
  assert.deepEqual(sc.seccomp, { profileType: 'RuntimeDefault' }, 'nothing turns seccomp off');
  assert.deepEqual(
    securityContext(spec({ securityContext: { capabilities: { drop: ['NET_ADMIN'] } } })).capabilities
      ?.dropCapabilities,
    ['NET_RAW', 'NET_ADMIN'],
  );
});

test('securityContext is refused outside the baseline level, and when it contradicts itself', () => {
  const refused = (securityContext: object) => parseSpec('Container', { image: 'img', securityContext });
  for (const [sc, why] of [
    [{ capabilities: { add: ['NET_RAW'] } }, /NET_BIND_SERVICE/],
    [{ capabilities: { add: ['SYS_ADMIN'] } }, /SYS_CHROOT/],
    [{ capabilities: { drop: ['cap_net_raw'] } }, /must be ALL or a capability name/],
    [{ runAsNonRoot: true, runAsUser: 0 }, /runAsNonRoot is true but runAsUser is 0/],
    [{ runAsGroup: 10 }, /runAsGroup needs runAsUser/],
  ] as const) {
    const r = refused(sc);
    assert.equal(r.ok, false, JSON.stringify(sc));
    assert.match(r.ok ? '' : r.error, why, JSON.stringify(sc));
  }
});

test('a Container without securityContext keeps the spec hash it had before the field existed', () => {
  assert.equal(specHash(spec({})), specHash({ ...spec({}), securityContext: undefined }));
  assert.notEqual(specHash(spec({})), specHash(spec({ securityContext: { runAsUser: 1 } })));
});
