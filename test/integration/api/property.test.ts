// zod and the apiserver agree. fast-check builds objects of every kind from arbitraries that mostly
// pick valid values and sometimes invalid ones (bad patterns, out-of-range numbers, wrong types,
// rule violations, duplicate keys, unknown fields); the apiserver (server dry-run) must accept exactly
// the objects zod accepts, and return them exactly as zod parses them (same defaults, same pruning).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import fc from 'fast-check';
import {
  GROUP,
  kinds,
  parseSpec,
  parseStatus,
  VERSION,
  type KindName,
} from '../../../src/api/v1alpha1/index.js';
import { kubeConfig, kubectl } from '../../support/cluster.js';

const RUNS = Number(process.env.GANTRY_PROPERTY_RUNS ?? 60);
const crdDir = fileURLToPath(new URL('../../../crds/', import.meta.url));
const ns = `gantry-api-prop-${Date.now().toString(36)}`;

type Model = Record<string, fc.Arbitrary<unknown>>;

/** Mostly a valid value, now and then one of the invalid ones. */
function mostly<T>(good: fc.Arbitrary<T>, ...invalid: unknown[]): fc.Arbitrary<unknown> {
  return fc.oneof({ arbitrary: good, weight: 30 }, { arbitrary: fc.constantFrom(...invalid), weight: 1 });
}

/** For kinds with few fields: an invalid value one time in five. */
function often<T>(good: fc.Arbitrary<T>, ...invalid: unknown[]): fc.Arbitrary<unknown> {
  return fc.oneof({ arbitrary: good, weight: 4 }, { arbitrary: fc.constantFrom(...invalid), weight: 1 });
}

/** An object whose keys are each present or absent, except `required` ones. */
function some(model: Model, required: string[] = []): fc.Arbitrary<Record<string, unknown>> {
  return fc.record(model, { requiredKeys: required as never[] }) as fc.Arbitrary<Record<string, unknown>>;
}

/** Absent three times out of four (undefined disappears in the JSON round trip before use). */
function rarely<T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> {
  return fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: arb, weight: 1 });
}

const DIGEST = `sha256:${'0f'.repeat(32)}`;
const image = mostly(
  fc.constantFrom(
    '127.0.0.1:5000/gantry/web:1',
    '127.0.0.1:5000/gantry/counter:1',
    'nginx',
    'nginx:1.27',
    'ghcr.io/org/app:v1.2',
    `busybox@${DIGEST}`,
  ),
  'Nginx',
  'a b',
  'nginx@sha256:abc',
  'nginx:',
  '',
  42,
);
const quantity = mostly(
  fc.constantFrom('100m', '250m', '1', '2', 1, 4, '0.5', '1Gi', '512Mi', '1G', '128974848', '1e3', '64Mi'),
  '-1',
  '1 core',
  -5,
  '1x',
);
const labelKey = mostly(fc.constantFrom('app', 'gantry.dev/pool', 'zone', 'A_b.c'), 'bad key', '-x', 'a/b/c');
const labelValue = mostly(fc.constantFrom('web', 'a', '', 'x.y_z'), '-x', 'a b');
const labels = fc.dictionary(labelKey as fc.Arbitrary<string>, labelValue, { maxKeys: 2 });
const port = mostly(fc.constantFrom(53, 80, 443, 5000, 8080, 9090), 0, 70000, '80');
const seconds = (min: number, max: number) => mostly(fc.integer({ min, max }), min - 1, max + 1, 1.5);
const shortStrings = fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 });

