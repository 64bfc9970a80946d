// Image references parse and normalise as Docker and the kubelet do.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  defaultPullPolicy,
  familiarImageReference,
  IMAGE_REFERENCE_FORMS,
  imageReferenceProblem,
  isImageReference,
  normalizeImageReference,
  parseImageReference,
  pinnedImageReference,
} from '../../../src/api/v1alpha1/imageref.js';

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;

describe('normalizeImageReference', () => {
  const cases: [string, string][] = [
    ['nginx', 'docker.io/library/nginx:latest'],
    ['nginx:1.27', 'docker.io/library/nginx:1.27'],
    ['library/nginx', 'docker.io/library/nginx:latest'],
    ['bitnami/redis:7', 'docker.io/bitnami/redis:7'],
    ['docker.io/nginx', 'docker.io/library/nginx:latest'],
    ['index.docker.io/library/nginx:1', 'docker.io/library/nginx:1'],
    [`nginx@${DIGEST}`, `docker.io/library/nginx@${DIGEST}`],
    [`nginx:1.27@${DIGEST}`, `docker.io/library/nginx:1.27@${DIGEST}`],
    ['127.0.0.1:5000/gantry/web:1', '127.0.0.1:5000/gantry/web:1'],
    ['localhost/app', 'localhost/app:latest'],
    ['localhost:5000/app', 'localhost:5000/app:latest'],
    ['ghcr.io/org/team/app:v1.2.3-rc.1', 'ghcr.io/org/team/app:v1.2.3-rc.1'],
    ['registry.example.com:443/a/b', 'registry.example.com:443/a/b:latest'],
    ['[::1]:5000/app:2', '[::1]:5000/app:2'],
    ['Registry/app', 'Registry/app:latest'],
    ['a__b/c-d--e.f_g', 'docker.io/a__b/c-d--e.f_g:latest'],
  ];
  for (const [input, want] of cases) {
    it(`${input} -> ${want}`, () => assert.equal(normalizeImageReference(input), want));
  }
});

describe('parseImageReference', () => {
  it('splits registry, path, tag and digest', () => {
    assert.deepEqual(parseImageReference(`127.0.0.1:5000/gantry/web:1@${DIGEST}`), {
      registry: '127.0.0.1:5000',
      path: 'gantry/web',
      tag: '1',
      digest: DIGEST,
    });
  });

  it('treats a port-looking colon before a slash as part of the registry, not a tag', () => {
    assert.deepEqual(parseImageReference('host:5000/app'), {
      registry: 'host:5000',
      path: 'app',
      tag: 'latest',
    });
  });

  it('adds no tag to a digest-only reference', () => {
    assert.equal(parseImageReference(`nginx@${DIGEST}`).tag, undefined);
  });

  const invalid = [
    '',
    'Nginx',
    'nginx:',
    ':tag',
    'nginx:-tag',
    `nginx:${'a'.repeat(129)}`,
    'nginx@sha256:abc',
    `nginx@sha256:${'A'.repeat(64)}`,
    `nginx@md5:${'a'.repeat(32)}`,
    'a//b',
    'a/b/',
    '/a',
    'a b',
    'a..b',
    'a-/b',
    'https://docker.io/nginx',
  ];
  for (const ref of invalid) {
    it(`refuses ${JSON.stringify(ref)}`, () => {
      assert.equal(isImageReference(ref), false);
      assert.throws(() => parseImageReference(ref), /invalid reference format/);
    });
  }
});

describe('imageReferenceProblem', () => {
  it('says nothing of a valid reference', () => {
    assert.equal(imageReferenceProblem('nginx:1.27'), undefined);
    assert.equal(
      imageReferenceProblem('Registry.example:5000/app:V1'),
      undefined,
      'capitals in registry and tag',
    );
  });

  it("says what is wrong in Docker's words, the reference quoted", () => {
    const cases: [string, string][] = [
      [
        'nginx latest',
        'invalid reference format: "nginx latest" contains a space (a tag follows a colon, as in nginx:1.27)',
      ],
      ['Nginx', 'invalid reference format: repository name must be lowercase: "Nginx"'],
      [
        '127.0.0.1:5000/Gantry/web:1',
        'invalid reference format: repository name must be lowercase: "127.0.0.1:5000/Gantry/web:1"',
      ],
      [
        'nginx@sha256:abc',
        'invalid reference format: "nginx@sha256:abc" has a malformed digest (@sha256: and 64 lower-case hex digits)',
      ],
      [
        'nginx:',
        'invalid reference format: "nginx:" is not [registry[:port]/]name[:tag][@sha256:<64 hex digits>], ' +
          'as in nginx:1.27 or ghcr.io/org/app:v2 (name in lower case, a tag of at most 128 characters)',
      ],
      ['$&', `invalid reference format: "$&" is not ${IMAGE_REFERENCE_FORMS}`],
    ];
    for (const [ref, message] of cases) assert.equal(imageReferenceProblem(ref), message, ref);
  });
});

describe('helpers', () => {
  it('familiarImageReference gives Docker short names', () => {
    assert.equal(familiarImageReference('docker.io/library/nginx:latest'), 'nginx:latest');
    assert.equal(familiarImageReference('bitnami/redis'), 'bitnami/redis:latest');
    assert.equal(familiarImageReference('127.0.0.1:5000/gantry/web:1'), '127.0.0.1:5000/gantry/web:1');
  });

  it('pinnedImageReference replaces the tag by the resolved digest', () => {
    assert.equal(pinnedImageReference('nginx:1.27', DIGEST), `docker.io/library/nginx@${DIGEST}`);
    assert.equal(
      pinnedImageReference('127.0.0.1:5000/gantry/web:1', DIGEST),
      `127.0.0.1:5000/gantry/web@${DIGEST}`,
    );
  });

  it('defaultPullPolicy follows the kubelet: Always only for latest or no tag', () => {
    assert.equal(defaultPullPolicy('nginx'), 'Always');
    assert.equal(defaultPullPolicy('nginx:latest'), 'Always');
    assert.equal(defaultPullPolicy('nginx:1.27'), 'IfNotPresent');
    assert.equal(defaultPullPolicy(`nginx@${DIGEST}`), 'IfNotPresent');
    assert.equal(defaultPullPolicy(`nginx:latest@${DIGEST}`), 'Always');
  });
});
