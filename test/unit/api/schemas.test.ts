// The zod side of every rule: each CEL rule of the CRDs has cases here that zod must accept or refuse
// with the same message the apiserver gives; defaults, transition rules, parsing helpers, examples and
// the invalid fixtures are checked against zod too.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadAllYaml } from '@kubernetes/client-node';
import { crdFor, type JSONSchemaProps } from '../../../src/api/v1alpha1/crd.js';
import {
  formatLabelSelector,
  isDateTime,
  kinds,
  parseObject,
  parseSpec,
  parseStatus,
  selectorMatches,
  validateSpecUpdate,
  type KindName,
  type LabelSelector,
} from '../../../src/api/v1alpha1/index.js';

const IMG = '127.0.0.1:5000/gantry/web:1';
const DIGEST = `sha256:${'ab'.repeat(32)}`;

const container = (extra: object = {}) => ({ image: IMG, ...extra });
const workload = (extra: object = {}, templateSpec: object = {}) => ({
  selector: { matchLabels: { app: 'web' } },
  template: { metadata: { labels: { app: 'web' } }, spec: { image: IMG, ...templateSpec } },
  ...extra,
});
const withCpuRequest = { resources: { requests: { cpu: '100m' } } };

interface RuleCase {
  kind: KindName;
  message: string;
  valid: object[];
  invalid: object[];
}

