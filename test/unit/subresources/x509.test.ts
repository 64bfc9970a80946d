// Certificates made by x509.ts, read back by node (OpenSSL) and used for real TLS handshakes: the
// agents' mutual TLS, as streams.ts and agents.ts set it up.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, describe, it } from 'node:test';
import { agentServerName, subresourcesClientName } from '../../../src/kube/streamtls.js';
import { issueCertificate, replacementReason, type KeyPair } from '../../../src/subresources/x509.js';

const ca = issueCertificate({ commonName: 'test-ca', isCA: true, validDays: 3650 });
const agent = issueCertificate({
  commonName: agentServerName,
  dnsNames: [agentServerName],
  usages: ['serverAuth'],
  validDays: 365,
  issuer: ca,
});
const client = issueCertificate({
  commonName: subresourcesClientName,
  usages: ['clientAuth'],
  validDays: 365,
  issuer: ca,
});

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-x509-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** `openssl verify` with a purpose: exit 0 and "OK", or its complaint. */
function opensslVerify(cert: string, purpose: string): string {
  fs.writeFileSync(path.join(dir, 'ca.pem'), ca.cert);
  fs.writeFileSync(path.join(dir, 'leaf.pem'), cert);
  const r = spawnSync(
    'openssl',
    ['verify', '-CAfile', path.join(dir, 'ca.pem'), '-purpose', purpose, path.join(dir, 'leaf.pem')],
    { encoding: 'utf8' },
  );
  if (r.error) throw new Error(`openssl is needed for this test: ${r.error.message}`);
  return (r.stdout + r.stderr).trim();
}

/** A TLS server with `server` that wants client certificates; resolves with what each side saw. */
async function handshake(server: KeyPair, presented?: KeyPair, servername = agentServerName) {
  const srv = tls.createServer({ ...server, ca: ca.cert, requestCert: true, rejectUnauthorized: true });
  // What the server made of the client: its common name, or why the handshake failed.
  const peer = new Promise<string>((resolve) => {
    srv.on('secureConnection', (s) => {
      resolve(String(s.getPeerCertificate().subject?.CN));
      s.end();
    });
    srv.on('tlsClientError', (e) => resolve(`refused: ${e.message}`));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  try {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.cert, servername, ...presented });
    const outcome = await new Promise<string>((resolve) => {
      socket.once('secureConnect', () => resolve('connected'));
      socket.once('error', (e) => resolve(e.message));
    });
    // TLS 1.3: a refused client certificate shows after the handshake, when the server hangs up.
    const closed = await new Promise<string>((resolve) => {
      socket.once('error', (e) => resolve(e.message));
      socket.once('end', () => resolve('ended'));
      socket.once('close', () => resolve('closed'));
    });
    return { outcome, closed, serverSaw: await peer };
  } finally {
    srv.close();
  }
}

describe('x509', () => {
  it('makes a CA and certificates that OpenSSL verifies for their purpose only', () => {
    assert.equal(new crypto.X509Certificate(ca.cert).ca, true);
    assert.ok(new crypto.X509Certificate(agent.cert).checkIssued(new crypto.X509Certificate(ca.cert)));
    assert.match(opensslVerify(agent.cert, 'sslserver'), /: OK$/);
    assert.match(opensslVerify(client.cert, 'sslclient'), /: OK$/);
    // A serving certificate cannot stand in for the client identity, nor the other way round.
    assert.match(opensslVerify(agent.cert, 'sslclient'), /unsuitable certificate purpose/);
    assert.match(opensslVerify(client.cert, 'sslserver'), /unsuitable certificate purpose/);
    assert.equal(new crypto.X509Certificate(agent.cert).checkHost(agentServerName), agentServerName);
  });

  it('lasts into the GeneralizedTime years', () => {
    const far = issueCertificate({
      commonName: 'far',
      validDays: 365,
      now: new Date('2049-12-01T00:00:00Z'),
    });
    assert.equal(new Date(new crypto.X509Certificate(far.cert).validTo).getUTCFullYear(), 2050);
  });

  it('the agents accept the client certificate, and nothing else', async () => {
    assert.deepEqual(await handshake(agent, client), {
      outcome: 'connected',
      closed: 'ended',
      serverSaw: subresourcesClientName,
    });
    assert.match((await handshake(agent)).serverSaw, /^refused: .*certificate/);
    // Another agent's serving certificate is not for clients (OpenSSL checks the purpose).
    assert.match((await handshake(agent, agent)).serverSaw, /^refused/);
    const stranger = issueCertificate({ commonName: 'x', isCA: true, validDays: 1 });
    const foreign = issueCertificate({
      commonName: subresourcesClientName,
      usages: ['clientAuth'],
      validDays: 1,
      issuer: stranger,
    });
    assert.match((await handshake(agent, foreign)).serverSaw, /^refused/);
  });

  it('the client checks the name every agent certificate carries, whatever the address', async () => {
    assert.match((await handshake(agent, client, 'someone-else')).outcome, /does not match|altnames/i);
  });

  it('says when and why a certificate must be replaced', () => {
    const names = { dnsNames: [agentServerName], minRemainingDays: 30 };
    assert.equal(replacementReason(agent, ca, names), undefined);
    assert.equal(replacementReason({}, ca, names), 'missing');
    assert.equal(replacementReason(agent, ca, { ...names, dnsNames: ['other'] }), 'other names');
    assert.equal(
      replacementReason(agent, ca, { ...names, now: new Date(Date.now() + 340 * 86_400_000) }),
      'expiring',
    );
    const otherCa = issueCertificate({ commonName: 'other', isCA: true, validDays: 10 });
    assert.equal(replacementReason(agent, otherCa, names), 'not signed by the current CA');
    assert.equal(
      replacementReason({ cert: agent.cert, key: client.key }, ca, names),
      'its key does not match',
    );
  });
});