const probes: Model = {
  exec: some({ command: fc.array(fc.string({ maxLength: 6 }), { minLength: 1, maxLength: 2 }) }, ['command']),
  httpGet: some(
    {
      path: mostly(fc.constantFrom('/', '/healthz'), 'healthz'),
      port,
      scheme: mostly(fc.constant('HTTP'), 'HTTPS'),
    },
    ['port'],
  ),
  tcpSocket: some({ port }, ['port']),
};
const healthTimings: Model = {
  intervalSeconds: seconds(1, 60),
  timeoutSeconds: seconds(1, 30),
  retries: seconds(1, 100),
  startPeriodSeconds: seconds(0, 30),
};
/** Mostly exactly one probe, sometimes none or several (the CEL rule's cases). */
const healthCheck = fc.oneof(
  {
    weight: 10,
    arbitrary: fc
      .constantFrom(...Object.keys(probes))
      .chain((probe) => some({ [probe]: probes[probe]!, ...healthTimings }, [probe])),
  },
  { weight: 1, arbitrary: some({ ...probes, ...healthTimings }) },
);

const containerTemplate: Model = {
  image,
  imagePullPolicy: mostly(fc.constantFrom('Always', 'IfNotPresent', 'Never'), 'Sometimes'),
  imagePullSecrets: fc.array(
    some({ name: mostly(fc.constantFrom('reg', 'reg2', 'reg3'), 'Reg_1') }, ['name']),
    {
      maxLength: 2,
    },
  ),
  command: shortStrings,
  args: shortStrings,
  workingDir: mostly(fc.constantFrom('/app', '/'), 'app'),
  env: fc.array(
    some(
      {
        name: mostly(fc.constantFrom('A', 'B_C', 'x.y', '-z', 'PATH', 'HOME'), '1A', 'A=B'),
        value: fc.string({ maxLength: 8 }),
      },
      ['name'],
    ),
    { maxLength: 2 },
  ),
  ports: fc.array(
    some(
      {
        name: mostly(fc.constantFrom('http', 'metrics', 'h2c', 'grpc', 'dns'), '80', 'Http'),
        containerPort: port,
        protocol: mostly(fc.constantFrom('TCP', 'UDP'), 'SCTP'),
        hostPort: mostly(fc.constantFrom(80, 8080), 0, 70000),
        hostIP: mostly(
          fc.constantFrom('192.0.2.10', '0.0.0.0', '2001:db8::1', '::'),
          'host-1',
          '192.0.2.01',
          '::ffff:192.0.2.10',
          'fe80::1%eth0',
        ),
      },
      ['containerPort'],
    ),
    { maxLength: 2 },
  ),
  resources: some({
    requests: some({ cpu: quantity, memory: quantity }),
    limits: some({ cpu: quantity, memory: quantity }),
  }),
  restartPolicy: mostly(fc.constantFrom('Always', 'OnFailure', 'Never'), 'Forever'),
  healthCheck,
  terminationGracePeriodSeconds: seconds(0, 3600),
};

/** Selector and template labels: mostly a matching pair, sometimes one that does not match. */
const selection = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.constantFrom(
      { selector: { matchLabels: { app: 'web' } }, labels: { app: 'web' } },
      { selector: { matchLabels: { app: 'web' } }, labels: { app: 'web', tier: 'front' } },
      {
        selector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['web', 'api'] }] },
        labels: { app: 'api' },
      },
      { selector: { matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, labels: undefined },
      {
        selector: {
          matchLabels: { app: 'web' },
          matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['back'] }],
        },
        labels: { app: 'web', tier: 'front' },
      },
    ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      { selector: { matchLabels: { app: 'web' } }, labels: { app: 'api' } },
      { selector: { matchLabels: { app: 'web' } }, labels: undefined },
      {
        selector: { matchExpressions: [{ key: 'app', operator: 'Exists', values: ['web'] }] },
        labels: { app: 'web' },
      },
      {
        selector: { matchExpressions: [{ key: 'app', operator: 'Is', values: ['web'] }] },
        labels: { app: 'web' },
      },
      { selector: {}, labels: { app: 'web' } },
    ),
  },
);