/** One entry per CEL rule (by message): specs zod must accept, and specs it must refuse with that message. */
const ruleCases: RuleCase[] = [
  {
    kind: 'Container',
    message: 'invalid reference format',
    valid: [container({ image: 'nginx' }), container({ image: `ghcr.io/org/app:V1@${DIGEST}` })],
    invalid: [
      container({ image: 'nginx latest' }),
      container({ image: 'Nginx' }),
      container({ image: 'nginx@sha256:1' }),
      container({ image: 'nginx:' }),
    ],
  },
  {
    kind: 'Container',
    message: 'limits.cpu must be greater than or equal to requests.cpu',
    valid: [
      container({ resources: { requests: { cpu: '500m' }, limits: { cpu: 1 } } }),
      container({ resources: { requests: { cpu: '1' }, limits: { cpu: '1000m' } } }),
      container({ resources: { limits: { cpu: '1m' } } }),
    ],
    invalid: [container({ resources: { requests: { cpu: 1 }, limits: { cpu: '999m' } } })],
  },
  {
    kind: 'Container',
    message: 'limits.memory must be greater than or equal to requests.memory',
    valid: [container({ resources: { requests: { memory: '1G' }, limits: { memory: '1Gi' } } })],
    invalid: [container({ resources: { requests: { memory: '1Gi' }, limits: { memory: '1G' } } })],
  },
  {
    kind: 'Container',
    message: 'each containerPort and protocol pair must appear once',
    valid: [container({ ports: [{ containerPort: 53 }, { containerPort: 53, protocol: 'UDP' }] })],
    invalid: [container({ ports: [{ containerPort: 80 }, { containerPort: 80, protocol: 'TCP' }] })],
  },
  {
    kind: 'Container',
    message: 'each hostPort and protocol pair must appear once (a Host publishes a port once)',
    valid: [
      container({
        ports: [
          { containerPort: 53, hostPort: 53 },
          { containerPort: 53, protocol: 'UDP', hostPort: 53 },
          { containerPort: 80 },
          { containerPort: 81 },
        ],
      }),
    ],
    invalid: [
      container({
        ports: [
          { containerPort: 80, hostPort: 8080 },
          { containerPort: 81, hostPort: 8080, hostIP: '192.0.2.1' },
        ],
      }),
    ],
  },
  {
    kind: 'Container',
    message: 'hostIP needs hostPort',
    valid: [container({ ports: [{ containerPort: 80, hostPort: 80, hostIP: '192.0.2.1' }] })],
    invalid: [container({ ports: [{ containerPort: 80, hostIP: '192.0.2.1' }] })],
  },
  {
    kind: 'Container',
    message: 'must be an IPv4 or IPv6 address',
    valid: ['192.0.2.1', '0.0.0.0', '2001:db8::10', '::'].map((hostIP) =>
      container({ ports: [{ containerPort: 80, hostPort: 80, hostIP }] }),
    ),
    invalid: ['host-1', '192.0.2', '192.0.2.01', '::ffff:192.0.2.1', 'fe80::1%eth0', ''].map((hostIP) =>
      container({ ports: [{ containerPort: 80, hostPort: 80, hostIP }] }),
    ),
  },
  {
    kind: 'Container',
    message: 'port names must be unique',
    valid: [
      container({ ports: [{ name: 'a', containerPort: 1 }, { containerPort: 2 }, { containerPort: 3 }] }),
    ],
    invalid: [
      container({
        ports: [
          { name: 'a', containerPort: 1 },
          { name: 'a', containerPort: 2 },
        ],
      }),
    ],
  },
  {
    kind: 'Container',
    message: 'a port name must contain at least one letter',
    valid: [container({ ports: [{ name: 'h2c', containerPort: 1 }] })],
    invalid: [container({ ports: [{ name: '80', containerPort: 80 }] })],
  },
  {
    kind: 'Container',
    message: 'exactly one of exec, httpGet or tcpSocket must be set',
    valid: [
      container({ healthCheck: { exec: { command: ['true'] } } }),
      container({ healthCheck: { httpGet: { port: 80 } } }),
      container({ healthCheck: { tcpSocket: { port: 80 } } }),
    ],
    invalid: [
      container({ healthCheck: {} }),
      container({ healthCheck: { exec: { command: ['true'] }, httpGet: { port: 80 } } }),
    ],
  },
  {
    kind: 'Container',
    message: 'keys must be label keys',
    valid: [
      container({
        nodeSelector: { 'gantry.dev/pool': 'a', 'A_b.c-D': '', [`${'a'.repeat(63)}/${'b'.repeat(63)}`]: 'x' },
      }),
    ],
    invalid: [
      container({ nodeSelector: { 'a b': 'x' } }),
      container({ nodeSelector: { '-a': 'x' } }),
      container({ nodeSelector: { 'Gantry.dev/x': 'y' } }),
      container({ nodeSelector: { [`${'b'.repeat(64)}`]: 'x' } }),
      container({ nodeSelector: { '': 'x' } }),
    ],
  },
  ...(['Container', 'Workload'] as const).flatMap((kind): RuleCase[] => {
    const spec = (securityContext: object) =>
      kind === 'Container' ? container({ securityContext }) : workload({}, { securityContext });
    return [
      {
        kind,
        message: 'runAsGroup needs runAsUser (the runtime takes a group only with a user)',
        valid: [spec({ runAsUser: 10, runAsGroup: 10 }), spec({ runAsUser: 10 })],
        invalid: [spec({ runAsGroup: 10 })],
      },
      {
        kind,
        message: 'runAsNonRoot is true but runAsUser is 0 (root)',
        valid: [spec({ runAsNonRoot: true, runAsUser: 1 }), spec({ runAsNonRoot: false, runAsUser: 0 })],
        invalid: [spec({ runAsNonRoot: true, runAsUser: 0 })],
      },
    ];
  }),
  {
    kind: 'Workload',
    message: 'keys must be annotation keys',
    valid: [
      {
        ...workload(),
        template: {
          metadata: { labels: { app: 'web' }, annotations: { 'x.io/y': 'any text: {}' } },
          spec: { image: IMG },
        },
      },
    ],
    invalid: [
      {
        ...workload(),
        template: {
          metadata: { labels: { app: 'web' }, annotations: { 'x/y/z': '' } },
          spec: { image: IMG },
        },
      },
    ],
  },
  {
    kind: 'Workload',
    message: 'selector must have at least one of matchLabels or matchExpressions',
    valid: [workload({ selector: { matchExpressions: [{ key: 'app', operator: 'Exists' }] } })],
    invalid: [workload({ selector: {} }), workload({ selector: { matchLabels: {}, matchExpressions: [] } })],
  },
  {
    kind: 'Workload',
    message: 'values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist',
    valid: [
      workload({ selector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['web', 'api'] }] } }),
    ],
    invalid: [
      workload({ selector: { matchExpressions: [{ key: 'app', operator: 'In' }] } }),
      workload({ selector: { matchExpressions: [{ key: 'app', operator: 'Exists', values: ['web'] }] } }),
    ],
  },
  {
    kind: 'Workload',
    message: 'selector does not match template.metadata.labels',
    valid: [
      workload({
        selector: {
          matchLabels: { app: 'web' },
          matchExpressions: [
            { key: 'app', operator: 'NotIn', values: ['api'] },
            { key: 'tier', operator: 'DoesNotExist' },
          ],
        },
      }),
      {
        ...workload(),
        selector: { matchExpressions: [{ key: 'x', operator: 'DoesNotExist' }] },
        template: { spec: { image: IMG } },
      },
    ],
    invalid: [
      workload({ selector: { matchLabels: { app: 'api' } } }),
      workload({ selector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['api'] }] } }),
      workload({ selector: { matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] } }),
      { ...workload(), template: { spec: { image: IMG } } },
    ],
  },
  {
    kind: 'Workload',
    message: 'maxUnavailable and maxSurge cannot both be zero',
    valid: [
      workload({ strategy: { rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } } }),
      workload({ strategy: { rollingUpdate: { maxSurge: '0%' } } }),
    ],
    invalid: [
      workload({ strategy: { rollingUpdate: { maxUnavailable: 0, maxSurge: 0 } } }),
      workload({ strategy: { rollingUpdate: { maxUnavailable: '00%', maxSurge: 0 } } }),
    ],
  },
  {
    kind: 'Workload',
    message: 'rollingUpdate may only be set when type is RollingUpdate',
    valid: [workload({ strategy: { type: 'Recreate' } })],
    invalid: [workload({ strategy: { type: 'Recreate', rollingUpdate: {} } })],
  },
  {
    kind: 'Workload',
    message: 'minReplicas must be less than or equal to maxReplicas',
    valid: [workload({ autoscale: { minReplicas: 3, maxReplicas: 3 } }, withCpuRequest)],
    invalid: [workload({ autoscale: { maxReplicas: 2, minReplicas: 3 } }, withCpuRequest)],
  },
  {
    kind: 'Workload',
    message: 'autoscale needs template.spec.resources.requests.cpu: utilization is relative to it',
    valid: [workload({ autoscale: { maxReplicas: 3 } }, withCpuRequest)],
    invalid: [
      workload({ autoscale: { maxReplicas: 3 } }),
      workload({ autoscale: { maxReplicas: 3 } }, { resources: { requests: { memory: '1Gi' } } }),
    ],
  },
  {
    kind: 'Image',
    message: 'refreshInterval has no meaning for an image pinned by digest',
    valid: [{ image: `nginx@${DIGEST}` }, { image: 'nginx', refreshInterval: '5m' }],
    invalid: [{ image: `nginx@${DIGEST}`, refreshInterval: '5m' }],
  },
  {
    kind: 'Image',
    message: 'a built image is pushed to a tag: spec.image must be repository:tag, not a digest',
    valid: [{ image: 'reg/app:1', build: { context: { files: { Dockerfile: 'FROM scratch' } } } }],
    invalid: [{ image: `reg/app@${DIGEST}`, build: { context: { files: { Dockerfile: 'FROM scratch' } } } }],
  },
  {
    kind: 'Image',
    message: 'refreshInterval has no meaning for a built image',
    valid: [{ image: 'reg/app:1', build: { context: { configMap: { name: 'src' } } } }],
    invalid: [
      { image: 'reg/app:1', refreshInterval: '5m', build: { context: { configMap: { name: 'src' } } } },
    ],
  },
  {
    kind: 'Image',
    message: 'context needs a configMap, files or binaryFiles',
    valid: [
      { image: 'reg/app:1', build: { context: { configMap: { name: 'src' } }, dockerfile: 'a/Df' } },
      { image: 'reg/app:1', build: { context: { binaryFiles: { Dockerfile: 'RlJPTQ==' } } } },
    ],
    invalid: [{ image: 'reg/app:1', build: { context: {} } }],
  },
  {
    kind: 'Image',
    message: 'a context file is given once: in files or in binaryFiles, not both',
    valid: [
      { image: 'reg/app:1', build: { context: { files: { Dockerfile: '' }, binaryFiles: { a: 'AA==' } } } },
    ],
    invalid: [{ image: 'reg/app:1', build: { context: { files: { a: '' }, binaryFiles: { a: 'AA==' } } } }],
  },
  {
    kind: 'Image',
    message: 'context file names must be relative paths without "." or ".." segments',
    valid: [
      {
        image: 'reg/app:1',
        build: { context: { files: { Dockerfile: '', 'app/.env': '', '..x/y': '', 'a/.b': '' } } },
      },
    ],
    invalid: [
      { image: 'reg/app:1', build: { context: { files: { '../x': '' } } } },
      { image: 'reg/app:1', build: { context: { files: { '/etc/passwd': '' } } } },
      { image: 'reg/app:1', build: { context: { files: { 'a/./b': '' } } } },
      { image: 'reg/app:1', build: { context: { files: { 'a//b': '' } } } },
      { image: 'reg/app:1', build: { context: { files: { 'a/..': '' } } } },
    ],
  },
  {
    kind: 'Image',
    message: 'refreshInterval must be at least 1m',
    valid: [
      { image: 'nginx', refreshInterval: '60s' },
      { image: 'nginx', refreshInterval: '1h0m30s' },
    ],
    invalid: [
      { image: 'nginx', refreshInterval: '59s' },
      { image: 'nginx', refreshInterval: '59999ms' },
    ],
  },
  {
    kind: 'Workload',
    message: 'exactly one of image or imageFrom must be set',
    valid: [workload(), workload({}, { image: undefined, imageFrom: { name: 'web' } })],
    invalid: [workload({}, { imageFrom: { name: 'web' } }), workload({}, { image: undefined })],
  },
  {
    kind: 'Migration',
    message: 'maxDowntimeSeconds must not exceed timeoutSeconds',
    valid: [{ container: 'c', maxDowntimeSeconds: 300 }],
    invalid: [
      { container: 'c', maxDowntimeSeconds: 301 },
      { container: 'c', timeoutSeconds: 10, maxDowntimeSeconds: 11 },
    ],
  },
];

