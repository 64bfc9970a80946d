// Moving a checkpoint archive from the source agent to the target agent, directly over HTTP.
// Why agent to agent and not through the registry: a checkpoint holds the process's memory
// (secrets included); pushing it to a registry would store it beyond the migration and need
// push credentials on every host. Here the archive streams once, to the one agent that asked.
//
// Who may ask, and who can read it: the caller presents the migration's bearer token (a random
// value in a Secret the controller creates for that Migration, in the agents' namespace), which
// keeps anyone else from making the source read gigabytes. The bytes themselves are encrypted for
// the target Host alone: each agent keeps an X25519 key under its state directory and publishes
// the public half in its Host's status, which the admission policy lets only that node's agent
// write. The source derives the stream's key from its own private key, the target Host's public
// key and this migration (ECDH, then HKDF), so only the target can decrypt; the target checks the
// decrypted archive against the SHA-256 the source published in the Migration's status (a field
// only the source's agent may write), so only the source can have sent it. Both ends are thus
// authenticated by identities the API vouches for, without certificates to issue or rotate.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import express from 'express';
import { type BindAddress, listen, type RunningServer } from '../obs/http.js';

/** The per-response random salt of the key derivation (base64). */
const saltHeader = 'x-gantry-transfer-salt';
/** File reads and writes in 4 MiB chunks: 1 GiB moved over loopback in 6.5 s, against 8 s in 64 KiB ones. */
const chunkBytes = 4 << 20;
/** AES-256 in counter mode: the archive's integrity comes from the published digest, not a MAC. */
const cipher = 'aes-256-ctr';

/** This agent's transfer key pair: the private half stays in its state directory. */
export class TransferKey {
  private constructor(private readonly privateKey: crypto.KeyObject) {}

  /** The key in `file` (PKCS#8 PEM), created with mode 0600 the first time. */
  static loadOrCreate(file: string): TransferKey {
    if (fs.existsSync(file)) return new TransferKey(crypto.createPrivateKey(fs.readFileSync(file)));
    const { privateKey } = crypto.generateKeyPairSync('x25519');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const partial = `${file}.partial`;
    fs.writeFileSync(partial, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    fs.renameSync(partial, file);
    return new TransferKey(privateKey);
  }

  /** The public half, as published in Host status.transferPublicKey (base64 SPKI DER). */
  get publicKey(): string {
    return crypto.createPublicKey(this.privateKey).export({ format: 'der', type: 'spki' }).toString('base64');
  }

  /** Key and counter for one transfer with the holder of `peerPublicKey`. */
  streamKey(peerPublicKey: string, salt: Buffer, context: string): { key: Buffer; iv: Buffer } {
    const peer = crypto.createPublicKey({
      key: Buffer.from(peerPublicKey, 'base64'),
      format: 'der',
      type: 'spki',
    });
    if (peer.asymmetricKeyType !== 'x25519') throw new Error('the peer transfer key is not an X25519 key');
    const shared = crypto.diffieHellman({ privateKey: this.privateKey, publicKey: peer });
    const material = Buffer.from(crypto.hkdfSync('sha256', shared, salt, context, 48));
    return { key: material.subarray(0, 32), iv: material.subarray(32) };
  }
}

/** What both sides bind the stream key to: this migration, from this Host to that one. */
export function transferContext(migrationUid: string, sourceHost: string, targetHost: string): string {
  return `gantry checkpoint transfer v1 ${migrationUid} ${sourceHost} ${targetHost}`;
}

/** What the source knows of one migration it may serve. */
export interface TransferGrant {
  /** The migration's transfer token: the caller must present it. */
  token: string;
  /** The archive on this host, if it is here. */
  archive: string | undefined;
  /** The target Host's transfer public key, if it published one. */
  recipientKey: string | undefined;
  /** transferContext of the migration. */
  context: string;
}

export interface CheckpointSource {
  /** The migration (by UID) this host is the source of, if it knows one. */
  grant(migrationUid: string): Promise<TransferGrant | undefined>;
}

/** SHA-256 (hex) of a file, read in large chunks. */
export async function fileSha256(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  await pipeline(fs.createReadStream(file, { highWaterMark: chunkBytes }), hash);
  return hash.digest('hex');
}

/** A pass-through stream that hashes what goes through it. */
function hashing(): Transform & { digest(): string } {
  const hash = crypto.createHash('sha256');
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  return Object.assign(stream, { digest: () => hash.digest('hex') });
}

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

export function transferApp(source: CheckpointSource, key: TransferKey): express.Express {
  const app = express();
  app.get('/v1/checkpoints/:uid', async (req, res) => {
    const uid = req.params.uid;
    const grant = await source.grant(uid).catch(() => undefined);
    const given = /^Bearer (.+)$/.exec(req.get('authorization') ?? '')?.[1];
    if (!grant || !given || !sameToken(given, grant.token)) {
      res.status(401).type('text').send('unauthorized\n');
      return;
    }
    if (!grant.archive || !fs.existsSync(grant.archive)) {
      res.status(404).type('text').send('no checkpoint for this migration here\n');
      return;
    }
    if (!grant.recipientKey) {
      res
        .status(409)
        .type('text')
        .send('the target Host publishes no transfer key (an older Gantry agent?)\n');
      return;
    }
    const salt = crypto.randomBytes(16);
    let encrypt: crypto.Cipher;
    try {
      const { key: k, iv } = key.streamKey(grant.recipientKey, salt, grant.context);
      encrypt = crypto.createCipheriv(cipher, k, iv);
    } catch (e) {
      res
        .status(409)
        .type('text')
        .send(`the target Host's transfer key is unusable: ${String(e)}\n`);
      return;
    }
    res.type('application/octet-stream');
    res.set(saltHeader, salt.toString('base64'));
    await pipeline(fs.createReadStream(grant.archive, { highWaterMark: chunkBytes }), encrypt, res);
  });
  return app;
}

export function serveTransfers(
  source: CheckpointSource,
  key: TransferKey,
  bind: BindAddress,
): Promise<RunningServer> {
  return listen(transferApp(source, key), bind);
}

/** One archive to fetch, and what it must match. */
export interface CheckpointFetch {
  /** The source Host's transfer endpoint. */
  endpoint: string;
  migrationUid: string;
  token: string;
  /** The source Host's transfer public key, as its status publishes it. */
  senderKey: string;
  /** transferContext of the migration. */
  context: string;
  /** The archive's SHA-256 (hex), as the source published it in the Migration's status. */
  sha256: string;
  /** More bytes than this fail the fetch (a sender cannot fill the target's disk). */
  maxBytes: number;
  /** Aborts the fetch (the Migration's own deadline). */
  signal?: AbortSignal;
}

/** A pass-through stream that fails once more than `max` bytes went through it. */
function capped(max: number, endpoint: string): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      if (seen > max)
        done(
          new Error(`the checkpoint from ${endpoint} is larger than the ${max} bytes its source reported`),
        );
      else done(null, chunk);
    },
  });
}

