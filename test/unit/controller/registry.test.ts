// The registry client against a small registry served in-process: manifests by tag and digest,
// an index with several platforms, anonymous, Basic and Bearer (token service) access, and the
// failures a registry can answer with, each classified by reason.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { parseImageReference } from '../../../src/api/v1alpha1/index.js';
import {
  mediaTypes,
  parseChallenge,
  RegistryClient,
  RegistryError,
} from '../../../src/controller/registry.js';
import { unsafeAddress } from '../../../src/controller/registryhttp.js';

const sha256 = (body: string): string => `sha256:${createHash('sha256').update(body).digest('hex')}`;

function imageManifest(configSize: number, layerSizes: number[]): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: mediaTypes.ociManifest,
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: sha256(`c${configSize}`),
      size: configSize,
    },
    layers: layerSizes.map((size, i) => ({
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      digest: sha256(`l${i}${size}`),
      size,
    })),
  });
}

const plain = imageManifest(100, [1000, 2000]);
const amd64 = imageManifest(10, [20]);
const arm64 = imageManifest(30, [40, 50]);
const index = JSON.stringify({
  schemaVersion: 2,
  mediaType: mediaTypes.ociIndex,
  manifests: [
    {
      mediaType: mediaTypes.ociManifest,
      digest: sha256(amd64),
      size: amd64.length,
      platform: { os: 'linux', architecture: 'amd64' },
    },
    {
      mediaType: mediaTypes.ociManifest,
      digest: sha256(arm64),
      size: arm64.length,
      platform: { os: 'linux', architecture: 'arm64' },
    },
  ],
});

interface Stored {
  mediaType: string;
  body: string;
}

/** A registry holding a few repositories, with the authentication the test chooses. */
class FakeRegistry {
  auth: 'none' | 'basic' | 'bearer' = 'none';
  readonly users: Record<string, string> = { alice: 'secret' };
  sendDigestHeader = true;
  wrongDigestHeader = false;
  /** Repositories answering with a fixed status, stalling, redirecting, or with a token realm of their own. */
  readonly special: Record<string, number | 'stall' | { redirect: string } | { realm: string }> = {};
  readonly requests: { method: string; url: string; authorization?: string }[] = [];
  readonly tokenRequests: URL[] = [];
  private readonly repos = new Map<string, Map<string, Stored>>();
  private readonly server = http.createServer((req, res) => this.handle(req, res));
  port = 0;