interface CelEntry {
  kind: KindName;
  rule: string;
  message: string;
  messageExpression?: string;
}

/** Every x-kubernetes-validations entry of the generated CRDs. */
function celRules(): CelEntry[] {
  const out: CelEntry[] = [];
  const visit = (kind: KindName, node: JSONSchemaProps) => {
    for (const r of (node['x-kubernetes-validations'] ?? []) as Omit<CelEntry, 'kind'>[])
      out.push({ kind, ...r });
    for (const child of Object.values((node.properties ?? {}) as Record<string, JSONSchemaProps>))
      visit(kind, child);
    if (node.items) visit(kind, node.items as JSONSchemaProps);
    if (typeof node.additionalProperties === 'object')
      visit(kind, node.additionalProperties as JSONSchemaProps);
  };
  for (const kind of Object.keys(kinds) as KindName[]) {
    const crd = crdFor(kinds[kind]) as {
      spec: { versions: { schema: { openAPIV3Schema: JSONSchemaProps } }[] };
    };
    visit(kind, crd.spec.versions[0]!.schema.openAPIV3Schema);
  }
  return out;
}

describe('CEL rules and their zod twins', () => {
  it('every CEL rule without oldSelf has cases below', () => {
    const uncovered = celRules()
      .filter((r) => !r.rule.includes('oldSelf'))
      .filter((r) => !ruleCases.some((c) => r.message.startsWith(c.message)));
    assert.deepEqual(uncovered, []);
  });

  for (const c of ruleCases) {
    it(`${c.kind}: ${c.message}`, () => {
      for (const spec of c.valid) {
        const r = parseSpec(c.kind, spec);
        assert.ok(r.ok, `refused ${JSON.stringify(spec)}: ${r.ok ? '' : r.error}`);
      }
      for (const spec of c.invalid) {
        const r = parseSpec(c.kind, spec);
        assert.ok(!r.ok, `accepted ${JSON.stringify(spec)}`);
        assert.ok(r.error.includes(c.message), `${JSON.stringify(spec)}: ${r.error}`);
      }
    });
  }
});

