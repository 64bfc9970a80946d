import assert from 'node:assert/strict';
import type { V1Secret } from '@kubernetes/client-node';
import { test } from 'node:test';
import { classifyPullError } from '../../../src/agent/pull.js';
import { pullAuth } from '../../../src/agent/pullsecrets.js';
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

test('pull Secrets become a CRI AuthConfig whose server address is a URL', async () => {
  const secret = (name: string, auths: DockerConfig): V1Secret => ({
    metadata: { namespace: 'ns', name },
    type: 'kubernetes.io/dockerconfigjson',
    data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths })).toString('base64') },
  });
  const secrets: Record<string, V1Secret> = {
    hub: secret('hub', { 'https://index.docker.io/v1/': { username: 'hub', password: 'hubpass' } }),
    local: secret('local', { '127.0.0.1:5001': { username: 'local', password: 'localpass' } }),
  };
  const read = async (_namespace: string, name: string) => secrets[name];
  assert.deepEqual(await pullAuth(read, 'ns', ['hub', 'local'], 'nginx'), {
    auth: { username: 'hub', password: 'hubpass', serverAddress: 'https://docker.io' },
    problems: [],
  });
  assert.deepEqual(await pullAuth(read, 'ns', ['hub', 'local'], '127.0.0.1:5001/gantry/web:1'), {
    auth: { username: 'local', password: 'localpass', serverAddress: 'http://127.0.0.1:5001' },
    problems: [],
  });
  assert.deepEqual(await pullAuth(read, 'ns', ['hub', 'gone'], 'quay.io/x/y'), {
    auth: undefined,
    problems: ['pull secret ns/gone does not exist'],
  });
});
