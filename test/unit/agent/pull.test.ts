import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyPullError } from '../../../src/agent/pull.js';
import { authFromDockerConfig } from '../../../src/agent/pullsecrets.js';

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

test('credentials match the image registry, with docker.io aliases', () => {
  const config = JSON.stringify({
    auths: {
      'https://index.docker.io/v1/': { auth: Buffer.from('hub:hubpass').toString('base64') },
      'ghcr.io': { username: 'gh', password: 'ghpass' },
      '127.0.0.1:5001': { username: 'local', password: 'localpass' },
    },
  });
  assert.deepEqual(authFromDockerConfig(config, 'nginx'), {
    username: 'hub',
    password: 'hubpass',
    serverAddress: 'https://docker.io',
  });
  assert.equal(authFromDockerConfig(config, 'ghcr.io/org/app:1')?.username, 'gh');
  assert.deepEqual(authFromDockerConfig(config, '127.0.0.1:5001/gantry/web:1'), {
    username: 'local',
    password: 'localpass',
    serverAddress: 'http://127.0.0.1:5001',
  });
  assert.equal(authFromDockerConfig(config, 'quay.io/x/y'), undefined);
});
