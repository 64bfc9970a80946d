// A runtime that listens but is still starting answers UNAVAILABLE ("server is not initialized
// yet", as containerd does for a moment after a restart). A call that asks waitForReady waits that
// out within its deadline; any other call fails at once. Against a small gRPC server of our own on
// a unix socket, serving RuntimeService.Version from the same runtime.proto.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { CriClient, CriError } from '../../../src/cri/client.js';

const proto = fileURLToPath(new URL('../../../src/cri/runtime.proto', import.meta.url));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-cri-'));
const socket = path.join(dir, 'runtime.sock');

describe('CRI calls to a runtime still starting', () => {
  let server: grpc.Server;
  let calls = 0;
  let unavailableFor = 0;

  before(async () => {
    const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(proto, { keepCase: false })) as unknown as {
      runtime: { v1: { RuntimeService: { service: grpc.ServiceDefinition } } };
    };
    server = new grpc.Server();
    server.addService(pkg.runtime.v1.RuntimeService.service, {
      version: (_call: unknown, done: grpc.sendUnaryData<object>) => {
        calls++;
        if (calls <= unavailableFor) {
          done({ code: grpc.status.UNAVAILABLE, details: 'server is not initialized yet' });
        } else {
          done(null, { version: '0.1.0', runtimeName: 'fake', runtimeVersion: '1', runtimeApiVersion: 'v1' });
        }
      },
    });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (e) =>
        e ? reject(e) : resolve(),
      ),
    );
  });

  after(() => {
    server.forceShutdown();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('waits it out when the call asks waitForReady', async () => {
    calls = 0;
    unavailableFor = 2;
    const client = new CriClient(socket);
    try {
      const v = await client.version({}, { waitForReady: true, timeoutMs: 5_000 });
      assert.equal(v.runtimeName, 'fake');
      assert.equal(calls, 3, 'two refusals, then the answer');
    } finally {
      client.close();
    }
  });

  it('fails at once otherwise, and gives up at the deadline', async () => {
    calls = 0;
    unavailableFor = 1_000;
    const client = new CriClient(socket);
    try {
      await assert.rejects(client.version(), (e) => e instanceof CriError && e.isUnavailable());
      assert.equal(calls, 1);
      const t0 = Date.now();
      await assert.rejects(
        client.version({}, { waitForReady: true, timeoutMs: 700 }),
        (e) => e instanceof CriError && e.isUnavailable(),
      );
      assert.ok(Date.now() - t0 < 2_000, 'within about its deadline');
    } finally {
      client.close();
    }
  });
});