const workloadRest = some(
  {
    replicas: seconds(0, 5),
    annotations: fc.dictionary(labelKey as fc.Arbitrary<string>, fc.string({ maxLength: 8 }), { maxKeys: 2 }),
    templateSpec: some(containerTemplate, ['image']),
    placement: some({ nodeSelector: labels, maxSkew: seconds(1, 3), maxPerHost: seconds(1, 3) }),
    strategy: some({
      type: mostly(fc.constantFrom('RollingUpdate', 'Recreate'), 'BlueGreen'),
      rollingUpdate: rarely(
        some({
          maxUnavailable: mostly(fc.constantFrom(0, 1, '25%', '0%', '100%'), -1, '25 percent', 1.5),
          maxSurge: mostly(fc.constantFrom(0, 2, '50%', '0%'), -1, '%', true),
        }),
      ),
    }),
    migrationPolicy: some({
      mode: mostly(fc.constantFrom('Checkpoint', 'Restart'), 'Live'),
      fallback: mostly(fc.constantFrom('Restart', 'None'), 'Retry'),
      onDrain: mostly(fc.boolean(), 'yes'),
    }),
    autoscale: rarely(
      some(
        {
          minReplicas: seconds(1, 4),
          maxReplicas: seconds(1, 6),
          targetCPUUtilizationPercent: seconds(1, 1000),
          scaleUpStabilizationSeconds: seconds(0, 3600),
          scaleDownStabilizationSeconds: seconds(0, 3600),
        },
        ['maxReplicas'],
      ),
    ),
    progressDeadlineSeconds: seconds(1, 900),
    color: fc.constant('blue'),
  },
  ['templateSpec'],
);

/** Spec arbitraries per kind; `imagePullPolicies` and `color` are unknown fields both sides must drop. */
const specs: Record<KindName, fc.Arbitrary<Record<string, unknown>>> = {
  Container: some(
    {
      ...containerTemplate,
      nodeName: mostly(fc.constantFrom('host-1', 'edge.box-2'), 'Host_1'),
      nodeSelector: labels,
      stopped: mostly(fc.boolean(), 'yes'),
      stopGracePeriodSeconds: seconds(0, 3600),
      imagePullPolicies: fc.constant('Always'),
    },
    ['image'],
  ),
  Workload: fc
    .tuple(selection, workloadRest)
    .map(([{ selector, labels }, { annotations, templateSpec, ...rest }]) => ({
      ...rest,
      selector,
      template: { metadata: { labels, annotations }, spec: templateSpec },
    })),
  Image: some(
    {
      image,
      pullSecrets: fc.array(some({ name: mostly(fc.constantFrom('reg', 'reg2'), 'Reg_1') }, ['name']), {
        maxLength: 2,
      }),
      nodeSelector: labels,
      pullPolicy: mostly(fc.constantFrom('IfNotPresent', 'Always'), 'Never'),
      refreshInterval: mostly(
        fc.constantFrom('10m', '1h30m', '60s', '90s', '2h', '30s'),
        '10 minutes',
        '1d',
        '',
      ),
      keep: mostly(fc.boolean(), 'yes'),
    },
    ['image'],
  ),
  Host: some({
    unschedulable: often(fc.boolean(), 'yes'),
    drain: often(fc.boolean(), 1),
    maxConcurrentMigrations: often(fc.integer({ min: 1, max: 64 }), 0, 65, 2.5, '2'),
  }),
  Migration: some(
    {
      container: mostly(fc.constantFrom('counter', 'web-1'), 'Bad_Name', ''),
      targetHost: mostly(fc.constantFrom('host-1', 'host-2'), 'Host 2'),
      mode: mostly(fc.constantFrom('Checkpoint', 'Restart'), 'Teleport'),
      fallback: mostly(fc.constantFrom('Restart', 'None'), 'Retry'),
      timeoutSeconds: seconds(10, 3600),
      maxDowntimeSeconds: mostly(fc.integer({ min: 1, max: 600 }), 0, 3601),
    },
    ['container'],
  ),
  Build: some(
    {
      image,
      context: some({
        files: fc.dictionary(
          mostly(
            fc.constantFrom('Dockerfile', 'app/main.sh', '.dockerignore', '..x'),
            '../x',
            'a//b',
            '.',
          ) as fc.Arbitrary<string>,
          fc.string({ maxLength: 8 }),
          { maxKeys: 2 },
        ),
      }),
      dockerfile: mostly(fc.constantFrom('Dockerfile', 'build/Dockerfile'), '../Dockerfile', '/Dockerfile'),
      buildArgs: fc.dictionary(fc.constantFrom('VERSION', 'A'), fc.string({ maxLength: 8 }), { maxKeys: 2 }),
      target: mostly(fc.constantFrom('build', 'final-1'), '-x', 'a b'),
      secrets: fc.array(
        some(
          {
            id: mostly(fc.constantFrom('token', 'npm.rc'), 'a b', ''),
            secretKeyRef: some(
              { name: mostly(fc.constantFrom('s'), 'S_1'), key: mostly(fc.constantFrom('k'), 'a b') },
              ['name', 'key'],
            ),
          },
          ['id', 'secretKeyRef'],
        ),
        { maxLength: 2 },
      ),
      nodeName: mostly(fc.constantFrom('host-1'), 'Host_1'),
    },
    ['image', 'context', 'nodeName'],
  ),
};

