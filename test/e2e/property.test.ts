// 1,000 random valid Container and Workload specs (fast-check), through the real apiserver to the
// controller and the agents on the local cluster's containerd hosts, a batch at a time: no Gantry
// process dies, and every object ends in a phase or a condition that explains it. Specs mix what
// runs with what cannot: missing images and registries, commands that exit or do not exist,
// users an image cannot run as, requests no Host has, health checks that fail. The facts are
// the apiserver's own (a watch recorded from before the first create), not samples.
// PROPERTY_SEED replays a run; a failure prints the seed and each unexplained object's spec.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CustomObjectsApi } from '@kubernetes/client-node';
import fc from 'fast-check';
import {
  BASELINE_CAPABILITIES,
  ContainerSpecSchema,
  WorkloadSpecSchema,
  type Container,
  type Workload,
} from '../../src/api/v1alpha1/index.js';
import { getCondition } from '../../src/kube/conditions.js';
import { pids, startGantry } from '../../src/localcluster/gantry.js';
import { livePid } from '../../src/localcluster/proc.js';
import { deleteTestNamespace, kubeConfig, kubectlOk, localCluster } from '../support/cluster.js';
import { eventually } from '../support/wait.js';
import { WatchRecorder } from '../support/watch.js';

const cluster = localCluster();
const [host1, host2] = cluster.hosts.map((h) => h.name) as [string, string];
const ns = `e2e-property-${process.pid}`;
const total = Number(process.env.PROPERTY_COUNT ?? 1000);
const batchSize = 200;
const seed = Number(process.env.PROPERTY_SEED ?? Date.now() % 2 ** 31);

const registry = cluster.images.web.slice(0, cluster.images.web.indexOf('/'));
const images = [
  cluster.images.pause,
  cluster.images.web,
  cluster.images.counter,
  `${registry}/gantry/absent:1`, // no such repository
  '127.0.0.1:9/gantry/web:1', // no registry there
];
// The test images' commands trap SIGTERM; these mostly do too, so deletions do not wait long.
const commands = [
  undefined,
  ['/bin/sh', '-c', 'exit 0'],
  ['/bin/sh', '-c', 'exit 3'],
  ['/bin/sh', '-c', 'trap "exit 0" TERM; sleep 600 & wait'],
  ['/bin/sh', '-c', 'echo "$@"; trap "exit 0" TERM; sleep 600 & wait', 'sh'],
  ['/no/such/program'],
];

const envName = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,15}$/);
const securityContext = fc.record(
  {
    runAsUser: fc.integer({ min: 0, max: 70_000 }),
    runAsGroup: fc.integer({ min: 0, max: 70_000 }),
    runAsNonRoot: fc.boolean(),
    readOnlyRootFilesystem: fc.boolean(),
    allowPrivilegeEscalation: fc.boolean(),
    capabilities: fc.record(
      {
        drop: fc.subarray(['ALL', 'NET_RAW', 'CHOWN', 'KILL']),
        add: fc.subarray([...BASELINE_CAPABILITIES]),
      },
      { requiredKeys: [] },
    ),
  },
  { requiredKeys: [] },
);
const healthCheck = fc.record({
  probe: fc.oneof(
    fc.constant({ exec: { command: ['/bin/sh', '-c', 'exit 1'] } }),
    fc.constant({ exec: { command: ['/bin/true'] } }),
    fc.constant({ httpGet: { port: 8080 } }),
    fc.integer({ min: 1, max: 65535 }).map((port) => ({ tcpSocket: { port } })),
  ),
  intervalSeconds: fc.integer({ min: 5, max: 10 }),
  retries: fc.integer({ min: 1, max: 3 }),
});

/** The container fields a Container and a Workload template share. */
const templateSpec = fc
  .record(
    {
      image: fc.constantFrom(...images),
      imagePullPolicy: fc.constantFrom('Always', 'IfNotPresent', 'Never'),
      command: fc.constantFrom(...commands),
      args: fc.array(fc.string({ maxLength: 20 }), { maxLength: 3 }),
      workingDir: fc.constantFrom('/', '/tmp', '/not/there/yet'),
      env: fc.uniqueArray(fc.record({ name: envName, value: fc.string({ maxLength: 40 }) }), {
        maxLength: 4,
        selector: (e) => e.name,
      }),
      ports: fc
        .uniqueArray(fc.integer({ min: 1, max: 65535 }), { maxLength: 2 })
        .map((ps) => ps.map((containerPort) => ({ containerPort }))),
      resources: fc.record(
        {
          requests: fc.record(
            {
              cpu: fc.constantFrom('1m', '10m', '50m', '64'),
              memory: fc.constantFrom('1Mi', '16Mi', '64Mi', '10Ti'),
            },
            { requiredKeys: [] },
          ),
          limits: fc.record(
            { cpu: fc.constantFrom('100m', '2', '128'), memory: fc.constantFrom('16Mi', '512Mi', '20Ti') },
            { requiredKeys: [] },
          ),
        },
        { requiredKeys: [] },
      ),
      restartPolicy: fc.constantFrom('Always', 'OnFailure', 'Never'),
      healthCheck: healthCheck.map((h) => ({
        ...h.probe,
        intervalSeconds: h.intervalSeconds,
        timeoutSeconds: 1,
        retries: h.retries,
      })),
      securityContext,
      terminationGracePeriodSeconds: fc.integer({ min: 0, max: 2 }),
    },
    { requiredKeys: ['image'] },
  )
  .map((spec) => (spec.command?.length === 0 ? { ...spec, command: undefined } : spec));

