// Our runtime.proto is a hand-kept subset of the CRI api.proto: this test keeps it honest.
// Every message, field, enum and RPC we declare must match upstream's exactly (names, numbers,
// types, repeated/map labels, streaming); leaving upstream fields out is fine, enums must be complete
// (a missing value would decode as a bare number).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import protobuf from 'protobufjs';

// The cri-api release matching the Kubernetes minor Gantry targets (client-go v0.34).
const CRI_API_MODULE = 'k8s.io/cri-api@v0.34.4';
const OUR_PROTO = new URL('../../../src/cri/runtime.proto', import.meta.url);

/** Reads upstream api.proto from the Go module cache, downloading the module there if absent. */
function upstreamApiProto(): string {
  // A scratch directory, so that no go.mod around the checkout takes part.
  const dir = mkdtempSync(join(tmpdir(), 'cri-api-'));
  const go = spawnSync('go', ['mod', 'download', '-json', CRI_API_MODULE], {
    cwd: dir,
    env: { ...process.env, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  rmSync(dir, { recursive: true, force: true });
  let info: { Dir?: string; Error?: string } = {};
  try {
    info = JSON.parse(go.stdout ?? '') as typeof info;
  } catch {
    // No JSON: go is missing or crashed; go.error and stderr say why.
  }
  if (go.status !== 0 || !info.Dir) {
    const why = info.Error ?? go.error?.message ?? (go.stderr.trim() || `exit status ${go.status}`);
    throw new Error(`cannot get ${CRI_API_MODULE} with \`go mod download\`: ${why}`);
  }
  return readFileSync(join(info.Dir, 'pkg/apis/runtime/v1/api.proto'), 'utf8');
}

function parse(source: string): protobuf.Root {
  const root = protobuf.parse(source, { keepCase: true }).root;
  root.resolveAll();
  return root;
}

/** All messages, enums and services below `ns`, by full name (".runtime.v1.Foo"). */
function declarations(ns: protobuf.NamespaceBase, into = new Map<string, protobuf.ReflectionObject>()) {
  for (const obj of ns.nestedArray) {
    into.set(obj.fullName, obj);
    if (obj instanceof protobuf.Namespace) declarations(obj, into);
  }
  return into;
}

function typeName(name: string, resolved: protobuf.ReflectionObject | null): string {
  return resolved ? resolved.fullName : name;
}

/** A field's wire-relevant shape, e.g. "#7 repeated .runtime.v1.Mount" or "#6 map<string, string>". */
function fieldShape(f: protobuf.Field): string {
  const type = typeName(f.type, f.resolvedType);
  if (f instanceof protobuf.MapField) return `#${f.id} map<${f.keyType}, ${type}>`;
  return `#${f.id} ${f.repeated ? 'repeated ' : ''}${type}`;
}

function kind(obj: protobuf.ReflectionObject): string {
  if (obj instanceof protobuf.Type) return 'message';
  if (obj instanceof protobuf.Enum) return 'enum';
  if (obj instanceof protobuf.Service) return 'service';
  return 'namespace';
}

/** Differences between our declarations and upstream's, one readable line each. */
function protoDrift(ours: protobuf.Root, upstream: protobuf.Root): string[] {
  const problems: string[] = [];
  const theirs = declarations(upstream);
  const mine = declarations(ours);
  if (mine.size === 0) problems.push('our proto declares nothing');
  for (const [name, obj] of mine) {
    const up = theirs.get(name);
    if (!up) {
      problems.push(`${kind(obj)} ${name}: not in upstream`);
      continue;
    }
    if (kind(up) !== kind(obj)) {
      problems.push(`${name}: ours is a ${kind(obj)}, upstream's a ${kind(up)}`);
      continue;
    }
    if (obj instanceof protobuf.Type && up instanceof protobuf.Type) {
      for (const f of obj.fieldsArray) {
        const uf = up.fields[f.name];
        if (!uf) {
          const byId = up.fieldsArray.find((x) => x.id === f.id);
          problems.push(
            `message ${name} field ${f.name}: not in upstream` +
              (byId ? ` (upstream #${f.id} is ${byId.name})` : ''),
          );
          continue;
        }
        if (fieldShape(f) !== fieldShape(uf)) {
          problems.push(`message ${name} field ${f.name}: ours ${fieldShape(f)}, upstream ${fieldShape(uf)}`);
        }
        if (f.partOf?.name !== uf.partOf?.name) {
          problems.push(
            `message ${name} field ${f.name}: oneof ours ${f.partOf?.name}, upstream ${uf.partOf?.name}`,
          );
        }
      }
    } else if (obj instanceof protobuf.Enum && up instanceof protobuf.Enum) {
      for (const v of new Set([...Object.keys(obj.values), ...Object.keys(up.values)])) {
        if (obj.values[v] !== up.values[v]) {
          problems.push(
            `enum ${name} value ${v}: ours ${obj.values[v] ?? 'missing'}, upstream ${up.values[v] ?? 'missing'}`,
          );
        }
      }
    } else if (obj instanceof protobuf.Service && up instanceof protobuf.Service) {
      for (const m of obj.methodsArray) {
        const um = up.methods[m.name];
        const sig = (x: protobuf.Method) =>
          `(${x.requestStream ? 'stream ' : ''}${typeName(x.requestType, x.resolvedRequestType)}) returns ` +
          `(${x.responseStream ? 'stream ' : ''}${typeName(x.responseType, x.resolvedResponseType)})`;
        if (!um) problems.push(`rpc ${name}.${m.name}: not in upstream`);
        else if (sig(m) !== sig(um))
          problems.push(`rpc ${name}.${m.name}: ours ${sig(m)}, upstream ${sig(um)}`);
      }
    }
  }
  return problems;
}

const ourSource = readFileSync(OUR_PROTO, 'utf8');
let upstream: protobuf.Root | undefined;
const upstreamRoot = () => (upstream ??= parse(upstreamApiProto()));

test(`runtime.proto matches ${CRI_API_MODULE} api.proto`, () => {
  const problems = protoDrift(parse(ourSource), upstreamRoot());
  assert.equal(problems.length, 0, `runtime.proto drifted from upstream:\n  ${problems.join('\n  ')}`);
});

test('the drift check reports renumbered fields, changed types, enums and RPC signatures', () => {
  const edits: [string, string][] = [
    ['uint64 size = 4;', 'uint64 size = 9;'],
    ['int32 exit_code = 3;', 'int64 exit_code = 3;'],
    ['repeated string repo_tags = 2;', 'string repo_tags = 2;'],
    ['CONTAINER_UNKNOWN = 3;', 'CONTAINER_UNKNOWN = 3;\n  CONTAINER_PAUSED = 4;'],
    ['returns (stream ContainerEventResponse)', 'returns (ContainerEventResponse)'],
  ];
  let drifted = ourSource;
  for (const [from, to] of edits) {
    assert.ok(drifted.includes(from), `fixture text not found in runtime.proto: ${from}`);
    drifted = drifted.replace(from, to);
  }
  assert.deepEqual(
    protoDrift(parse(drifted), upstreamRoot()).sort(),
    [
      'message .runtime.v1.Image field repo_tags: ours #2 string, upstream #2 repeated string',
      'message .runtime.v1.Image field size: ours #9 uint64, upstream #4 uint64',
      'message .runtime.v1.ExecSyncResponse field exit_code: ours #3 int64, upstream #3 int32',
      'enum .runtime.v1.ContainerState value CONTAINER_PAUSED: ours 4, upstream missing',
      'rpc .runtime.v1.RuntimeService.GetContainerEvents: ' +
        'ours (.runtime.v1.GetEventsRequest) returns (.runtime.v1.ContainerEventResponse), ' +
        'upstream (.runtime.v1.GetEventsRequest) returns (stream .runtime.v1.ContainerEventResponse)',
    ].sort(),
  );
});
