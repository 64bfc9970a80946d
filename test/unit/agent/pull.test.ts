import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { V1Secret } from '@kubernetes/client-node';
import { test } from 'node:test';
import { classifyPullError, ImagePuller } from '../../../src/agent/pull.js';
import type { AuthConfig, CriClient } from '../../../src/cri/client.js';
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

test('an image pulled with credentials runs with other credentials only once the registry accepted them', async () => {
  // A registry with one private repository that knows one password, and a public one, behind a
  // runtime that keeps what it pulled; both repositories hold the same image.
  const pulled = new Set<string>();
  const pulls: (string | undefined)[] = [];
  const cri = {
    imageStatus: async ({ image }: { image: { image: string } }) => ({
      image: pulled.has(image.image) ? { id: 'sha256:img', size: 1n } : undefined,
    }),
    pullImage: async ({ image, auth }: { image: { image: string }; auth?: AuthConfig }) => {
      pulls.push(auth?.password);
      const open = image.image.startsWith('public.example/');
      if (!open && auth?.password !== 'right') throw new Error('pulling: 401 Unauthorized');
      pulled.add(image.image);
      return { imageRef: 'sha256:img' };
    },
  } as unknown as CriClient;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-pull-'));
  const recordFile = path.join(dir, 'pulled-with.json');
  const options = { concurrency: 1, initialBackoffMs: 1, maxBackoffMs: 1, recordFile };
  const puller = new ImagePuller(cri, options);
  const ref = 'registry.example/private:1';
  const right = { username: 'a', password: 'right' };

  assert.equal(await puller.ensure('public.example/copy:1', 'IfNotPresent'), 'sha256:img');
  assert.equal(await puller.ensure(ref, 'IfNotPresent', right), 'sha256:img');
  assert.equal(puller.openToAll('sha256:img', 'public.example/copy:1'), true);
  assert.equal(puller.openToAll('sha256:img', ref), false, 'public elsewhere opens nothing here');
  assert.equal(
    puller.usable('sha256:img', 'registry.example/private@sha256:abc', right),
    true,
    'by repository',
  );
  await assert.rejects(
    puller.ensure(ref, 'IfNotPresent'),
    /401/,
    'no credentials: the registry is asked, and says no',
  );
  await new Promise((r) => setTimeout(r, 5)); // past the back-off
  await assert.rejects(puller.ensure(ref, 'IfNotPresent', { username: 'b', password: 'wrong' }), /401/);
  assert.deepEqual(pulls, [undefined, 'right', undefined, 'wrong']);

  // The record outlives the agent: a new puller over the same file knows the same.
  const restarted = new ImagePuller(cri, options);
  assert.equal(restarted.usable('sha256:img', ref, right), true);
  assert.equal(restarted.usable('sha256:img', ref, undefined), false);
  assert.ok(!fs.readFileSync(recordFile, 'utf8').includes('right'), 'digests, never the password');
  assert.equal(
    restarted.openToAll('sha256:img', 'elsewhere.example/never-pulled:1'),
    true,
    'what this agent never pulled is not checked',
  );
  fs.rmSync(dir, { recursive: true, force: true });
});