type Spec = { kind: 'Container' | 'Workload'; spec: Record<string, unknown> };

/** A spec the API accepts (the zod schemas carry the CRDs' CEL rules): only valid ones are sent. */
const containerSpec = fc
  .record({
    template: templateSpec,
    nodeName: fc.constantFrom(undefined, undefined, host1, host2),
    nodeSelector: fc.constantFrom(
      undefined,
      { 'kubernetes.io/hostname': host2 },
      { 'gantry.test/none': 'x' },
    ),
  })
  .map(
    ({ template, nodeName, nodeSelector }) =>
      JSON.parse(JSON.stringify({ ...template, nodeName, nodeSelector })) as Record<string, unknown>,
  )
  .filter((spec) => ContainerSpecSchema.safeParse(spec).success)
  .map((spec): Spec => ({ kind: 'Container', spec }));

const workloadSpec = fc
  .record({ template: templateSpec, replicas: fc.integer({ min: 0, max: 2 }) })
  .map(({ template, replicas }) => ({
    replicas,
    selector: { matchLabels: {} },
    template: { metadata: { labels: {} }, spec: JSON.parse(JSON.stringify(template)) as object },
  }))
  .filter((spec) => {
    const labels = { 'gantry.test/object': 'p' };
    return WorkloadSpecSchema.safeParse({
      ...spec,
      selector: { matchLabels: labels },
      template: { ...spec.template, metadata: { labels } },
    }).success;
  })
  .map((spec): Spec => ({ kind: 'Workload', spec }));

/** A Container's status explains it: what it is doing, or why it cannot (undefined while it gets there). */
function explained(c: Container): string | undefined {
  const s = c.status;
  if (!s?.phase || (s.observedGeneration ?? 0) < (c.metadata.generation ?? 0)) return undefined;
  switch (s.phase) {
    case 'Running':
      return 'Running';
    case 'Succeeded':
    case 'Failed':
      return s.exitCode !== undefined || s.reason
        ? `${s.phase} ${s.reason ?? `exit ${s.exitCode}`}`
        : undefined;
    case 'Restarting':
      return s.reason ? `Restarting ${s.reason}` : undefined;
    case 'Creating':
      return s.reason && s.message && !['Pulling', 'ContainerCreating'].includes(s.reason)
        ? `Creating ${s.reason}`
        : undefined;
    case 'Pending': {
      const scheduled = getCondition(s.conditions, 'Scheduled');
      return scheduled?.status === 'False' && scheduled.reason && scheduled.message
        ? `Pending ${scheduled.reason}`
        : undefined;
    }
    default:
      return undefined; // Migrating, Terminating, Unknown: nothing here asks for those
  }
}

function workloadExplained(w: Workload): string | undefined {
  const s = w.status;
  const available = getCondition(s?.conditions, 'Available');
  return s && (s.observedGeneration ?? 0) >= (w.metadata.generation ?? 0) && available?.reason
    ? `Available=${available.status} ${available.reason}`
    : undefined;
}

