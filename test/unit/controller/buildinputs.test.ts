// The inputs of an Image's build: equal inputs hash equally whatever their order, any change of
// the context, the options or the target changes the Build's name, names stay valid object names,
// and the builder Host is a Ready, schedulable one the selector picks.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSpec, type Build, type Host, type ImageSpecInput } from '../../../src/api/v1alpha1/index.js';
import {
  buildInputs,
  buildName,
  buildsToPrune,
  inputsHash,
  pickBuilder,
} from '../../../src/controller/buildinputs.js';

function spec(input: ImageSpecInput) {
  const r = parseSpec('Image', input);
  assert.ok(r.ok, r.ok ? '' : r.error);
  return r.value;
}

const base: ImageSpecInput = {
  image: 'reg/app:1',
  build: { context: { configMap: { name: 'src' } }, buildArgs: { A: '1', B: '2' } },
};
const hashOf = (input: ImageSpecInput, data: Record<string, string> = { Dockerfile: 'FROM x' }) =>
  inputsHash(buildInputs(spec(input), { data }));

describe('build inputs', () => {
  it('hash the same whatever the order of keys', () => {
    const reordered = { ...base, build: { ...base.build!, buildArgs: { B: '2', A: '1' } } };
    assert.equal(hashOf(base), hashOf(reordered));
    assert.equal(
      hashOf(base, { a: '1', Dockerfile: 'FROM x' }),
      hashOf(base, { Dockerfile: 'FROM x', a: '1' }),
    );
  });

  it('hash differently for another file, build arg, target, tag or inline file', () => {
    const hashes = [
      hashOf(base),
      hashOf(base, { Dockerfile: 'FROM y' }),
      hashOf({ ...base, build: { ...base.build!, buildArgs: { A: '1', B: '3' } } }),
      hashOf({ ...base, build: { ...base.build!, target: 'final' } }),
      hashOf({ ...base, image: 'reg/app:2' }),
      hashOf({
        ...base,
        build: { ...base.build!, context: { configMap: { name: 'src' }, files: { x: '' } } },
      }),
    ];
    assert.equal(new Set(hashes).size, hashes.length);
  });

  it("let inline files win over the ConfigMap's, binary ones included", () => {
    const inputs = buildInputs(
      spec({
        image: 'reg/app:1',
        build: { context: { configMap: { name: 'src' }, files: { Dockerfile: 'B', bin: 'C' } } },
      }),
      { data: { Dockerfile: 'A' }, binaryData: { bin: 'AAEC', other: 'AQ==' } },
    );
    assert.deepEqual(inputs.context, {
      files: { Dockerfile: 'B', bin: 'C' },
      binaryFiles: { other: 'AQ==' },
    });
  });

  it("let inline binary files win over the ConfigMap's text and binary files of the same name", () => {
    const inputs = buildInputs(
      spec({
        image: 'reg/app:1',
        build: {
          context: {
            configMap: { name: 'src' },
            files: { Dockerfile: 'B' },
            binaryFiles: { 'lib/a.so': 'AAE=', logo: 'AgM=' },
          },
        },
      }),
      { data: { Dockerfile: 'A', logo: 'text' }, binaryData: { 'other.bin': 'AQ==' } },
    );
    assert.deepEqual(inputs.context, {
      files: { Dockerfile: 'B' },
      binaryFiles: { 'other.bin': 'AQ==', 'lib/a.so': 'AAE=', logo: 'AgM=' },
    });
  });

  it('name a Build <image>-<hash> within 253 characters', () => {
    assert.equal(buildName('app', '0123456789'), 'app-0123456789');
    const long = buildName(`${'a'.repeat(241)}-b`, '0123456789');
    assert.equal(long.length, 252);
    assert.match(long, /^a+-0123456789$/);
  });
});

describe('pickBuilder', () => {
  const host = (name: string, labels: Record<string, string>, ready = true, unschedulable = false): Host =>
    ({
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Host',
      metadata: { name, labels },
      spec: { unschedulable },
      status: {
        conditions: [
          {
            type: 'Ready',
            status: ready ? 'True' : 'False',
            reason: 'R',
            message: '',
            lastTransitionTime: '2026-01-01T00:00:00Z',
          },
        ],
      },
    }) as Host;
  const builder = { 'gantry.dev/builder': 'true' };

  it('picks a Ready, schedulable builder, the same one for the same Build', () => {
    const hosts = [
      host('a', {}),
      host('b', builder, false),
      host('c', builder, true, true),
      host('d', builder),
      host('e', builder),
    ];
    const picked = pickBuilder(hosts, undefined, 'app-0123456789');
    assert.ok(picked === 'd' || picked === 'e');
    assert.equal(pickBuilder([...hosts].reverse(), undefined, 'app-0123456789'), picked);
  });

  it('follows the Image node selector, and finds none when nothing fits', () => {
    assert.equal(pickBuilder([host('a', { pool: 'ci' }), host('b', builder)], { pool: 'ci' }, 'x'), 'a');
    assert.equal(pickBuilder([host('a', {})], undefined, 'x'), undefined);
  });
});

describe('buildsToPrune', () => {
  const build = (name: string, minute: number) =>
    ({ metadata: { name, creationTimestamp: new Date(Date.UTC(2026, 0, 1, 0, minute)) } }) as Build;

  it('keeps the current Build and the newest others up to the limit', () => {
    const builds = [build('a', 1), build('b', 2), build('c', 3), build('d', 4)];
    assert.deepEqual(buildsToPrune(builds, 'a', 3), ['b']);
    assert.deepEqual(buildsToPrune(builds, 'd', 3), ['a']);
    assert.deepEqual(buildsToPrune(builds, 'd', 5), []);
  });
});
