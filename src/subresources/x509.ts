// X.509 certificates for Gantry's own TLS identities (pki.ts): a CA, the aggregated server's
// serving and client certificates, the agents' serving certificate. Node can parse and verify
// certificates but not make them, and the image has no openssl, so this encodes them in DER
// itself: ECDSA P-256 keys, signed with ecdsa-with-SHA256 by node's crypto. Only what TLS
// verification (Go's crypto/x509 in the apiserver, OpenSSL in node) reads is written.
import crypto from 'node:crypto';

/** A certificate and its private key, PEM. */
export interface KeyPair {
  cert: string;
  key: string;
}

export type Usage = 'serverAuth' | 'clientAuth';

export interface CertificateRequest {
  commonName: string;
  organization?: string;
  /** A CA signs other certificates (and only that). */
  isCA?: boolean;
  dnsNames?: string[];
  usages?: Usage[];
  validDays: number;
  /** The signer; none: self-signed. */
  issuer?: KeyPair;
  now?: Date;
}

// ---- DER

function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  if (n < 0x80) return Buffer.concat([Buffer.from([tag, n]), content]);
  const len: number[] = [];
  for (let rest = n; rest > 0; rest = Math.floor(rest / 256)) len.unshift(rest % 256);
  return Buffer.concat([Buffer.from([tag, 0x80 | len.length, ...len]), content]);
}

const sequence = (...items: Buffer[]) => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => tlv(0x31, Buffer.concat(items));
const octets = (b: Buffer) => tlv(0x04, b);
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));
const boolean = (v: boolean) => tlv(0x01, Buffer.from([v ? 0xff : 0]));
const explicit = (n: number, content: Buffer) => tlv(0xa0 + n, content);

/** A non-negative INTEGER from big-endian bytes: minimal, with a 0 byte when the high bit is set. */
function integer(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const v = bytes.subarray(i);
  return tlv(0x02, v[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number) as [number, number, ...number[]];
  const out = [40 * a + b];
  for (const n of rest) {
    const chunk = [n & 0x7f];
    for (let v = n >>> 7; v > 0; v >>>= 7) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

function bitString(bytes: Buffer, unusedBits = 0): Buffer {
  return tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), bytes]));
}

/** UTCTime until 2049, GeneralizedTime after (RFC 5280 4.1.2.5). */
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2))) : tlv(0x18, Buffer.from(iso));
}

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
};

function name(commonName: string, organization?: string): Buffer {
  const rdn = (type: string, value: string) => set(sequence(oid(type), utf8(value)));
  return sequence(
    ...(organization ? [rdn(OID.organization, organization)] : []),
    rdn(OID.commonName, commonName),
  );
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return sequence(oid(id), ...(critical ? [boolean(true)] : []), octets(value));
}

/** KeyUsage bits (RFC 5280 4.2.1.3): digitalSignature is bit 0, keyCertSign 5, cRLSign 6. */
function keyUsage(bits: number[]): Buffer {
  let byte = 0;
  for (const b of bits) byte |= 0x80 >> b;
  const unused = Math.min(...bits.map((b) => 7 - b));
  return bitString(Buffer.from([byte]), unused);
}

function subjectAltNames(dnsNames: string[]): Buffer {
  return sequence(...dnsNames.map((d) => tlv(0x82, Buffer.from(d, 'ascii'))));
}

/** The key identifier RFC 5280 4.2.1.2 suggests: SHA-1 of the public key's bits. */
function keyId(publicKey: crypto.KeyObject): Buffer {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  // An EC SubjectPublicKeyInfo ends with the key's BIT STRING; its last 65 bytes are the point.
  return crypto
    .createHash('sha1')
    .update(spki.subarray(spki.length - 65))
    .digest();
}

