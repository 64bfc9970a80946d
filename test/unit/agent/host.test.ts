import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KubernetesObject, V1Node } from '@kubernetes/client-node';
import { SimulatedRuntime } from '../../../bench/support/simulated-runtime.js';
import type { Host } from '../../../src/api/v1alpha1/index.js';
import { HostReporter } from '../../../src/agent/host.js';
import type { CriClient } from '../../../src/cri/client.js';
import type { KubeClient } from '../../../src/kube/client.js';
import type { CustomResourceClient } from '../../../src/kube/customresource.js';
import { Store } from '../../../src/kube/store.js';
import { log } from '../controller/fakes.js';

const until = async (what: string, check: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(check(), what);
};

test('registers its Host with the hostname label alone; a refused registration of an existing Host is retried with the reports and holds up nothing', async () => {
  const nodes = new Store<V1Node>();
  nodes.set({ metadata: { name: 'h1', labels: { zone: 'a' } } });
  // Registered by an older agent, which copied the Node's labels under its own field manager.
  const hostCache = new Store<Host>();
  hostCache.set({
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Host',
    metadata: {
      name: 'h1',
      labels: { zone: 'a', 'kubernetes.io/hostname': 'h1' },
      managedFields: [
        {
          manager: 'gantry-agent/h1',
          operation: 'Apply',
          fieldsV1: { 'f:metadata': { 'f:labels': { 'f:zone': {}, 'f:kubernetes.io/hostname': {} } } },
        },
      ],
    },
    spec: { unschedulable: false, drain: false, maxConcurrentMigrations: 2 },
  } as Host);
  let statusWrites = 0;
  const applied: Record<string, string>[] = [];
  // The admission policy refuses the first two (at start, and retried with the first report): the
  // controller does not co-own zone=a yet.
  let refusals = 2;
  const hosts = {
    apply: async (obj: KubernetesObject) => {
      if (refusals-- > 0) throw new Error('the agent of h1 may not change the labels of its Host');
      applied.push(obj.metadata?.labels ?? {});
      const live = hostCache.get('h1')!;
      hostCache.set({ ...live, metadata: { ...live.metadata, managedFields: [] } });
      return obj as Host;
    },
    applyStatus: async () => {
      statusWrites++;
      return {} as Host;
    },
  };
  const lease = { metadata: { name: 'gantry-host-h1' }, spec: {} };
  const client = {
    api: () => ({ readNamespacedLease: async () => lease, replaceNamespacedLease: async () => lease }),
  } as unknown as KubeClient;
  const reporter = new HostReporter(
    {
      host: 'h1',
      fieldManager: 'gantry-agent/h1',
      agentVersion: 'test',
      leaseNamespace: 'gantry-system',
      leaseDurationSeconds: 40,
      renewIntervalMs: 60_000,
      reportIntervalMs: 60_000,
      capacity: { cpu: '2', memory: '1Gi' },
      allocatable: { cpu: '2', memory: '1Gi' },
      probeImage: '',
      stateDir: '/nonexistent',
      transferPublicKey: 'a2V5',
      transferEndpoint: 'http://127.0.0.1:1',
    },
    {
      client,
      cri: new SimulatedRuntime() as unknown as CriClient,
      hosts: hosts as unknown as CustomResourceClient<Host>,
      hostCache,
      nodeCache: nodes,
      imagePulls: () => [],
      cpuUsageCores: () => undefined,
      workloadUsage: () => undefined,
      onRenewed: () => {},
      log,
    },
  );
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  const stop = new AbortController();
  const running = reporter.run(stop.signal);
  try {
    await until('the status written although the registration was refused', () => statusWrites > 0);
    assert.deepEqual(applied, []);
    reporter.poke();
    await until('the registration retried with the next report', () => applied.length === 1);
    assert.deepEqual(
      applied,
      [{ 'kubernetes.io/hostname': 'h1' }],
      "the Node's labels are not the agent's to copy",
    );
    const reports = statusWrites;
    reporter.poke();
    await until('another report', () => statusWrites > reports || applied.length > 1);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(applied.length, 1, 'registered: no more applies');
    assert.deepEqual(unhandled, []);
  } finally {
    stop.abort();
    await running;
    process.off('unhandledRejection', onUnhandled);
  }
});
