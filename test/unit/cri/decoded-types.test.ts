// The generated `Foo__Output` types must describe exactly what grpc-js decodes with the client's
// loader options: messages are encoded here, decoded through runtime.proto loaded as the client
// loads it (the deserializers grpc-js calls), and each decoded object is checked field by field
// against its interface in src/cri/generated/ (names, required or optional, and the value's type).
// A generator run with other flags than the loader's options (keepCase, longs, enums, bytes,
// defaults) fails here, and so does a loader changed without regenerating.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import * as protoLoader from '@grpc/proto-loader';
import { GENERATED_DIR } from '../../../src/cri/codegen.js';
import { LOADER_OPTIONS, SCHEMA_FILE } from '../../../src/cri/schema.js';
import { loadSchema } from '../../../src/cri/wire.js';

// ---- The generated declarations, read from their source

type Decl =
  | { kind: 'enum'; values: unknown[] }
  | { kind: 'message'; fields: Map<string, { optional: boolean; type: string }> };
const decls = new Map<string, Decl>();

/**
 * runtime.v1.<name>'s generated declaration: an enum's values, or the fields of <name>__Output. A
 * nested enum (Parent_Nested) is declared in its parent's file, as _runtime_v1_Parent_Nested.
 */
function decl(name: string): Decl {
  let d = decls.get(name);
  if (d) return d;
  const [file, nested] = name.split('_');
  const source = fs.readFileSync(path.join(GENERATED_DIR, 'runtime/v1', `${file}.ts`), 'utf8');
  const constName = nested ? `_runtime_v1_${name}` : name;
  const enumBody = source.match(
    new RegExp(`^export const ${constName} = \\{\\n([\\s\\S]*?)\\n\\} as const;`, 'm'),
  )?.[1];
  if (enumBody !== undefined) {
    const values = [...enumBody.matchAll(/^\s+\w+: (.+),$/gm)].map((m) =>
      JSON.parse(m[1]!.replace(/'/g, '"')),
    );
    d = { kind: 'enum', values };
  } else {
    const body = source.match(
      new RegExp(`^export interface ${name}__Output \\{\\n([\\s\\S]*?)^\\}`, 'm'),
    )?.[1];
    assert.ok(body !== undefined, `no ${name}__Output in src/cri/generated/runtime/v1/${name}.ts`);
    const fields = new Map<string, { optional: boolean; type: string }>();
    for (const m of body.matchAll(/^\s+'(\w+)'(\??): (.+);$/gm)) {
      fields.set(m[1]!, { optional: m[2] === '?', type: m[3]! });
    }
    d = { kind: 'message', fields };
  }
  decls.set(name, d);
  return d;
}

// ---- Checking a decoded value against them

const isLong = (v: unknown) =>
  typeof v === 'object' && v !== null && '__isLong__' in v && v.__isLong__ === true;
const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v) && !isLong(v);
const show = (v: unknown) =>
  isLong(v) ? `Long ${String(v)}` : Buffer.isBuffer(v) ? 'a Buffer' : JSON.stringify(v);

/**
 * Problems of `value` as a runtime.v1.<name> (__Output for messages). With `exact`, a field the
 * type declares optional but the decoder set anyway is a problem too (the type is looser than the
 * object); that is meant for messages decoded from nothing, whose fields are all absent on the wire.
 */
function conform(value: unknown, name: string, at: string, problems: string[], exact = false): void {
  const d = decl(name);
  if (d.kind === 'enum') {
    if (!d.values.includes(value)) problems.push(`${at}: ${show(value)} is not one of ${name}'s ${d.values}`);
    return;
  }
  if (!isPlainObject(value)) {
    problems.push(`${at}: ${show(value)} is not ${name}__Output`);
    return;
  }
  for (const key of Object.keys(value)) {
    if (!d.fields.has(key)) problems.push(`${at}.${key}: not a field of ${name}__Output`);
  }
  for (const [key, field] of d.fields) {
    if (!(key in value)) {
      if (!field.optional) problems.push(`${at}.${key}: absent, but required in ${name}__Output`);
      continue;
    }
    if (exact && field.optional)
      problems.push(`${at}.${key}: always decoded, but optional in ${name}__Output`);
    checkType(value[key], field.type, `${at}.${key}`, problems);
  }
}

/** Problems of `v` as a field of the generated type `type`, e.g. "(_runtime_v1_Mount__Output)[]". */
function checkType(v: unknown, type: string, at: string, problems: string[]): void {
  const wrong = () => problems.push(`${at}: ${show(v)} is not ${type}`);
  const list = type.match(/^\((.*)\)\[\]$/);
  if (list) {
    if (!Array.isArray(v)) return void wrong();
    return v.forEach((x, i) => checkType(x, `(${list[1]})`, `${at}[${i}]`, problems));
  }
  const nullable = type.match(/^\((\w+) \| null\)$/);
  if (nullable) return v === null ? undefined : checkType(v, `(${nullable[1]})`, at, problems);
  const named = type.match(/^\(_runtime_v1_(\w+)__Output\)$/);
  if (named) return conform(v, named[1]!, at, problems);
  const ok: Record<string, (v: unknown) => boolean> = {
    '(string)': (x) => typeof x === 'string',
    '(number)': (x) => typeof x === 'number',
    '(boolean)': (x) => typeof x === 'boolean',
    '(Long)': isLong,
    '(Buffer)': (x) => Buffer.isBuffer(x),
    '({[key: string]: string})': (x) =>
      isPlainObject(x) && Object.values(x).every((y) => typeof y === 'string'),
  };
  const check = ok[type];
  if (!check) problems.push(`${at}: this test does not know the generated type ${type}`);
  else if (!check(v)) wrong();
}

// ---- Messages as a runtime sends them

/** [RPC, its response message, a response] with every kind of field, some sub-messages left out. */
const samples: [string, string, object][] = [
  [
    'ListContainers',
    'ListContainersResponse',
    {
      containers: [
        {
          id: 'c1',
          podSandboxId: 's1',
          metadata: { name: 'app', attempt: 2 },
          image: { image: 'docker.io/library/busybox:1.36', annotations: { a: 'b' } },
          imageRef: 'sha256:1',
          state: 'CONTAINER_RUNNING',
          createdAt: '1700000000123456789',
          labels: { 'gantry.dev/uid': 'u-1' },
        },
        { id: 'c2' },
      ],
    },
  ],
  [
    'ContainerStatus',
    'ContainerStatusResponse',
    {
      status: {
        id: 'c1',
        state: 'CONTAINER_EXITED',
        startedAt: '1700000000000000000',
        finishedAt: '1700000001000000000',
        exitCode: 137,
        reason: 'OOMKilled',
        mounts: [
          {
            containerPath: '/data',
            hostPath: '/srv',
            readonly: true,
            propagation: 'PROPAGATION_BIDIRECTIONAL',
          },
        ],
        resources: { linux: { cpuQuota: '-1', memoryLimitInBytes: '1099511627776' } },
      },
      info: { pid: '42' },
    },
  ],
  ['ExecSync', 'ExecSyncResponse', { stdout: Buffer.from('hello\n'), stderr: Buffer.alloc(0), exitCode: 3 }],
  [
    'ListImages',
    'ListImagesResponse',
    {
      images: [
        {
          id: 'sha256:2',
          repoTags: ['busybox:1.36'],
          size: '9007199254740993',
          uid: { value: '0' },
          pinned: true,
        },
      ],
    },
  ],
  [
    'ImageFsInfo',
    'ImageFsInfoResponse',
    {
      imageFilesystems: [
        { timestamp: '1', fsId: { mountpoint: '/var/lib' }, usedBytes: { value: '18446744073709551615' } },
      ],
    },
  ],
  [
    'ListContainerStats',
    'ListContainerStatsResponse',
    {
      stats: [
        {
          attributes: { id: 'c1', metadata: { name: 'app' } },
          cpu: { timestamp: '5', usageCoreNanoSeconds: { value: '123' } },
          memory: { timestamp: '5', workingSetBytes: { value: '4096' } },
        },
      ],
    },
  ],
  [
    'GetContainerEvents',
    'ContainerEventResponse',
    {
      containerId: 'c1',
      containerEventType: 'CONTAINER_STOPPED_EVENT',
      createdAt: '1700000000000000001',
      podSandboxStatus: {
        id: 's1',
        state: 'SANDBOX_NOTREADY',
        network: { ip: '10.0.0.2', additionalIps: [{ ip: 'fd00::2' }] },
        metadata: { name: 'web', uid: 'u-1', namespace: 'shop', attempt: 1 },
      },
      containersStatuses: [{ id: 'c1', state: 'CONTAINER_EXITED' }],
    },
  ],
  ['Status', 'StatusResponse', { status: { conditions: [{ type: 'RuntimeReady', status: true }] } }],
];

function methods(
  def: protoLoader.PackageDefinition,
): Record<string, protoLoader.MethodDefinition<object, object>> {
  return {
    ...(def['runtime.v1.RuntimeService'] as protoLoader.ServiceDefinition),
    ...(def['runtime.v1.ImageService'] as protoLoader.ServiceDefinition),
  };
}

/** The problems of every sample, decoded by `def`, as its generated response type. */
function sampleProblems(def: protoLoader.PackageDefinition): string[] {
  const problems: string[] = [];
  const rpcs = methods(def);
  for (const [rpc, message, sample] of samples) {
    const md = rpcs[rpc];
    assert.ok(md, `no RPC ${rpc}`);
    conform(md.responseDeserialize(md.responseSerialize(sample)), message, message, problems);
  }
  return problems;
}

describe('the generated types describe what grpc-js decodes', () => {
  const def = loadSchema();

  it('for responses with every kind of field', () => {
    const problems = sampleProblems(def);
    assert.deepEqual(
      problems,
      [],
      `decoded responses do not match src/cri/generated/:\n  ${problems.join('\n  ')}`,
    );
  });

  it('for every message decoded from nothing (all fields absent on the wire)', () => {
    const problems: string[] = [];
    let messages = 0;
    for (const [full, type] of Object.entries(def)) {
      if (!('format' in type) || type.format !== 'Protocol Buffer 3 DescriptorProto') continue;
      const name = full.replace(/^runtime\.v1\./, '');
      conform(type.deserialize(Buffer.alloc(0)), name, name, problems, true);
      messages++;
    }
    assert.ok(messages > 50, `the schema's messages are all checked (${messages})`);
    assert.deepEqual(
      problems,
      [],
      `decoded messages do not match src/cri/generated/:\n  ${problems.join('\n  ')}`,
    );
  });

  it('as grpc-js decodes them: 64-bit integers are Longs, enums names, absent sub-messages null', () => {
    const md = methods(def)['ListContainers']!;
    const decoded = md.responseDeserialize(md.responseSerialize(samples[0]![2])) as {
      containers: { createdAt: object; state: unknown; metadata: unknown; image: unknown }[];
    };
    const [c1, c2] = decoded.containers;
    assert.ok(isLong(c1!.createdAt) && String(c1!.createdAt) === '1700000000123456789');
    assert.equal(c1!.state, 'CONTAINER_RUNNING');
    assert.equal(c2!.metadata, null);
    assert.equal(c2!.image, null);
  });

  // The checks above must be able to fail: a loader with any other conversion option decodes
  // objects the generated types do not describe.
  const variants: [string, protoLoader.Options][] = [
    ['keepCase', { ...LOADER_OPTIONS, keepCase: true }],
    ['longs: String', { ...LOADER_OPTIONS, longs: String }],
    ['longs: Number', { ...LOADER_OPTIONS, longs: Number }],
    ['enums as numbers', { keepCase: false, defaults: true }],
    ['bytes: String', { ...LOADER_OPTIONS, bytes: String }],
    ['no defaults', { keepCase: false, enums: String }],
  ];
  for (const [what, options] of variants) {
    it(`not for a loader with ${what}`, () => {
      const problems = sampleProblems(protoLoader.loadSync(SCHEMA_FILE, options));
      assert.notDeepEqual(problems, [], `a loader with ${what} should not match the generated types`);
    });
  }
});
