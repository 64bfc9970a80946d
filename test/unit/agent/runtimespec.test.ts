import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSpec } from '../../../src/api/v1alpha1/index.js';
import {
  containerConfig,
  labels,
  linuxResources,
  sandboxConfig,
  specHash,
} from '../../../src/agent/runtimespec.js';

function spec(input: Record<string, unknown>) {
  const r = parseSpec('Container', { image: '127.0.0.1:5000/gantry/web:1', ...input });
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

const id = { namespace: 'shop', name: 'web', uid: 'u-1', labels: { 'gantry.dev/workload': 'front' } };

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
});

test('the spec hash changes with what shapes the process, not with scheduling fields', () => {
  const base = specHash(spec({}));
  assert.notEqual(specHash(spec({ args: ['-v'] })), base);
  assert.notEqual(specHash(spec({ image: '127.0.0.1:5000/gantry/web:2' })), base);
  assert.equal(specHash(spec({ nodeName: 'host-1' })), base);
  assert.equal(specHash(spec({ healthCheck: { tcpSocket: { port: 80 } } })), base);
});
