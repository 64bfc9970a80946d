// Pull-secret credentials: reading the Secret, and choosing entries for an image as the kubelet
// does (host globs, ports, path prefixes, Docker Hub's aliases, most specific first).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Secret } from '@kubernetes/client-node';
import { parseImageReference } from '../../../src/api/v1alpha1/index.js';
import { credentialsFor, dockerConfigFromSecret, type DockerConfig } from '../../../src/kube/dockerconfig.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const user = (name: string) => ({ username: name, password: `${name}-pw` });

function secret(type: string, data: Record<string, string>): V1Secret {
  return { metadata: { name: 'regcred', namespace: 'ns' }, type, data };
}

describe('dockerConfigFromSecret', () => {
  it('reads .dockerconfigjson auths and the legacy .dockercfg map', () => {
    const auths = { 'ghcr.io': { auth: b64('a:b') } };
    assert.deepEqual(
      dockerConfigFromSecret(
        secret('kubernetes.io/dockerconfigjson', { '.dockerconfigjson': b64(JSON.stringify({ auths })) }),
      ),
      auths,
    );
    assert.deepEqual(
      dockerConfigFromSecret(secret('kubernetes.io/dockercfg', { '.dockercfg': b64(JSON.stringify(auths)) })),
      auths,
    );
  });

  it('explains a Secret of another type, without the key, or with bad JSON', () => {
    assert.throws(() => dockerConfigFromSecret(secret('Opaque', {})), /ns\/regcred is of type Opaque/);
    assert.throws(
      () => dockerConfigFromSecret(secret('kubernetes.io/dockerconfigjson', {})),
      /has no .dockerconfigjson/,
    );
    assert.throws(
      () =>
        dockerConfigFromSecret(secret('kubernetes.io/dockerconfigjson', { '.dockerconfigjson': b64('{') })),
      /is not JSON/,
    );
  });
});

describe('credentialsFor', () => {
  const lookup = (image: string, ...configs: DockerConfig[]) =>
    credentialsFor(parseImageReference(image), configs);

  it('matches the registry host, with username/password or the auth field', () => {
    const config = { 'ghcr.io': user('gh'), 'quay.io': { auth: b64('q:p:with:colons') } };
    assert.deepEqual(lookup('ghcr.io/org/app:1', config), [user('gh')]);
    assert.deepEqual(lookup('quay.io/org/app', config), [{ username: 'q', password: 'p:with:colons' }]);
    assert.deepEqual(lookup('gcr.io/org/app', config), []);
  });

  it('treats docker.io, index.docker.io, registry-1.docker.io and https://index.docker.io/v1/ as Docker Hub', () => {
    for (const key of [
      'docker.io',
      'index.docker.io',
      'registry-1.docker.io',
      'https://index.docker.io/v1/',
    ]) {
      assert.deepEqual(lookup('nginx', { [key]: user('hub') }), [user('hub')], key);
      assert.deepEqual(lookup('docker.io/team/app:2', { [key]: user('hub') }), [user('hub')], key);
    }
  });

  it('matches a wildcard per host part, and requires the same port', () => {
    const config = { '*.example.com': user('wild'), 'registry.local:5000': user('local') };
    assert.deepEqual(lookup('a.example.com/app', config), [user('wild')]);
    assert.deepEqual(lookup('a.b.example.com/app', config), []);
    assert.deepEqual(lookup('registry.local:5000/app', config), [user('local')]);
    assert.deepEqual(lookup('registry.local/app', config), []);
    assert.deepEqual(lookup('registry.local:5001/app', config), []);
  });

  it('honours a path prefix by whole components, most specific first, across Secrets', () => {
    const first = { 'quay.io': user('any') };
    const second = { 'https://quay.io/team': user('team') };
    assert.deepEqual(lookup('quay.io/team/app', first, second), [user('team'), user('any')]);
    assert.deepEqual(lookup('quay.io/teamx/app', first, second), [user('any')]);
  });

  it('prefers an exact host to a wildcard, and skips entries without credentials', () => {
    const config = { '*.example.com': user('wild'), 'a.example.com': user('exact'), 'b.example.com': {} };
    assert.deepEqual(lookup('a.example.com/x', config), [user('exact'), user('wild')]);
    assert.deepEqual(lookup('b.example.com/x', config), [user('wild')]);
  });
});