/**
 * A short string over an alphabet (to compare the JavaScript patterns with the apiserver's RE2 ones),
 * or one of the valid values, so that acceptance is exercised too.
 */
function fuzz(alphabet: string, ...valid: string[]): fc.Arbitrary<string> {
  const random = fc.string({ unit: fc.constantFrom(...alphabet), maxLength: 10 });
  return valid.length === 0 ? random : fc.oneof(random, fc.constantFrom(...valid), fc.constantFrom(...valid));
}

/** Free-form strings in fields with a pattern or a parsed syntax. */
const fuzzSpecs: [KindName, fc.Arbitrary<Record<string, unknown>>][] = [
  [
    'Container',
    some(
      {
        image: fuzz('ab0:/.@_-A', 'a', 'a0/b_c', 'localhost:5000/a', 'a.b:1/c:d'),
        nodeName: fuzz('a0.-_A', 'a.b', 'a-0'),
        nodeSelector: fc.dictionary(fuzz('aZ0./_-', 'a/b', 'a.b/C'), fuzz('aZ0._- ', 'Z', 'a_b'), {
          maxKeys: 2,
        }),
        resources: some({
          requests: some({ cpu: fuzz('0123456789.eEmkMGiK+-', '1', '.5', '1e3', '2k') }),
          limits: some({ cpu: fuzz('0129.eEkMGi', '5', '1E', '90Gi') }),
        }),
        env: fc.array(some({ name: fuzz('aZ0._-=', 'a', '_0', '.x') }, ['name']), { maxLength: 2 }),
        ports: fc.array(
          some(
            {
              name: fuzz('az09-A', 'a', 'a-0'),
              containerPort: fc.constantFrom(80, 81),
              hostPort: fc.constantFrom(80, 81),
            },
            ['containerPort'],
          ),
          {
            maxLength: 2,
          },
        ),
      },
      ['image'],
    ),
  ],
  [
    'Image',
    some(
      {
        image: fuzz('ab0:/.@_-A', 'a', 'b/c:1'),
        refreshInterval: fuzz('0123456789.hms u', '1h', '2m', '99999h99999m'),
        pullSecrets: fc.array(some({ name: fuzz('a0.-', 'a', 'a.b') }, ['name']), { maxLength: 1 }),
      },
      ['image'],
    ),
  ],
  [
    'Migration',
    some({ container: fuzz('a0.-_', 'a', 'a-b.c'), targetHost: fuzz('a0.-A', '0', 'a.0') }, ['container']),
  ],
];

const dateTime = mostly(
  fc.constantFrom('2025-01-31T12:00:00Z', '2025-01-31T12:00:00.5+02:00', '2024-02-29T23:59:59Z'),
  'yesterday',
  '2025-02-30T00:00:00Z',
  '2025-01-31 12:00:00',
);
/** A valid timestamp with one character replaced: probes the edges of the date-time format check. */
const nearlyDateTime = fc
  .tuple(
    fc.constantFrom('2025-01-31T12:00:00Z', '2024-02-29T23:59:59.123456+05:30'),
    fc.nat(),
    fc.constantFrom(...'0123456789-:.TtZz+ x'),
  )
  .map(([t, i, c]) => t.slice(0, i % t.length) + c + t.slice((i % t.length) + 1));
