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

test("a failed relabel after the Node's labels change is retried, and never crashes the agent; an unchanged one writes nothing", async () => {
  const nodes = new Store<V1Node>();
  const hostCache = new Store<Host>();
  let statusWrites = 0;
  nodes.set({ metadata: { name: 'h1', labels: { zone: 'a' } } });
  const applied: Record<string, string>[] = [];
  let failNext = false;
  const hosts = {
    apply: async (obj: KubernetesObject) => {
      if (failNext) {
        failNext = false;
        throw new Error('the apiserver is away');
      }
      applied.push(obj.metadata?.labels ?? {});
      // As the apiserver returns it, with the schema's defaults.
      hostCache.set({
        ...(obj as Host),
        spec: { unschedulable: false, drain: false, maxConcurrentMigrations: 2 },
      });
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
    await until('the Host registered', () => applied.length === 1);
    nodes.set({ metadata: { name: 'h1', labels: { zone: 'b' } } });
    failNext = true;
    reporter.relabel();
    await until('the relabel retried and applied', () => applied.some((l) => l.zone === 'b'));
    assert.deepEqual(applied.at(-1), { zone: 'b', 'kubernetes.io/hostname': 'h1' });
    await until('the status written after the relabel', () => statusWrites > 0);
    const [applies, reports] = [applied.length, statusWrites];
    reporter.relabel();
    // The report after a relabel registers first, then writes status (the cached Host has none).
    await until('the next report', () => statusWrites > reports);
    assert.equal(applied.length, applies, 'the Host already has these labels: no apply');
    assert.deepEqual(unhandled, []);
  } finally {
    stop.abort();
    await running;
    process.off('unhandledRejection', onUnhandled);
  }
});
