// Moving a checkpoint archive from the source agent to the target agent, directly over HTTP.
// Why agent to agent and not through the registry: a checkpoint holds the process's memory
// (secrets included); pushing it to a registry would store it beyond the migration and need
// push credentials on every host. Here the archive streams once, to the one agent that asked,
// and only with the migration's own bearer token (a random value in a Secret the controller
// creates for that Migration, in the agents' namespace, and deletes when it ends).
// Limit: plain HTTP; run it on a network you trust (the node network), or add TLS in front.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import express from 'express';
import { type BindAddress, listen, type RunningServer } from '../obs/http.js';

/** The header carrying the archive's digest, checked by the receiver. */
const digestHeader = 'x-gantry-checkpoint-sha256';

export interface CheckpointSource {
  /** The archive of a migration (by its UID) held here, if any. */
  archive(migrationUid: string): string | undefined;
  /** The migration's transfer token, to compare with the caller's. */
  token(migrationUid: string): Promise<string | undefined>;
}

async function sha256(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  await pipeline(fs.createReadStream(file), hash);
  return hash.digest('hex');
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
    res.set(digestHeader, await sha256(file));
    res.set('content-length', String(fs.statSync(file).size));
    res.type('application/x-tar');
    await pipeline(fs.createReadStream(file), res);
  });
  return app;
}

export function serveTransfers(source: CheckpointSource, bind: BindAddress): Promise<RunningServer> {
  return listen(transferApp(source), bind);
}

/** Downloads a migration's archive into `dest` (atomically), checking size and digest. */
export async function fetchCheckpoint(
  endpoint: string,
  migrationUid: string,
  token: string,
  dest: string,
  signal?: AbortSignal,
): Promise<number> {
  const res = await fetch(`${endpoint}/v1/checkpoints/${migrationUid}`, {
    headers: { authorization: `Bearer ${token}` },
    signal,
  });
  if (!res.ok || !res.body) {
    throw new Error(
      `fetching the checkpoint from ${endpoint} answered ${res.status}: ${(await res.text()).trim()}`,
    );
  }
  const partial = `${dest}.partial`;
  await pipeline(res.body, fs.createWriteStream(partial));
  const expected = res.headers.get(digestHeader);
  if (!expected || (await sha256(partial)) !== expected) {
    fs.rmSync(partial, { force: true });
    throw new Error(
      `the checkpoint from ${endpoint} arrived ${expected ? 'corrupted (sha256 mismatch)' : 'without its sha256'}`,
    );
  }
  fs.renameSync(partial, dest);
  return fs.statSync(dest).size;
}