  constructor() {
    this.put('team/app', '1', { mediaType: mediaTypes.ociManifest, body: plain });
    this.put('team/multi', 'latest', { mediaType: mediaTypes.ociIndex, body: index });
    this.put('team/multi', sha256(amd64), { mediaType: mediaTypes.ociManifest, body: amd64 });
    this.put('team/multi', sha256(arm64), { mediaType: mediaTypes.ociManifest, body: arm64 });
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  put(repo: string, ref: string, stored: Stored): void {
    let manifests = this.repos.get(repo);
    if (!manifests) this.repos.set(repo, (manifests = new Map()));
    manifests.set(ref, stored);
    manifests.set(sha256(stored.body), stored);
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  reset(): void {
    this.auth = 'none';
    this.sendDigestHeader = true;
    this.wrongDigestHeader = false;
    for (const k of Object.keys(this.special)) delete this.special[k];
    this.requests.length = 0;
    this.tokenRequests.length = 0;
  }

  private basicUser(header: string | undefined): string | undefined {
    if (!header?.startsWith('Basic ')) return undefined;
    const [user, password] = Buffer.from(header.slice(6), 'base64').toString().split(':');
    return user && this.users[user] === password ? user : undefined;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', `http://${this.host}`);
    const authorization = req.headers.authorization;
    this.requests.push({ method: req.method ?? '', url: url.pathname, authorization });
    if (url.pathname === '/token') {
      this.tokenRequests.push(url);
      if (authorization && !this.basicUser(authorization)) return void res.writeHead(401).end();
      const user = this.basicUser(authorization) ?? 'anonymous';
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ token: `token-${user}`, expires_in: 300 }));
    }
    const match = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(url.pathname);
    if (!match) return void res.writeHead(404).end();
    const [, repo, ref] = match as unknown as [string, string, string];
    const special = this.special[repo];
    if (special === 'stall') return; // never answers
    if (typeof special === 'object' && 'redirect' in special)
      return void res.writeHead(307, { location: special.redirect }).end();
    if (typeof special === 'object' && 'realm' in special) {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${special.realm}",service="x"` });
      return void res.end();
    }
    if (special !== undefined)
      return void res.writeHead(special).end('{"errors":[{"code":"X","message":"nope"}]}');
    if (!this.authorized(authorization, repo, res)) return;
    const manifests = this.repos.get(repo);
    const stored = manifests?.get(ref);
    if (!stored) {
      const code = manifests ? 'MANIFEST_UNKNOWN' : 'NAME_UNKNOWN';
      res.writeHead(404, { 'content-type': 'application/json' });
      return void res.end(
        req.method === 'HEAD'
          ? undefined
          : JSON.stringify({ errors: [{ code, message: code.toLowerCase() }] }),
      );
    }
    const headers: http.OutgoingHttpHeaders = {
      'content-type': stored.mediaType,
      'content-length': Buffer.byteLength(stored.body),
    };
    if (this.sendDigestHeader)
      headers['docker-content-digest'] = this.wrongDigestHeader ? sha256('other') : sha256(stored.body);
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : stored.body);
  }

  private authorized(authorization: string | undefined, repo: string, res: http.ServerResponse): boolean {
    if (this.auth === 'none') return true;
    if (this.auth === 'basic' && this.basicUser(authorization)) return true;
    if (this.auth === 'bearer' && authorization === 'Bearer token-alice') return true;
    const challenge =
      this.auth === 'basic'
        ? 'Basic realm="fake"'
        : `Bearer realm="http://${this.host}/token",service="fake-registry",scope="repository:${repo}:pull"`;
    res.writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
    return false;
  }
}

const registry = new FakeRegistry();
const alice = { username: 'alice', password: 'secret' };
const mallory = { username: 'mallory', password: 'guess' };

function client(
  opts: { timeoutMs?: number; architecture?: string; insecure?: boolean } = {},
): RegistryClient {
  return new RegistryClient({
    insecureRegistries: opts.insecure === false ? [] : [registry.host],
    timeoutMs: opts.timeoutMs ?? 2000,
    architecture: opts.architecture ?? 'amd64',
  });
}

const ref = (path: string): ReturnType<typeof parseImageReference> =>
  parseImageReference(`${registry.host}/${path}`);

