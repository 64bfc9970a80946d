import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyPullError } from '../../../src/agent/pull.js';
import { authFor } from '../../../src/agent/pullsecrets.js';
import type { DockerConfig } from '../../../src/kube/dockerconfig.js';

test('pull errors are sorted into reasons a user can act on', () => {
  const cases: [string, string][] = [
    [
      'failed to resolve image: unexpected status from HEAD request to http://r/v2/a/manifests/1: 401 Unauthorized',
      'ImagePullUnauthorized',
    ],
    ['pull access denied, repository does not exist or may require authorization', 'ImagePullUnauthorized'],
    ['failed to resolve reference "r/a:x": r/a:x: not found', 'ImageNotFound'],
    ['dial tcp 127.0.0.1:5999: connect: connection refused', 'RegistryUnavailable'],
    ['lookup nowhere.example: no such host', 'RegistryUnavailable'],
    ['something else went wrong', 'ErrImagePull'],
  ];
  for (const [message, reason] of cases) assert.equal(classifyPullError(message), reason, message);
});

test('credentials become a CRI AuthConfig whose server address is a URL', () => {
  const configs: DockerConfig[] = [
    { 'https://index.docker.io/v1/': { username: 'hub', password: 'hubpass' } },
    { '127.0.0.1:5001': { username: 'local', password: 'localpass' } },
  ];
  assert.deepEqual(authFor('nginx', configs), {
    username: 'hub',
    password: 'hubpass',
    serverAddress: 'https://docker.io',
  });
  assert.deepEqual(authFor('127.0.0.1:5001/gantry/web:1', configs), {
    username: 'local',
    password: 'localpass',
    serverAddress: 'http://127.0.0.1:5001',
  });
  assert.equal(authFor('quay.io/x/y', configs), undefined);
});
