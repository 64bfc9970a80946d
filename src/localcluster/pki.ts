// Certificates for the local control plane (openssl): one CA, the apiserver's serving cert,
// client certs for the admin and the controller-manager, and the service-account key pair.
import fs from 'node:fs';
import path from 'node:path';
import { run } from './proc.js';

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  saKey: string;
  saPub: string;
}

export interface ClientCert {
  cert: string;
  key: string;
}

export function pkiPaths(dir: string): Pki {
  return {
    dir,
    caCert: path.join(dir, 'ca.crt'),
    caKey: path.join(dir, 'ca.key'),
    servingCert: path.join(dir, 'apiserver.crt'),
    servingKey: path.join(dir, 'apiserver.key'),
    saKey: path.join(dir, 'sa.key'),
    saPub: path.join(dir, 'sa.pub'),
  };
}

async function newKey(file: string): Promise<void> {
  await run('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', file]);
}

async function signedCert(pki: Pki, name: string, subject: string, extensions: string): Promise<ClientCert> {
  const key = path.join(pki.dir, `${name}.key`);
  const cert = path.join(pki.dir, `${name}.crt`);
  const csr = path.join(pki.dir, `${name}.csr`);
  const ext = path.join(pki.dir, `${name}.ext`);
  await newKey(key);
  await run('openssl', ['req', '-new', '-key', key, '-subj', subject, '-out', csr]);
  fs.writeFileSync(ext, extensions);
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    pki.caCert,
    '-CAkey',
    pki.caKey,
    '-CAcreateserial',
    '-days',
    '365',
    '-extfile',
    ext,
    '-out',
    cert,
  ]);
  fs.rmSync(csr);
  fs.rmSync(ext);
  return { cert, key };
}

/** Creates the CA, serving cert and service-account keys unless they already exist. */
export async function ensurePki(dir: string): Promise<Pki> {
  const pki = pkiPaths(dir);
  if (fs.existsSync(pki.saPub)) return pki;
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  await newKey(pki.caKey);
  await run('openssl', [
    'req',
    '-x509',
    '-new',
    '-key',
    pki.caKey,
    '-subj',
    '/CN=gantry-local-ca',
    '-days',
    '365',
    '-out',
    pki.caCert,
  ]);
  await signedCert(
    pki,
    'apiserver',
    '/CN=kube-apiserver',
    'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' +
      'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n',
  );
  await newKey(pki.saKey);
  await run('openssl', ['pkey', '-in', pki.saKey, '-pubout', '-out', pki.saPub]);
  return pki;
}

/** A client certificate: CN is the user name, O the groups (RBAC reads both). */
export async function ensureClientCert(
  pki: Pki,
  name: string,
  user: string,
  groups: string[] = [],
): Promise<ClientCert> {
  const existing = { cert: path.join(pki.dir, `${name}.crt`), key: path.join(pki.dir, `${name}.key`) };
  if (fs.existsSync(existing.cert)) return existing;
  const subject = `/CN=${user}${groups.map((g) => `/O=${g}`).join('')}`;
  return signedCert(
    pki,
    name,
    subject,
    'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n',
  );
}

/** A kubeconfig with the client certificate embedded, so it can be copied elsewhere. */
export function writeKubeconfig(
  file: string,
  server: string,
  pki: Pki,
  client: ClientCert,
  user: string,
): void {
  const b64 = (f: string) => fs.readFileSync(f).toString('base64');
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'gantry-local', cluster: { server, 'certificate-authority-data': b64(pki.caCert) } }],
    users: [
      {
        name: user,
        user: { 'client-certificate-data': b64(client.cert), 'client-key-data': b64(client.key) },
      },
    ],
    contexts: [{ name: 'gantry-local', context: { cluster: 'gantry-local', user } }],
    'current-context': 'gantry-local',
  };
  fs.writeFileSync(file, JSON.stringify(doc, null, 2) + '\n', { mode: 0o600 });
}
