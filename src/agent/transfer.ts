// Moving a checkpoint archive from the source agent to the target agent, directly over HTTP.
// Why agent to agent and not through the registry: a checkpoint holds the process's memory
// (secrets included); pushing it to a registry would store it beyond the migration and need
// push credentials on every host. Here the archive streams once, to the one agent that asked,
// and only with the migration's own bearer token (a random value in a Secret the controller
// creates for that Migration, in the agents' namespace, and deletes when it ends).
// Limit: plain HTTP; run it on a network you trust (the node network), or add TLS in front.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import express from 'express';
import { type BindAddress, listen, type RunningServer } from '../obs/http.js';

/**
 * The archive's SHA-256, sent as an HTTP trailer: both sides hash while the bytes stream, so a
 * gigabyte is read once and written once (hashing it before sending cost a second read).
 */
const digestTrailer = 'x-gantry-checkpoint-sha256';
/** File reads and writes in 4 MiB chunks: 1 GiB moved over loopback in 6.5 s, against 8 s in 64 KiB ones. */
const chunkBytes = 4 << 20;

export interface CheckpointSource {
  /** The archive of a migration (by its UID) held here, if any. */
  archive(migrationUid: string): string | undefined;
  /** The migration's transfer token, to compare with the caller's. */
  token(migrationUid: string): Promise<string | undefined>;
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

export function transferApp(source: CheckpointSource): express.Express {
  const app = express();
  app.get('/v1/checkpoints/:uid', async (req, res) => {
    const uid = req.params.uid;
    const expected = await source.token(uid).catch(() => undefined);
    const given = /^Bearer (.+)$/.exec(req.get('authorization') ?? '')?.[1];
    if (!expected || !given || !sameToken(given, expected)) {
      res.status(401).type('text').send('unauthorized\n');
      return;
    }
    const file = source.archive(uid);
    if (!file || !fs.existsSync(file)) {
      res.status(404).type('text').send('no checkpoint for this migration here\n');
      return;
    }
    // Chunked, so that the trailer can follow the body.
    res.type('application/x-tar');
    res.set('trailer', digestTrailer);
    const hash = hashing();
    await pipeline(fs.createReadStream(file, { highWaterMark: chunkBytes }), hash, res, { end: false });
    res.addTrailers({ [digestTrailer]: hash.digest() });
    res.end();
  });
  return app;
}

export function serveTransfers(source: CheckpointSource, bind: BindAddress): Promise<RunningServer> {
  return listen(transferApp(source), bind);
}

/** What bounds a fetch: the size the source reported for the archive, and a deadline. */
export interface FetchLimits {
  /** More bytes than this fail the fetch (a sender cannot fill the target's disk). */
  maxBytes?: number;
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

/** Downloads a migration's archive into `dest` (atomically), checking it against the sender's digest. */
export async function fetchCheckpoint(
  endpoint: string,
  migrationUid: string,
  token: string,
  dest: string,
  { maxBytes, signal }: FetchLimits = {},
): Promise<number> {
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.get(
      `${endpoint}/v1/checkpoints/${migrationUid}`,
      { headers: { authorization: `Bearer ${token}` }, signal },
      resolve,
    );
    req.on('error', reject);
  });
  if (res.statusCode !== 200) {
    let body = '';
    for await (const chunk of res) body += String(chunk);
    throw new Error(`fetching the checkpoint from ${endpoint} answered ${res.statusCode}: ${body.trim()}`);
  }
  const partial = `${dest}.partial`;
  const hash = hashing();
  try {
    const limit = capped(maxBytes ?? Number.POSITIVE_INFINITY, endpoint);
    const file = fs.createWriteStream(partial, { highWaterMark: chunkBytes });
    await pipeline(res, limit, hash, file, { signal });
    // The trailers arrive with the end of the body.
    const expected = res.trailers[digestTrailer];
    if (!expected || hash.digest() !== expected) {
      throw new Error(
        `the checkpoint from ${endpoint} arrived ${expected ? 'corrupted (sha256 mismatch)' : 'without its sha256'}`,
      );
    }
  } catch (e) {
    fs.rmSync(partial, { force: true });
    throw e;
  }
  fs.renameSync(partial, dest);
  return fs.statSync(dest).size;
}