describe('transition rules (validateSpecUpdate)', () => {
  const spec = <K extends KindName>(kind: K, value: object) => {
    const r = parseSpec(kind, value);
    assert.ok(r.ok);
    return r.value;
  };

  it('Container: the published ports are fixed once bound, the others are not', () => {
    const ports = (...extra: object[]) => [{ containerPort: 80, hostPort: 8080 }, ...extra];
    const unbound = spec('Container', container({ ports: ports() }));
    const bound = spec('Container', container({ nodeName: 'host-1', ports: ports() }));
    const edit = (p: object[]) => spec('Container', container({ nodeName: 'host-1', ports: p }));
    assert.deepEqual(validateSpecUpdate('Container', edit(ports({ containerPort: 9090 })), bound), []);
    assert.deepEqual(
      validateSpecUpdate('Container', edit([{ containerPort: 80, hostPort: 8081 }]), unbound),
      [],
    );
    for (const changed of [
      [{ containerPort: 80, hostPort: 8081 }],
      [{ containerPort: 80, hostPort: 8080, hostIP: '192.0.2.1' }],
      [{ containerPort: 80, hostPort: 8080, protocol: 'UDP' }],
      ports({ containerPort: 9090, hostPort: 9090 }),
      [{ containerPort: 80 }],
    ]) {
      assert.deepEqual(validateSpecUpdate('Container', edit(changed), bound), [
        'spec: hostPort and hostIP cannot change once the container is bound to a host (its Host published ' +
          'them when it started); create a new Container instead',
      ]);
    }
  });

  it('Container: nodeName may be set once, never changed or cleared', () => {
    const unbound = spec('Container', container());
    const bound = spec('Container', container({ nodeName: 'host-1' }));
    const moved = spec('Container', container({ nodeName: 'host-2' }));
    assert.deepEqual(validateSpecUpdate('Container', bound, unbound), []);
    assert.deepEqual(
      validateSpecUpdate(
        'Container',
        spec('Container', container({ nodeName: 'host-1', args: ['x'] })),
        bound,
      ),
      [],
    );
    assert.match(validateSpecUpdate('Container', moved, bound)[0]!, /nodeName cannot be changed/);
    assert.match(validateSpecUpdate('Container', unbound, bound)[0]!, /nodeName cannot be changed/);
  });

  it('Workload: the selector is immutable, the rest is not', () => {
    const a = spec('Workload', workload());
    assert.deepEqual(validateSpecUpdate('Workload', spec('Workload', workload({ replicas: 5 })), a), []);
    const b = spec(
      'Workload',
      workload({
        selector: { matchLabels: { app: 'web' }, matchExpressions: [{ key: 'x', operator: 'DoesNotExist' }] },
      }),
    );
    assert.deepEqual(validateSpecUpdate('Workload', b, a), ['spec: selector is immutable']);
  });

  it('Migration: the whole spec is immutable', () => {
    const a = spec('Migration', { container: 'c' });
    assert.deepEqual(
      validateSpecUpdate('Migration', spec('Migration', { container: 'c', mode: 'Checkpoint' }), a),
      [],
    );
    assert.match(
      validateSpecUpdate('Migration', spec('Migration', { container: 'c', timeoutSeconds: 60 }), a)[0]!,
      /immutable/,
    );
  });

  it('Image and Host have none', () => {
    const img = spec('Image', { image: 'a' });
    assert.deepEqual(validateSpecUpdate('Image', spec('Image', { image: 'b' }), img), []);
  });
});

