// What CriClient adds to the decoded messages (src/cri/wire.ts), end to end through grpc-js against
// a small gRPC server of our own on a unix socket: responses with bigints for 64-bit integers,
// enum names, every scalar, list and map present and no nulls (an absent sub-message is absent);
// requests taking bigints. The expected values are typed with the client's own message types, so
// a type that drifted from what the client returns fails to compile.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import {
  type Container,
  type ContainerEventResponse,
  CriClient,
  type CriResponse,
  nanosToDate,
} from '../../../src/cri/client.js';
import { SCHEMA_FILE } from '../../../src/cri/schema.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-cri-messages-'));
const socket = path.join(dir, 'runtime.sock');

type Handler = (call: { request: Record<string, unknown> }, done: grpc.sendUnaryData<object>) => void;

describe('CriClient messages', () => {
  let server: grpc.Server;
  let client: CriClient;
  /** The last request each RPC received, as the server decoded it (64-bit integers as strings). */
  const received: Record<string, Record<string, unknown>> = {};

  const answer =
    (rpc: string, response: object): Handler =>
    (call, done) => {
      received[rpc] = call.request;
      done(null, response);
    };

  before(async () => {
    const def = protoLoader.loadSync(SCHEMA_FILE, {
      keepCase: false,
      longs: String,
      enums: String,
      defaults: true,
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      runtime: { v1: Record<'RuntimeService' | 'ImageService', { service: grpc.ServiceDefinition }> };
    };
    server = new grpc.Server();
    server.addService(pkg.runtime.v1.RuntimeService.service, {
      listContainers: answer('ListContainers', {
        containers: [
          {
            id: 'c1',
            podSandboxId: 's1',
            metadata: { name: 'app', attempt: 2 },
            image: { image: 'busybox:1.36' },
            state: 'CONTAINER_RUNNING',
            createdAt: '1700000000123456789',
            labels: { 'gantry.dev/uid': 'u-1' },
          },
          { id: 'c2' },
        ],
      }),
      stopContainer: answer('StopContainer', {}),
      updateContainerResources: answer('UpdateContainerResources', {}),
      execSync: answer('ExecSync', { stdout: Buffer.from('hello\n'), exitCode: 3 }),
      getContainerEvents: (call: grpc.ServerWritableStream<object, object>) => {
        call.write({ containerId: 'c1', containerEventType: 'CONTAINER_STARTED_EVENT', createdAt: '42' });
        call.write({
          containerId: 'c1',
          containerEventType: 'CONTAINER_STOPPED_EVENT',
          createdAt: '43',
          containersStatuses: [{ id: 'c1', state: 'CONTAINER_EXITED', exitCode: 1, finishedAt: '43' }],
        });
        call.end();
      },
    });
    server.addService(pkg.runtime.v1.ImageService.service, {
      imageStatus: answer('ImageStatus', {}),
      listImages: answer('ListImages', {
        images: [
          { id: 'sha256:2', repoTags: ['busybox:1.36'], size: '9007199254740993', uid: { value: '0' } },
        ],
      }),
    });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (e) =>
        e ? reject(e) : resolve(),
      ),
    );
    client = new CriClient(socket);
  });

  after(() => {
    client.close();
    server.forceShutdown();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('returns int64 as bigint, enums by name, defaults filled and absent sub-messages absent', async () => {
    const expected: Container[] = [
      {
        id: 'c1',
        podSandboxId: 's1',
        metadata: { name: 'app', attempt: 2 },
        image: { image: 'busybox:1.36', annotations: {} },
        imageRef: '',
        state: 'CONTAINER_RUNNING',
        createdAt: 1700000000123456789n,
        labels: { 'gantry.dev/uid': 'u-1' },
        annotations: {},
        imageId: '',
      },
      {
        id: 'c2',
        podSandboxId: '',
        imageRef: '',
        state: 'CONTAINER_CREATED',
        createdAt: 0n,
        labels: {},
        annotations: {},
        imageId: '',
      },
    ];
    const { containers } = await client.listContainers({ filter: { state: { state: 'CONTAINER_RUNNING' } } });
    assert.deepEqual(containers, expected);
    assert.ok(!('metadata' in containers[1]!), 'an absent sub-message is no key at all, not null');
    assert.deepEqual(nanosToDate(containers[0]!.createdAt), new Date(1700000000123));
    assert.deepEqual(received['ListContainers'], {
      filter: { id: '', state: { state: 'CONTAINER_RUNNING' }, podSandboxId: '', labelSelector: {} },
    });
  });

  it('keeps 64-bit integers beyond 2^53 exact, and nested wrappers', async () => {
    const expected: CriResponse<'ListImages'> = {
      images: [
        {
          id: 'sha256:2',
          repoTags: ['busybox:1.36'],
          repoDigests: [],
          size: 9007199254740993n,
          uid: { value: 0n },
          username: '',
          pinned: false,
        },
      ],
    };
    assert.deepEqual(await client.listImages(), expected);
    const status: CriResponse<'ImageStatus'> = await client.imageStatus({ image: { image: 'missing:1' } });
    assert.deepEqual(status, { info: {} }, 'no image: the field is absent');
  });

  it('returns bytes as Buffers', async () => {
    const res = await client.execSync({ containerId: 'c1', cmd: ['echo', 'hello'], timeout: 2 });
    assert.deepEqual(res, { stdout: Buffer.from('hello\n'), stderr: Buffer.alloc(0), exitCode: 3 });
    assert.equal(received['ExecSync']?.['timeout'], '2');
  });

  it('sends bigints (and numbers) as 64-bit integers', async () => {
    await client.stopContainer({ containerId: 'c1', timeout: 5n });
    assert.equal(received['StopContainer']?.['timeout'], '5');
    await client.updateContainerResources({
      containerId: 'c1',
      linux: { cpuQuota: -1, memoryLimitInBytes: 2n ** 62n },
    });
    assert.deepEqual(received['UpdateContainerResources']?.['linux'], {
      cpuPeriod: '0',
      cpuQuota: '-1',
      cpuShares: '0',
      memoryLimitInBytes: '4611686018427387904',
      oomScoreAdj: '0',
    });
  });

  it('streams container events converted the same way', async () => {
    const events: ContainerEventResponse[] = [];
    for await (const e of client.getContainerEvents()) events.push(e);
    const expected: ContainerEventResponse[] = [
      {
        containerId: 'c1',
        containerEventType: 'CONTAINER_STARTED_EVENT',
        createdAt: 42n,
        containersStatuses: [],
      },
      {
        containerId: 'c1',
        containerEventType: 'CONTAINER_STOPPED_EVENT',
        createdAt: 43n,
        containersStatuses: [
          {
            id: 'c1',
            state: 'CONTAINER_EXITED',
            createdAt: 0n,
            startedAt: 0n,
            finishedAt: 43n,
            exitCode: 1,
            imageRef: '',
            reason: '',
            message: '',
            labels: {},
            annotations: {},
            mounts: [],
            logPath: '',
            imageId: '',
          },
        ],
      },
    ];
    assert.deepEqual(events, expected);
  });
});