const condition = some(
  {
    type: mostly(fc.constantFrom('Ready', 'Scheduled', 'gantry.dev/Custom'), 'not a type!'),
    status: mostly(fc.constantFrom('True', 'False', 'Unknown'), 'Yes'),
    observedGeneration: mostly(fc.integer({ min: 0, max: 5 }), -1),
    lastTransitionTime: dateTime,
    reason: mostly(fc.constantFrom('Running', 'Pulling', 'CrashLoopBackOff'), 'not camel', ''),
    message: fc.string({ maxLength: 20 }),
  },
  ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
);
const containerStatus = some({
  observedGeneration: mostly(fc.integer({ min: 0, max: 5 }), -1),
  phase: mostly(
    fc.constantFrom('Pending', 'Creating', 'Running', 'Succeeded', 'Failed', 'Unknown'),
    'Sleeping',
  ),
  containerID: fc.string({ maxLength: 12 }),
  ip: fc.constantFrom('10.88.1.5', ''),
  startedAt: dateTime,
  finishedAt: fc.oneof(dateTime, nearlyDateTime),
  exitCode: mostly(fc.integer({ min: -1, max: 255 }), 2 ** 31, 'zero'),
  restartCount: mostly(fc.integer({ min: 0, max: 10 }), -1),
  health: mostly(fc.constantFrom('Healthy', 'Unhealthy', 'Starting'), 'Sick'),
  conditions: fc.array(condition, { maxLength: 2 }),
});

const api = kubeConfig().makeApiClient(k8s.CustomObjectsApi);
let nameSeq = 0;

interface Verdict {
  accepted: boolean;
  value?: unknown;
  error?: string;
}

function rejection(e: unknown): Verdict {
  if (e instanceof k8s.ApiException && (e.code === 422 || e.code === 400)) {
    const body = typeof e.body === 'string' ? (JSON.parse(e.body) as { message?: string }) : {};
    return { accepted: false, error: body.message ?? String(e.body) };
  }
  throw e;
}

/** Server dry-run create; the apiserver's verdict and, if accepted, the spec it would store. */
async function serverCreate(kind: KindName, spec: unknown): Promise<Verdict> {
  const def = kinds[kind];
  const body = { apiVersion: `${GROUP}/${VERSION}`, kind, metadata: { name: `prop-${++nameSeq}` }, spec };
  const common = { group: GROUP, version: VERSION, plural: def.plural, body, dryRun: 'All' };
  try {
    const created = (
      def.scope === 'Cluster'
        ? await api.createClusterCustomObject(common)
        : await api.createNamespacedCustomObject({ ...common, namespace: ns })
    ) as { spec: unknown };
    return { accepted: true, value: created.spec };
  } catch (e) {
    return rejection(e);
  }
}

function agree(
  what: string,
  input: unknown,
  zod: { ok: boolean; value?: unknown; error?: string },
  server: Verdict,
) {
  const detail = `${what}: ${JSON.stringify(input)}\n  zod: ${zod.ok ? 'accepted' : zod.error}\n  apiserver: ${
    server.accepted ? 'accepted' : server.error
  }`;
  assert.equal(server.accepted, zod.ok, `zod and the apiserver disagree on ${detail}`);
  if (zod.ok) assert.deepEqual(server.value, zod.value, `stored value differs from zod's parse of ${detail}`);
}

/**
 * The one default the CRDs add beyond zod's: status.observedGeneration 0 when a status leaves it
 * out (src/api/v1alpha1/crd.ts, unobservedByDefault: how kstatus reads a new object, not a rule
 * on values). Dropped when the input had none, so everything else is still compared.
 */
