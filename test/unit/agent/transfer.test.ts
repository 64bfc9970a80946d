// The checkpoint transfer between agents, over real HTTP on 127.0.0.1: only the migration's
// token opens it, and what arrives is checked against the sender's SHA-256.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import { fetchCheckpoint, serveTransfers } from '../../../src/agent/transfer.js';
import { listen, type RunningServer } from '../../../src/obs/http.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-transfer-'));
const archive = path.join(dir, 'archive.tar');
const content = Buffer.from('pretend this is a CRIU checkpoint archive\n'.repeat(1000));

describe('checkpoint transfer', () => {
  let server: RunningServer;
  let endpoint: string;
  before(async () => {
    fs.writeFileSync(archive, content);
    server = await serveTransfers(
      {
        archive: (uid) => (uid === 'm1' ? archive : undefined),
        token: async (uid) => (uid === 'm1' || uid === 'm2' ? `token-${uid}` : undefined),
      },
      { host: '127.0.0.1', port: 0 },
    );
    endpoint = `http://127.0.0.1:${server.address.port}`;
  });
  after(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('sends the archive to the holder of the token, intact', async () => {
    const dest = path.join(dir, 'received.tar');
    assert.equal(await fetchCheckpoint(endpoint, 'm1', 'token-m1', dest), content.length);
    assert.deepEqual(fs.readFileSync(dest), content);
  });

  it('refuses a wrong or missing token, and says when it holds no archive', async () => {
    const dest = path.join(dir, 'refused.tar');
    await assert.rejects(fetchCheckpoint(endpoint, 'm1', 'token-m2', dest), /answered 401/);
    await assert.rejects(fetchCheckpoint(endpoint, 'm3', 'anything', dest), /answered 401/);
    await assert.rejects(fetchCheckpoint(endpoint, 'm2', 'token-m2', dest), /answered 404/);
    assert.equal(fs.existsSync(dest), false);
  });

  it('takes no more than the source reported, and gives up at the deadline', async () => {
    const dest = path.join(dir, 'bounded.tar');
    await assert.rejects(
      fetchCheckpoint(endpoint, 'm1', 'token-m1', dest, { maxBytes: content.length - 1 }),
      new RegExp(`larger than the ${content.length - 1} bytes its source reported`),
    );
    await assert.rejects(
      fetchCheckpoint(endpoint, 'm1', 'token-m1', dest, { signal: AbortSignal.abort() }),
      /abort/i,
    );
    assert.equal(fs.existsSync(dest), false);
    assert.equal(fs.existsSync(`${dest}.partial`), false, 'nothing half-written is kept');
    assert.equal(
      await fetchCheckpoint(endpoint, 'm1', 'token-m1', dest, { maxBytes: content.length }),
      content.length,
    );
  });

  it('keeps nothing that does not match the digest the sender announced', async () => {
    const app = express();
    app.get('/v1/checkpoints/:uid', (req, res) => {
      res.set('trailer', 'x-gantry-checkpoint-sha256');
      res.write('tampered');
      if (req.params.uid === 'wrong') res.addTrailers({ 'x-gantry-checkpoint-sha256': '0'.repeat(64) });
      res.end();
    });
    const liar = await listen(app, { host: '127.0.0.1', port: 0 });
    try {
      const dest = path.join(dir, 'tampered.tar');
      const liarEndpoint = `http://127.0.0.1:${liar.address.port}`;
      await assert.rejects(fetchCheckpoint(liarEndpoint, 'wrong', 't', dest), /sha256 mismatch/);
      await assert.rejects(fetchCheckpoint(liarEndpoint, 'none', 't', dest), /without its sha256/);
      assert.equal(fs.existsSync(dest), false);
      assert.equal(fs.existsSync(`${dest}.partial`), false);
    } finally {
      await liar.close();
    }
  });
});
