// The checkpoint transfer between agents, over real HTTP on 127.0.0.1: only the migration's
// token opens it, only the target Host's key decrypts it, and the target keeps only an archive
// that matches the digest the source published.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type CheckpointFetch,
  fetchCheckpoint,
  fileSha256,
  serveTransfers,
  type TransferGrant,
  TransferKey,
  transferContext,
} from '../../../src/agent/transfer.js';
import type { RunningServer } from '../../../src/obs/http.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-transfer-'));
const archive = path.join(dir, 'archive.tar');
const content = Buffer.from('pretend this is a CRIU checkpoint archive\n'.repeat(1000));
const sha256 = crypto.createHash('sha256').update(content).digest('hex');

const sourceKey = TransferKey.loadOrCreate(path.join(dir, 'source', 'transfer-key.pem'));
const targetKey = TransferKey.loadOrCreate(path.join(dir, 'target', 'transfer-key.pem'));
const strangerKey = TransferKey.loadOrCreate(path.join(dir, 'stranger', 'transfer-key.pem'));

describe('checkpoint transfer', () => {
  let server: RunningServer;
  let fetch: (overrides?: Partial<CheckpointFetch>, key?: TransferKey) => Promise<number>;
  const dest = path.join(dir, 'received.tar');

  before(async () => {
    fs.writeFileSync(archive, content);
    const grants: Record<string, TransferGrant> = {
      m1: {
        token: 'token-m1',
        archive,
        recipientKey: targetKey.publicKey,
        context: transferContext('m1', 'h1', 'h2'),
      },
      m2: { token: 'token-m2', archive: undefined, recipientKey: targetKey.publicKey, context: '' },
      m3: { token: 'token-m3', archive, recipientKey: undefined, context: '' },
    };
    server = await serveTransfers({ grant: async (uid) => grants[uid] }, sourceKey, {
      host: '127.0.0.1',
      port: 0,
    });
    const endpoint = `http://127.0.0.1:${server.address.port}`;
    fetch = (overrides = {}, key = targetKey) =>
      fetchCheckpoint(
        {
          endpoint,
          migrationUid: 'm1',
          token: 'token-m1',
          senderKey: sourceKey.publicKey,
          context: transferContext('m1', 'h1', 'h2'),
          sha256,
          maxBytes: content.length,
          ...overrides,
        },
        key,
        dest,
      );
  });
  after(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function nothingKept(): void {
    assert.equal(fs.existsSync(dest), false);
    assert.equal(fs.existsSync(`${dest}.partial`), false, 'nothing half-written is kept');
  }

  it('sends the archive to the holder of the token and the target key, intact', async () => {
    assert.equal(await fetch(), content.length);
    assert.deepEqual(fs.readFileSync(dest), content);
    assert.equal(await fileSha256(dest), sha256);
    fs.rmSync(dest);
  });

  it('keeps the key pair across restarts, and the private half to root alone', () => {
    const file = path.join(dir, 'target', 'transfer-key.pem');
    assert.equal(TransferKey.loadOrCreate(file).publicKey, targetKey.publicKey);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.notEqual(sourceKey.publicKey, targetKey.publicKey);
  });

  it('refuses a wrong or missing token, and says when it holds no archive or knows no target key', async () => {
    await assert.rejects(fetch({ token: 'token-m2' }), /answered 401/);
    await assert.rejects(fetch({ migrationUid: 'm4', token: 'anything' }), /answered 401/);
    await assert.rejects(fetch({ migrationUid: 'm2', token: 'token-m2' }), /answered 404/);
    await assert.rejects(
      fetch({ migrationUid: 'm3', token: 'token-m3' }),
      /answered 409: the target Host publishes no transfer key/,
    );
    nothingKept();
  });

  it('is unreadable to any other key, even with the token: what it decrypts matches nothing', async () => {
    const raw = await (
      await globalThis.fetch(`http://127.0.0.1:${server.address.port}/v1/checkpoints/m1`, {
        headers: { authorization: 'Bearer token-m1' },
      })
    ).arrayBuffer();
    assert.equal(raw.byteLength, content.length);
    assert.equal(Buffer.from(raw).includes('CRIU checkpoint'), false, 'the wire carries no plaintext');
    await assert.rejects(fetch({}, strangerKey), /does not match the SHA-256 its source published/);
    nothingKept();
  });

  it('is bound to its migration and hosts: another context decrypts to garbage', async () => {
    await assert.rejects(fetch({ context: transferContext('m1', 'h1', 'h3') }), /does not match the SHA-256/);
    nothingKept();
  });

  it('keeps nothing the source did not publish: another sender, or another digest', async () => {
    await assert.rejects(fetch({ senderKey: strangerKey.publicKey }), /does not match the SHA-256/);
    await assert.rejects(fetch({ sha256: '0'.repeat(64) }), /does not match the SHA-256/);
    nothingKept();
  });

  it('takes no more than the source reported, and gives up at the deadline', async () => {
    await assert.rejects(
      fetch({ maxBytes: content.length - 1 }),
      new RegExp(`larger than the ${content.length - 1} bytes its source reported`),
    );
    await assert.rejects(fetch({ signal: AbortSignal.abort() }), /abort/i);
    nothingKept();
    assert.equal(await fetch(), content.length);
  });
});