describe('defaults', () => {
  it('fills a minimal Workload the way the CRD defaults it', () => {
    const r = parseSpec('Workload', workload());
    assert.ok(r.ok);
    assert.deepEqual(r.value, {
      replicas: 1,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: { image: IMG, restartPolicy: 'Always', terminationGracePeriodSeconds: 30 },
      },
      placement: { maxSkew: 1 },
      strategy: { type: 'RollingUpdate' },
      migrationPolicy: { mode: 'Checkpoint', fallback: 'Restart', onDrain: true },
      progressDeadlineSeconds: 600,
    });
  });

  it('defaults nested objects only when they are present', () => {
    const r = parseSpec(
      'Workload',
      workload({ strategy: { rollingUpdate: { maxSurge: 2 } } }, { healthCheck: { httpGet: { port: 80 } } }),
    );
    assert.ok(r.ok);
    assert.deepEqual(r.value.strategy, {
      type: 'RollingUpdate',
      rollingUpdate: { maxSurge: 2, maxUnavailable: '25%' },
    });
    assert.deepEqual(r.value.template.spec.healthCheck, {
      httpGet: { port: 80, path: '/', scheme: 'HTTP' },
      intervalSeconds: 30,
      timeoutSeconds: 30,
      retries: 3,
      startPeriodSeconds: 0,
    });
  });

  it('defaults Host spec as a whole when it is omitted', () => {
    const r = parseObject('Host', {
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Host',
      metadata: { name: 'h' },
    });
    assert.ok(r.ok);
    assert.deepEqual(r.value.spec, { unschedulable: false, drain: false, maxConcurrentMigrations: 2 });
  });

  it('defaults Migration and Image', () => {
    const m = parseSpec('Migration', { container: 'c' });
    assert.ok(m.ok);
    assert.deepEqual(m.value, { container: 'c', mode: 'Checkpoint', fallback: 'None', timeoutSeconds: 300 });
    const i = parseSpec('Image', { image: 'nginx' });
    assert.ok(i.ok);
    assert.deepEqual(i.value, { image: 'nginx', pullPolicy: 'IfNotPresent', keep: false });
  });
});

