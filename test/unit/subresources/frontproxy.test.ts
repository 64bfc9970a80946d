// Who the aggregated server believes: X-Remote-* headers count only on a connection from the
// front proxy's certificate. A real TLS server and client, with certificates from x509.ts.
import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import { authenticate, type RequestHeaderConfig } from '../../../src/subresources/frontproxy.js';
import { failure } from '../../../src/kube/streaming.js';
import { issueCertificate, type KeyPair } from '../../../src/subresources/x509.js';

const proxyCa = issueCertificate({ commonName: 'front-proxy-ca', isCA: true, validDays: 10 });
const servingCa = issueCertificate({ commonName: 'serving-ca', isCA: true, validDays: 10 });
const serving = issueCertificate({
  commonName: 'localhost',
  dnsNames: ['localhost'],
  usages: ['serverAuth'],
  validDays: 10,
  issuer: servingCa,
});
const proxy = issueCertificate({
  commonName: 'front-proxy-client',
  usages: ['clientAuth'],
  validDays: 10,
  issuer: proxyCa,
});
const otherName = issueCertificate({
  commonName: 'someone',
  usages: ['clientAuth'],
  validDays: 10,
  issuer: proxyCa,
});
// A client certificate of another CA (a user's own, say): its headers must not count.
const userCa = issueCertificate({ commonName: 'cluster-ca', isCA: true, validDays: 10 });
const user = issueCertificate({
  commonName: 'front-proxy-client',
  usages: ['clientAuth'],
  validDays: 10,
  issuer: userCa,
});

const config: RequestHeaderConfig = {
  ca: proxyCa.cert,
  allowedNames: ['front-proxy-client'],
  usernameHeaders: ['X-Remote-User'],
  uidHeaders: [],
  groupHeaders: ['X-Remote-Group'],
  extraHeaderPrefixes: ['X-Remote-Extra-'],
};

let server: https.Server;
let port = 0;

before(async () => {
  server = https.createServer(
    { ...serving, ca: proxyCa.cert, requestCert: true, rejectUnauthorized: false },
    (req, res) => {
      try {
        res.end(JSON.stringify({ user: authenticate(req, config) }));
      } catch (e) {
        res.end(JSON.stringify(failure(e)));
      }
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});
after(() => server.close());

function ask(client: KeyPair | undefined, headers: [string, string][]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, servername: 'localhost', ca: servingCa.cert, ...client, path: '/' },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += String(d)));
        res.on('end', () => resolve(JSON.parse(body) as Record<string, unknown>));
      },
    );
    // Repeated headers stay separate lines, as the apiserver sends groups.
    for (const [k, v] of headers) req.appendHeader(k, v);
    req.on('error', reject);
    req.end();
  });
}

const headers: [string, string][] = [
  ['X-Remote-User', 'alice'],
  ['X-Remote-Group', 'team-a'],
  ['X-Remote-Group', 'system:authenticated'],
  ['X-Remote-Extra-authentication.kubernetes.io%2fnode-name', 'host-1'],
];

describe('front proxy authentication', () => {
  it('believes the headers from the front proxy: user, every group, extra keys unescaped', async () => {
    assert.deepEqual(await ask(proxy, headers), {
      user: {
        username: 'alice',
        groups: ['team-a', 'system:authenticated'],
        extra: { 'authentication.kubernetes.io/node-name': ['host-1'] },
      },
    });
  });

  it('refuses the same headers without a certificate, or with one of another CA, saying why', async () => {
    for (const client of [undefined, user]) {
      const r = await ask(client, headers);
      assert.equal(r.code, 401);
      assert.match(String(r.message), /only the Kubernetes apiserver may call this server/);
    }
  });

  it("refuses a certificate of the proxy's CA with a name the apiserver does not allow", async () => {
    assert.deepEqual(await ask(otherName, headers), {
      code: 401,
      message: `client certificate "someone" is not among the apiserver's requestheader-allowed-names`,
    });
  });

  it('refuses a request that names no user', async () => {
    assert.deepEqual(await ask(proxy, [['X-Remote-Group', 'team-a']]), {
      code: 401,
      message: 'the front proxy named no user',
    });
  });
});