describe(`${total} random valid specs (seed ${seed})`, () => {
  const api = kubeConfig().makeApiClient(CustomObjectsApi);
  let containers: WatchRecorder<Container>;
  let workloads: WatchRecorder<Workload>;
  let gantryPids: Record<string, number>;
  const processes = ['controller.pid', `agent-${host1}.pid`, `agent-${host2}.pid`];

  before(async () => {
    await startGantry(cluster);
    gantryPids = Object.fromEntries(
      processes.map((f) => {
        const pid = livePid(path.join(pids, f));
        assert.ok(pid, `no Gantry process runs for ${f}`);
        return [f, pid];
      }),
    );
    await kubectlOk(['create', 'namespace', ns]);
    containers = await WatchRecorder.start(`/apis/gantry.dev/v1alpha1/namespaces/${ns}/containers`);
    workloads = await WatchRecorder.start(`/apis/gantry.dev/v1alpha1/namespaces/${ns}/workloads`);
  });

  after(async () => {
    await Promise.allSettled([containers?.stop(), workloads?.stop()]);
    await deleteTestNamespace(ns);
  });

  it('ends every one in a phase or condition that explains it, and no Gantry process dies', async () => {
    const specs = fc.sample(
      fc.oneof({ weight: 4, arbitrary: containerSpec }, { weight: 1, arbitrary: workloadSpec }),
      {
        numRuns: total,
        seed,
      },
    );
    // The first explanation recorded for each object, by kind/name; the record is scanned once.
    const seen = new Map<string, string>();
    let scanned = { containers: 0, workloads: 0 };
    const scan = (): void => {
      const note = (key: string, why: string | undefined) => why && !seen.has(key) && seen.set(key, why);
      for (const e of containers.events.slice(scanned.containers))
        if (e.type !== 'DELETED') note(`Container/${e.object.metadata.name}`, explained(e.object));
      for (const e of workloads.events.slice(scanned.workloads))
        if (e.type !== 'DELETED') note(`Workload/${e.object.metadata.name}`, workloadExplained(e.object));
      scanned = { containers: containers.events.length, workloads: workloads.events.length };
    };
    let previous = '';
    for (let start = 0; start < total; start += batchSize) {
      const batch = specs.slice(start, start + batchSize).map((s, i) => ({ ...s, name: `p${start + i}` }));
      const label = `batch-${start / batchSize}`;
      const began = Date.now();
      for (let i = 0; i < batch.length; i += 20) {
        await Promise.all(
          batch.slice(i, i + 20).map(({ kind, spec, name }) => {
            const labels = { 'gantry.test/batch': label, 'gantry.test/object': name };
            const body =
              kind === 'Workload'
                ? {
                    ...spec,
                    selector: { matchLabels: labels },
                    template: { ...(spec.template as object), metadata: { labels } },
                  }
                : spec;
            if (kind === 'Workload')
              assert.ok(WorkloadSpecSchema.safeParse(body).success, JSON.stringify(body));
            return api
              .createNamespacedCustomObject({
                group: 'gantry.dev',
                version: 'v1alpha1',
                namespace: ns,
                plural: kind === 'Workload' ? 'workloads' : 'containers',
                body: { apiVersion: 'gantry.dev/v1alpha1', kind, metadata: { name, labels }, spec: body },
              })
              .catch((e: unknown) => {
                throw new Error(
                  `the apiserver refused a valid ${kind} ${JSON.stringify(body)}: ${String(e)}`,
                );
              });
          }),
        );
      }
      // Every object of the batch (and every Container its Workloads made) explained at some
      // moment of the record.
      const unexplained = (): string[] => {
        scan();
        const made = [...containers.current().values()].filter(
          (c) => c.metadata.labels?.['gantry.test/batch'] === label,
        );
        return [
          ...batch.map((b) => `${b.kind}/${b.name}`),
          ...made.map((c) => `Container/${c.metadata.name}`),
        ].filter((key) => !seen.has(key));
      };
      await eventually(`every object of ${label} explained`, () => unexplained().length === 0, {
        timeoutMs: 120_000,
        intervalMs: 1000,
      }).catch((e: unknown) => {
        const current = { Container: containers.current(), Workload: workloads.current() };
        const detail = unexplained()
          .slice(0, 10)
          .map((key) => {
            const [kind, name] = key.split('/') as ['Container' | 'Workload', string];
            const live = current[kind].get(`${ns}/${name}`);
            return `${key} spec ${JSON.stringify(live?.spec)} status ${JSON.stringify(live?.status)}`;
          });
        throw new Error(`${String(e)} (seed ${seed})\n${detail.join('\n')}`);
      });
      console.error(`${label}: ${batch.length} objects explained in ${Date.now() - began} ms`);
      // The batch goes while the next one comes (deleting is as much work for the hosts as
      // starting): they hold at most two batches' processes at a time.
      await eventually(
        'the batch before to be deleted',
        () =>
          ![...containers.current().values(), ...workloads.current().values()].some(
            (o) => o.metadata.labels?.['gantry.test/batch'] === previous,
          ),
        { timeoutMs: 180_000, intervalMs: 1000 },
      );
      for (const plural of ['workloads', 'containers'])
        await api.deleteCollectionNamespacedCustomObject({
          group: 'gantry.dev',
          version: 'v1alpha1',
          namespace: ns,
          plural,
          labelSelector: `gantry.test/batch=${label}`,
        });
      previous = label;
      for (const [file, pid] of Object.entries(gantryPids))
        assert.equal(livePid(path.join(pids, file)), pid, `${file}: died or restarted`);
    }
    await eventually(
      'every object deleted',
      () => containers.current().size === 0 && workloads.current().size === 0,
      { timeoutMs: 180_000, intervalMs: 1000 },
    );
    for (const [file, pid] of Object.entries(gantryPids))
      assert.equal(livePid(path.join(pids, file)), pid, `${file}: died or restarted`);
    const tally: Record<string, number> = {};
    for (const why of seen.values()) tally[why] = (tally[why] ?? 0) + 1;
    console.error(`seed ${seed}; how the ${seen.size} objects were explained: ${JSON.stringify(tally)}`);
  });
});