function withoutUnobservedDefault(input: object, stored: Record<string, unknown>): unknown {
  if ('observedGeneration' in input || stored.observedGeneration !== 0) return stored;
  const { observedGeneration: _default, ...rest } = stored;
  return rest;
}

describe('zod and the apiserver accept the same objects', () => {
  before(async () => {
    const apply = await kubectl([
      'apply',
      '--server-side',
      '--force-conflicts',
      '--field-manager=gantry-api-test',
      '-f',
      crdDir,
    ]);
    assert.equal(apply.code, 0, apply.stderr);
    const wait = await kubectl(['wait', '--for=condition=Established', '--timeout=60s', '-f', crdDir]);
    assert.equal(wait.code, 0, wait.stderr);
    const created = await kubectl(['create', 'namespace', ns]);
    assert.equal(created.code, 0, created.stderr);
  });

  after(async () => {
    await kubectl(['delete', 'containers', '--all', '-n', ns, '--wait=false']);
    await kubectl(['delete', 'namespace', ns, '--wait=false', '--ignore-not-found']);
  });

  for (const kind of Object.keys(kinds) as KindName[]) {
    it(`${kind} spec (${RUNS} runs)`, async (t) => {
      let accepted = 0;
      await fc.assert(
        fc.asyncProperty(specs[kind], async (generated) => {
          const spec: unknown = JSON.parse(JSON.stringify(generated));
          const zod = parseSpec(kind, spec);
          const server = await serverCreate(kind, spec);
          agree(`${kind} spec`, spec, zod, server);
          if (zod.ok) accepted++;
        }),
        { numRuns: RUNS, endOnFailure: true },
      );
      t.diagnostic(`${kind}: ${accepted} of ${RUNS} accepted by both`);
      // Both outcomes must be exercised, or the property says little.
      assert.ok(
        accepted >= 3 && accepted <= RUNS - 3,
        `${accepted} of ${RUNS} accepted: rebalance the arbitraries`,
      );
    });
  }

  for (const [kind, arbitrary] of fuzzSpecs) {
    it(`${kind} spec with random strings in patterned fields (${RUNS} runs)`, async (t) => {
      let accepted = 0;
      await fc.assert(
        fc.asyncProperty(arbitrary, async (spec) => {
          const zod = parseSpec(kind, spec);
          agree(`${kind} spec`, spec, zod, await serverCreate(kind, spec));
          if (zod.ok) accepted++;
        }),
        { numRuns: RUNS, endOnFailure: true },
      );
      t.diagnostic(`${kind} (random strings): ${accepted} of ${RUNS} accepted by both`);
    });
  }

  it(`Container status through the status subresource (${RUNS} runs)`, async (t) => {
    const body = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'Container',
      metadata: { name: 'status-target' },
      spec: { image: 'nginx' },
    };
    const created = (await api.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: ns,
      plural: 'containers',
      body,
    })) as { metadata: { resourceVersion: string } };
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(containerStatus, async (status) => {
        const zod = parseStatus('Container', status);
        let server: Verdict;
        try {
          const updated = (await api.replaceNamespacedCustomObjectStatus({
            group: GROUP,
            version: VERSION,
            namespace: ns,
            plural: 'containers',
            name: 'status-target',
            body: {
              ...body,
              metadata: { ...body.metadata, resourceVersion: created.metadata.resourceVersion },
              status,
            },
            dryRun: 'All',
          })) as { status: Record<string, unknown> };
          server = { accepted: true, value: withoutUnobservedDefault(status, updated.status) };
        } catch (e) {
          server = rejection(e);
        }
        agree('Container status', status, zod, server);
        if (zod.ok) accepted++;
      }),
      { numRuns: RUNS, endOnFailure: true },
    );
    t.diagnostic(`Container status: ${accepted} of ${RUNS} accepted by both`);
    assert.ok(
      accepted >= 3 && accepted <= RUNS - 3,
      `${accepted} of ${RUNS} accepted: rebalance the arbitraries`,
    );
  });
});