describe('parsing helpers', () => {
  it('reports every bad path in one readable string instead of throwing', () => {
    const r = parseObject('Workload', {
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Workload',
      metadata: { name: 'w', uid: 'u', managedFields: [] },
      spec: workload({ replicas: -1 }, { image: 'Bad Image', ports: [{ containerPort: 0 }] }),
    });
    assert.ok(!r.ok);
    assert.match(r.error, /spec\.replicas: Too small/);
    assert.match(r.error, /spec\.template\.spec\.image: /);
    assert.match(r.error, /spec\.template\.spec\.ports\.0\.containerPort: Too small/);
  });

  it('refuses the wrong kind or apiVersion', () => {
    assert.ok(!parseObject('Host', { apiVersion: 'gantry.dev/v1', kind: 'Host', metadata: {} }).ok);
    assert.ok(!parseObject('Host', { apiVersion: 'gantry.dev/v1alpha1', kind: 'Image', metadata: {} }).ok);
  });

  it('keeps unknown metadata and drops unknown spec fields, as the apiserver prunes them', () => {
    const r = parseObject('Image', {
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Image',
      metadata: { name: 'i', ownerReferences: [{ uid: 'x' }] },
      spec: { image: 'nginx', unknown: 1 },
    });
    assert.ok(r.ok);
    assert.deepEqual(r.value.metadata.ownerReferences, [{ uid: 'x' }]);
    assert.equal('unknown' in r.value.spec, false);
  });

  it('validates status, including metav1.Condition', () => {
    const condition = {
      type: 'Ready',
      status: 'True',
      lastTransitionTime: '2025-01-31T12:00:00Z',
      reason: 'Running',
      message: '',
    };
    assert.ok(parseStatus('Container', { phase: 'Running', conditions: [condition] }).ok);
    const dup = parseStatus('Container', { conditions: [condition, { ...condition, status: 'False' }] });
    assert.ok(!dup.ok && /Duplicate value: type=Ready/.test(dup.error));
    assert.ok(!parseStatus('Container', { conditions: [{ ...condition, reason: 'not camel' }] }).ok);
    assert.ok(!parseStatus('Container', { conditions: [{ ...condition, status: 'Yes' }] }).ok);
    assert.ok(
      !parseStatus('Container', { conditions: [{ ...condition, lastTransitionTime: 'yesterday' }] }).ok,
    );
    assert.ok(
      !parseStatus('Image', {
        failures: Array.from({ length: 11 }, (_, i) => ({ host: `h${i}`, reason: 'R', message: '' })),
      }).ok,
    );
  });

  it('checks date-times as the apiserver does', () => {
    for (const t of [
      '2025-01-31T12:00:00Z',
      '2025-01-31t12:00:00.123z',
      '2024-02-29T23:59:59+01:00',
      '0025-01-31T12:00:00Z', // years below 100 are years, not 1900 + year (found by the property test)
    ])
      assert.ok(isDateTime(t), t);
    for (const t of [
      '2025-02-29T00:00:00Z',
      '2025-01-31T24:00:00Z',
      '2025-01-31 12:00:00Z',
      '2025-01-31T12:00Z',
      '',
    ]) {
      assert.ok(!isDateTime(t), t);
    }
  });
});