/**
 * Downloads and decrypts a migration's archive into `dest` (atomically), keeping it only if it
 * matches the digest the source published. Resolves with its size.
 */
export async function fetchCheckpoint(f: CheckpointFetch, key: TransferKey, dest: string): Promise<number> {
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.get(
      `${f.endpoint}/v1/checkpoints/${f.migrationUid}`,
      { headers: { authorization: `Bearer ${f.token}` }, signal: f.signal },
      resolve,
    );
    req.on('error', reject);
  });
  if (res.statusCode !== 200) {
    let body = '';
    for await (const chunk of res) body += String(chunk);
    throw new Error(`fetching the checkpoint from ${f.endpoint} answered ${res.statusCode}: ${body.trim()}`);
  }
  const salt = Buffer.from(String(res.headers[saltHeader] ?? ''), 'base64');
  if (salt.length !== 16) {
    res.destroy();
    throw new Error(`the checkpoint from ${f.endpoint} came without its key salt (an older Gantry agent?)`);
  }
  const { key: k, iv } = key.streamKey(f.senderKey, salt, f.context);
  const partial = `${dest}.partial`;
  const hash = hashing();
  try {
    const file = fs.createWriteStream(partial, { highWaterMark: chunkBytes });
    const decrypt = crypto.createDecipheriv(cipher, k, iv);
    await pipeline(res, capped(f.maxBytes, f.endpoint), decrypt, hash, file, { signal: f.signal });
    if (hash.digest() !== f.sha256) {
      throw new Error(
        `the checkpoint from ${f.endpoint} does not match the SHA-256 its source published ` +
          '(tampered with, or not sent by the source Host)',
      );
    }
  } catch (e) {
    fs.rmSync(partial, { force: true });
    throw e;
  }
  fs.renameSync(partial, dest);
  return fs.statSync(dest).size;
}