async function rejectsWith(promise: Promise<unknown>, reason: string, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof RegistryError, `a RegistryError, got ${String(err)}`);
    assert.equal(err.reason, reason, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

describe('RegistryClient', () => {
  before(() => registry.start());
  after(() => registry.stop());
  beforeEach(() => registry.reset());

  describe('digests and sizes', () => {
    it('inspects a manifest by tag: its digest, and config plus layers as the size', async () => {
      const info = await client().inspect(ref('team/app:1'));
      assert.equal(info.digest, sha256(plain));
      assert.equal(info.sizeBytes, 3100);
      assert.equal(info.mediaType, mediaTypes.ociManifest);
      assert.match(registry.requests[0]!.url, /^\/v2\/team\/app\/manifests\/1$/);
    });

    it('asks for the digest with HEAD only', async () => {
      assert.equal(await client().digest(ref('team/app:1')), sha256(plain));
      assert.deepEqual(
        registry.requests.map((r) => r.method),
        ['HEAD'],
      );
    });

    it('hashes the body when the registry sends no Docker-Content-Digest (and HEAD falls back to GET)', async () => {
      registry.sendDigestHeader = false;
      assert.equal(await client().digest(ref('team/app:1')), sha256(plain));
      assert.deepEqual(
        registry.requests.map((r) => r.method),
        ['HEAD', 'GET'],
      );
    });

    it('sizes an index by the manifest of linux/<architecture>, keeping the index digest', async () => {
      const onArm = await client({ architecture: 'arm64' }).inspect(ref('team/multi:latest'));
      assert.equal(onArm.digest, sha256(index));
      assert.equal(onArm.sizeBytes, 120);
      const onAmd = await client({ architecture: 'amd64' }).inspect(ref('team/multi:latest'));
      assert.equal(onAmd.sizeBytes, 30);
    });

    it('leaves the size unknown when the index has no manifest for the platform', async () => {
      const info = await client({ architecture: 's390x' }).inspect(ref('team/multi:latest'));
      assert.equal(info.digest, sha256(index));
      assert.equal(info.sizeBytes, undefined);
    });

    it('fetches a digest reference by digest and checks the content against it', async () => {
      const info = await client().inspect(ref(`team/app@${sha256(plain)}`));
      assert.equal(info.digest, sha256(plain));
      assert.match(registry.requests[0]!.url, new RegExp(`/manifests/${sha256(plain)}$`));
    });

    it('refuses a manifest whose digest header does not match its content', async () => {
      registry.wrongDigestHeader = true;
      await rejectsWith(client().inspect(ref('team/app:1')), 'InvalidManifest', /does not match/);
    });
  });

  describe('authentication', () => {
    it('Basic: refuses without credentials, succeeds with them, skipping the ones rejected', async () => {
      registry.auth = 'basic';
      await rejectsWith(client().inspect(ref('team/app:1')), 'Unauthorized', /requires credentials/);
      const info = await client().inspect(ref('team/app:1'), [mallory, alice]);
      assert.equal(info.digest, sha256(plain));
    });

    it('Bearer: gets a token for the challenge scope with the credentials, then reuses it', async () => {
      registry.auth = 'bearer';
      const c = client();
      assert.equal(await c.digest(ref('team/app:1'), [alice]), sha256(plain));
      assert.equal(registry.tokenRequests.length, 1);
      const tokenURL = registry.tokenRequests[0]!;
      assert.equal(tokenURL.searchParams.get('service'), 'fake-registry');
      assert.equal(tokenURL.searchParams.get('scope'), 'repository:team/app:pull');
      const tokenCall = registry.requests.find((r) => r.url === '/token')!;
      assert.equal(tokenCall.authorization, `Basic ${Buffer.from('alice:secret').toString('base64')}`);
      assert.equal((await c.inspect(ref('team/app:1'), [alice])).sizeBytes, 3100);
      assert.equal(registry.tokenRequests.length, 1, 'the cached token is reused');
      assert.equal(registry.requests.at(-1)!.authorization, 'Bearer token-alice');
    });

    it('Bearer: credentials the token service rejects, or an anonymous token the registry refuses, are Unauthorized', async () => {
      registry.auth = 'bearer';
      await rejectsWith(
        client().inspect(ref('team/app:1'), [mallory]),
        'Unauthorized',
        /rejected the credentials of mallory/,
      );
      await rejectsWith(client().inspect(ref('team/app:1')), 'Unauthorized', /requires credentials/);
    });
  });

  describe('failures', () => {
    it('names a missing tag ManifestUnknown and a missing repository RepositoryUnknown', async () => {
      await rejectsWith(client().inspect(ref('team/app:9')), 'ManifestUnknown', /team\/app:9/);
      await rejectsWith(
        client().inspect(ref('team/none:1')),
        'RepositoryUnknown',
        /team\/none does not exist/,
      );
      await rejectsWith(client().digest(ref('team/app:9')), 'ManifestUnknown');
    });

    it('classifies 403, 429 and 5xx', async () => {
      Object.assign(registry.special, { 'x/denied': 403, 'x/limited': 429, 'x/broken': 503 });
      await rejectsWith(client().inspect(ref('x/denied:1')), 'AccessDenied', /nope/);
      await rejectsWith(client().inspect(ref('x/limited:1')), 'TooManyRequests');
      await rejectsWith(client().inspect(ref('x/broken:1')), 'RegistryError', /HTTP 503/);
    });

    it('names a registry that refuses connections RegistryUnreachable', async () => {
      const closed = http.createServer();
      await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
      const port = (closed.address() as AddressInfo).port;
      await new Promise((r) => closed.close(r));
      const c = new RegistryClient({ insecureRegistries: [`127.0.0.1:${port}`], timeoutMs: 2000 });
      await rejectsWith(
        c.inspect(parseImageReference(`127.0.0.1:${port}/a/b:1`)),
        'RegistryUnreachable',
        /ECONNREFUSED/,
      );
    });

    it('gives up on a registry that does not answer within the timeout', async () => {
      registry.special['x/slow'] = 'stall';
      const started = Date.now();
      await rejectsWith(
        client({ timeoutMs: 300 }).inspect(ref('x/slow:1')),
        'RegistryTimeout',
        /within 0.3s/,
      );
      assert.ok(Date.now() - started < 2000);
    });

    it('speaks HTTPS to registries not listed as insecure, and says what to do when that fails', async () => {
      await rejectsWith(
        client({ insecure: false }).inspect(ref('team/app:1')),
        'RegistryUnreachable',
        /--insecure-registries/,
      );
    });

    it('follows a redirect within the registry', async () => {
      registry.special['team/moved'] = { redirect: `http://${registry.host}/v2/team/app/manifests/1` };
      const info = await client().inspect(ref('team/moved:1'));
      assert.equal(info.digest, sha256(plain));
    });

    it('refuses a token realm or a redirect that leads to a link-local (metadata) address', async () => {
      registry.special['team/realm'] = { realm: 'http://169.254.169.254/latest/meta-data/' };
      await rejectsWith(
        client().inspect(ref('team/realm:1')),
        'UnsafeAddress',
        /169\.254\.169\.254.*link-local/,
      );
      registry.special['team/redirect'] = { redirect: 'http://[fe80::1]/token' };
      await rejectsWith(client().inspect(ref('team/redirect:1')), 'UnsafeAddress', /link-local/);
    });

    it('stops when the caller aborts, without calling it a registry failure', async () => {
      registry.special['x/slow'] = 'stall';
      const abort = new AbortController();
      const pending = client({ timeoutMs: 5000 }).inspect(ref('x/slow:1'), [], abort.signal);
      setTimeout(() => abort.abort(), 50);
      await assert.rejects(pending, (err: unknown) => !(err instanceof RegistryError));
    });
  });
});

describe('parseChallenge', () => {
  it('tells unsafe destinations: link-local, metadata, unspecified; loopback only from a registry on loopback', () => {
    for (const ip of [
      '169.254.169.254',
      '169.254.0.1',
      '100.100.100.200',
      '0.0.0.0',
      'fe80::1',
      'fd00:ec2::254',
      '::',
      '::ffff:169.254.169.254',
    ])
      assert.ok(unsafeAddress(ip, true), ip);
    for (const ip of ['10.0.0.5', '192.168.1.2', '8.8.8.8', '2001:db8::1'])
      assert.equal(unsafeAddress(ip, false), undefined, ip);
    assert.match(unsafeAddress('127.0.0.1', false) ?? '', /loopback/);
    assert.match(unsafeAddress('::1', false) ?? '', /loopback/);
    assert.equal(unsafeAddress('127.0.0.1', true), undefined);
  });

  it('reads the scheme and quoted or bare parameters', () => {
    assert.deepEqual(
      parseChallenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push"',
      ),
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.docker.io/token',
          service: 'registry.docker.io',
          scope: 'repository:a/b:pull,push',
        },
      },
    );
    assert.deepEqual(parseChallenge('Basic realm=registry'), {
      scheme: 'basic',
      params: { realm: 'registry' },
    });
    assert.equal(parseChallenge(''), undefined);
  });
});