describe('label selectors', () => {
  const sel: LabelSelector = {
    matchLabels: { app: 'web', tier: 'front' },
    matchExpressions: [
      { key: 'env', operator: 'In', values: ['prod', 'canary'] },
      { key: 'zone', operator: 'NotIn', values: ['b'] },
      { key: 'gpu', operator: 'DoesNotExist' },
      { key: 'team', operator: 'Exists' },
    ],
  };

  it('match with metav1.LabelSelector semantics', () => {
    const labels = { app: 'web', tier: 'front', env: 'prod', team: 'x' };
    assert.ok(selectorMatches(sel, labels));
    assert.ok(selectorMatches(sel, { ...labels, zone: 'a' }));
    assert.ok(!selectorMatches(sel, { ...labels, zone: 'b' }));
    assert.ok(!selectorMatches(sel, { ...labels, gpu: '' }));
    assert.ok(!selectorMatches(sel, { ...labels, env: 'dev' }));
    assert.ok(!selectorMatches(sel, { app: 'web', tier: 'front', env: 'prod' }));
  });

  it('format as kubectl -l takes them (the /scale selector)', () => {
    assert.equal(
      formatLabelSelector(sel),
      'app=web,env in (canary,prod),!gpu,team,tier=front,zone notin (b)',
    );
  });
});

const examplesDir = fileURLToPath(new URL('../../../examples/', import.meta.url));
const fixturesDir = fileURLToPath(new URL('../../fixtures/invalid/', import.meta.url));

function loadManifest(file: string): { kind: KindName; object: unknown } {
  const [object] = loadAllYaml(fs.readFileSync(file, 'utf8')) as { kind: KindName }[];
  return { kind: object!.kind, object: JSON.parse(JSON.stringify(object)) };
}

describe('examples/', () => {
  // The reference examples, and the quickstart's (what `npm start` applies).
  const files = ['', 'quickstart/'].flatMap((dir) =>
    fs
      .readdirSync(`${examplesDir}${dir}`)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => `${dir}${f}`),
  );

  it('has one commented example per kind', () => {
    assert.deepEqual(
      files.map((f) => f.replace('quickstart/', '')).sort(),
      Object.keys(kinds)
        .map((k) => `${k.toLowerCase()}.yaml`)
        .sort(),
    );
    for (const f of files) assert.match(fs.readFileSync(`${examplesDir}${f}`, 'utf8'), /^# /);
  });

  for (const f of files) {
    it(`${f} is valid`, () => {
      const { kind, object } = loadManifest(`${examplesDir}${f}`);
      const r = parseObject(kind, object);
      assert.ok(r.ok, r.ok ? '' : r.error);
    });
  }
});

describe('test/fixtures/invalid/', () => {
  const files = fs.readdirSync(fixturesDir).filter((f) => f.endsWith('.yaml'));
  const celMessages = celRules().map((r) => r.message);
  const dynamicPrefixes = celRules()
    .filter((r) => r.messageExpression)
    .map((r) => r.message.slice(0, r.message.indexOf(':') + 1));

  it('has at least 35 fixtures, each starting with # expect:', () => {
    assert.ok(files.length >= 35, `${files.length} fixtures`);
    for (const f of files) assert.match(fs.readFileSync(`${fixturesDir}${f}`, 'utf8'), /^# expect: \S.*\n/);
  });

  for (const f of files) {
    it(`${f} is refused by zod too`, () => {
      const text = fs.readFileSync(`${fixturesDir}${f}`, 'utf8');
      const expect = /^# expect: (.*)$/m.exec(text)![1]!;
      const { kind, object } = loadManifest(`${fixturesDir}${f}`);
      const r = parseObject(kind, object);
      if (/^# zod: accepts/m.test(text)) {
        assert.ok(r.ok, 'marked as accepted by zod');
        return;
      }
      assert.ok(!r.ok, 'zod accepted it');
      // A CEL rule's message is the same text on both sides, the messageExpression's included
      // (such a message begins as its rule's fallback message does, up to the first colon).
      const celMessage =
        celMessages.some((m) => m.includes(expect)) || dynamicPrefixes.some((p) => expect.startsWith(p));
      if (celMessage) assert.ok(r.error.includes(expect), r.error);
    });
  }
});
