// containermetrics from an agent's sample: narrowed to the namespace asked for, one item per
// Container (a restarted one's earlier runs add nothing), quantities as kubectl top prints them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cpuQuantity, memoryQuantity } from '../../../src/api/v1alpha1/index.js';
import { refusal } from '../../../src/subresources/authorize.js';
import { toMetrics } from '../../../src/subresources/metrics.js';

describe('containermetrics', () => {
  const sample = {
    sampledAt: '2026-12-03T20:00:00.000Z',
    containers: [
      { namespace: 'a', name: 'web', cpuCores: 0.0124, memoryBytes: 12 * 2 ** 20 },
      { namespace: 'a', name: 'web', cpuCores: 0, memoryBytes: 0 },
      { namespace: 'b', name: 'db', cpuCores: 1.5, memoryBytes: 300 * 2 ** 20 },
    ],
  };

  it("keeps the namespace's containers, one item each, with the host and the sample's time", () => {
    assert.deepEqual(toMetrics('host-1', sample, 'a'), [
      {
        metadata: { name: 'web', namespace: 'a' },
        host: 'host-1',
        timestamp: '2026-12-03T20:00:00.000Z',
        usage: { cpu: '12m', memory: '12Mi' },
      },
    ]);
    assert.deepEqual(
      toMetrics('host-1', sample, undefined).map((m) => m.metadata.name),
      ['web', 'db'],
    );
  });

  it('prints quantities as kubectl top does', () => {
    assert.equal(cpuQuantity(1.5), '1500m');
    assert.equal(cpuQuantity(0.0004), '0m');
    assert.equal(memoryQuantity(1.6 * 2 ** 20), '2Mi');
  });

  it("refuses in the apiserver's words, naming the scope", () => {
    const user = { username: 'u', groups: [], extra: {} };
    assert.equal(
      refusal(user, { verb: 'list' }),
      'User "u" cannot list resource "containers" in API group "gantry.dev" at the cluster scope',
    );
    assert.equal(
      refusal(user, { verb: 'create', subresource: 'exec', namespace: 'n', name: 'c' }),
      'User "u" cannot create resource "containers/exec" in API group "gantry.dev" in the namespace "n"',
    );
  });
});