function pem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** A new ECDSA P-256 key and a certificate for it, signed by `issuer` (or by itself). */
export function issueCertificate(r: CertificateRequest): KeyPair {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const issuerKey = r.issuer ? crypto.createPrivateKey(r.issuer.key) : privateKey;
  const issuerCert = r.issuer ? new crypto.X509Certificate(r.issuer.cert) : undefined;
  const issuerName = issuerCert
    ? Buffer.from(certificateFields(issuerCert.raw).subject)
    : name(r.commonName, r.organization);
  const now = r.now ?? new Date();
  // Backdated a little: a clock slightly behind elsewhere must not see it as not yet valid.
  const notBefore = new Date(now.getTime() - 5 * 60_000);
  const notAfter = new Date(now.getTime() + r.validDays * 86_400_000);
  const serial = crypto.randomBytes(16);
  serial[0]! &= 0x7f;

  const extensions = [
    extension(OID.basicConstraints, true, sequence(...(r.isCA ? [boolean(true)] : []))),
    extension(OID.keyUsage, true, keyUsage(r.isCA ? [0, 5, 6] : [0])),
    extension(OID.subjectKeyIdentifier, false, octets(keyId(publicKey))),
  ];
  if (issuerCert) {
    extensions.push(
      extension(OID.authorityKeyIdentifier, false, sequence(tlv(0x80, keyId(issuerCert.publicKey)))),
    );
  }
  if (r.usages?.length) {
    extensions.push(extension(OID.extKeyUsage, false, sequence(...r.usages.map((u) => oid(OID[u])))));
  }
  if (r.dnsNames?.length) {
    extensions.push(extension(OID.subjectAltName, false, subjectAltNames(r.dnsNames)));
  }
  const algorithm = sequence(oid(OID.ecdsaWithSha256));
  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))),
    integer(serial),
    algorithm,
    issuerName,
    sequence(time(notBefore), time(notAfter)),
    name(r.commonName, r.organization),
    publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, sequence(...extensions)),
  );
  const signature = crypto.sign('sha256', tbs, issuerKey);
  return {
    cert: pem('CERTIFICATE', sequence(tbs, algorithm, bitString(signature))),
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

/** Reads one DER element at `at`: where its content starts and ends. */
function element(der: Buffer, at: number): { start: number; end: number; next: number } {
  const first = der[at + 1]!;
  let len = first;
  let start = at + 2;
  if (first & 0x80) {
    len = 0;
    for (let i = 0; i < (first & 0x7f); i++) len = len * 256 + der[start + i]!;
    start += first & 0x7f;
  }
  return { start, end: start + len, next: start + len };
}

/** The subject Name of a DER certificate, byte for byte (an issuer's name must match it exactly). */
function certificateFields(der: Buffer): { subject: Buffer } {
  const cert = element(der, 0);
  const tbs = element(der, cert.start);
  let at = tbs.start;
  // version [0], serial, signature algorithm, issuer, validity, then the subject.
  for (let i = 0; i < 5; i++) at = element(der, at).next;
  return { subject: der.subarray(at, element(der, at).end) };
}

/**
 * Why a certificate should be replaced, or undefined when it is fine: signed by `ca`, valid for
 * at least `minRemainingDays` more, for exactly the names asked.
 */
export function replacementReason(
  pair: Partial<KeyPair>,
  ca: KeyPair,
  want: { dnsNames?: string[]; minRemainingDays: number; now?: Date },
): string | undefined {
  if (!pair.cert || !pair.key) return 'missing';
  let cert: crypto.X509Certificate;
  try {
    cert = new crypto.X509Certificate(pair.cert);
    if (!cert.checkPrivateKey(crypto.createPrivateKey(pair.key))) return 'its key does not match';
  } catch (e) {
    return `unreadable: ${(e as Error).message}`;
  }
  if (!cert.verify(new crypto.X509Certificate(ca.cert).publicKey)) return 'not signed by the current CA';
  const now = (want.now ?? new Date()).getTime();
  if (new Date(cert.validTo).getTime() - now < want.minRemainingDays * 86_400_000) return 'expiring';
  const names = (cert.subjectAltName ?? '')
    .split(', ')
    .filter((n) => n.startsWith('DNS:'))
    .map((n) => n.slice(4))
    .sort();
  if (want.dnsNames && names.join(',') !== [...want.dnsNames].sort().join(',')) return 'other names';
  return undefined;
}
