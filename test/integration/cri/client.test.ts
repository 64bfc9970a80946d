// The CRI client against the real containerd of the local cluster's hosts: host-1 for the calls,
// host-2 for the restart test (its containerd is stopped and started again by PID).
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  type CriCallEvent,
  CriClient,
  CriError,
  type PodSandboxConfig,
  nanosToDate,
  nanosToSeconds,
} from '../../../src/cri/client.js';
import { startRuntime, stopRuntime } from '../../../src/localcluster/cluster.js';
import { localCluster } from '../../support/cluster.js';

const RUN_LABEL = { 'gantry.test/cri-client': String(process.pid) };

async function expectCriError(p: Promise<unknown>, check: (e: CriError) => void): Promise<CriError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CriError, `expected a CriError, got ${String(e)}`);
    check(e);
    return e;
  }
  assert.fail('the call succeeded; a CriError was expected');
}

function assertRecent(ns: bigint, what: string): void {
  const d = nanosToDate(ns);
  assert.ok(d, `${what} is unset`);
  assert.ok(Math.abs(d.getTime() - Date.now()) < 10 * 60_000, `${what} ${d.toISOString()} is not recent`);
}

describe('CriClient against containerd', () => {
  const cluster = localCluster();
  const [host, restartHost] = cluster.hosts;
  const image = cluster.images.pause;
  const workDir = fs.mkdtempSync('/tmp/cri-client-test-');
  const calls: CriCallEvent[] = [];
  // No connection is made yet: constructing the client here keeps after() safe if before() fails.
  const client = new CriClient(host!.criSocket, { observer: (e) => calls.push(e) });

  before(async () => {
    await client.waitForReady(20_000);
    await client.pullImage({ image: { image } });
  });

  after(async () => {
    // Best effort: leave nothing of ours behind, even when a test failed half-way.
    try {
      const { items } = await client.listPodSandbox({ filter: { labelSelector: RUN_LABEL } });
      for (const sb of items) {
        await client.stopPodSandbox({ podSandboxId: sb.id });
        await client.removePodSandbox({ podSandboxId: sb.id });
      }
    } catch (e) {
      console.error('CRI cleanup failed:', e);
    }
    client.close();
    fs.rmSync(workDir, { recursive: true, force: true });
  });

  it('Version answers containerd, API v1', async () => {
    const v = await client.version();
    assert.equal(v.runtimeName, 'containerd');
    assert.equal(v.runtimeApiVersion, 'v1');
    assert.match(v.runtimeVersion, /\d+\.\d+/);
  });

  it('Status reports the runtime ready', async () => {
    const s = await client.status();
    const ready = s.status?.conditions.find((c) => c.type === 'RuntimeReady');
    assert.equal(ready?.status, true, JSON.stringify(s.status));
  });

  it('ListImages and ImageStatus see the test image, sizes as bigint', async () => {
    const { images } = await client.listImages();
    const img = images.find((i) => i.repoTags.some((t) => t.endsWith(image)));
    assert.ok(img, `${image} not among ${images.flatMap((i) => i.repoTags).join(', ')}`);
    assert.equal(typeof img.size, 'bigint');
    assert.ok(img.size > 0n);
    const status = await client.imageStatus({ image: { image } });
    assert.equal(status.image?.id, img.id);
    const missing = await client.imageStatus({ image: { image: 'localhost/gantry-no-such-image:0' } });
    assert.equal(missing.image, undefined);
  });

  it('ImageFsInfo reports the image filesystem', async () => {
    const { imageFilesystems } = await client.imageFsInfo();
    assert.ok(imageFilesystems.length > 0);
    assert.equal(typeof imageFilesystems[0]?.usedBytes?.value, 'bigint');
  });

  it('a bogus container id is a CriError with NOT_FOUND', async () => {
    const err = await expectCriError(
      client.containerStatus({ containerId: 'gantry-no-such-container' }),
      (e) => {
        assert.ok(e.isNotFound(), `${e.codeName}: ${e.message}`);
        assert.equal(e.codeName, 'NOT_FOUND');
        assert.equal(e.method, 'ContainerStatus');
      },
    );
    assert.match(err.message, /^CRI ContainerStatus failed: NOT_FOUND: .*gantry-no-such-container/);
    const last = calls.at(-1);
    assert.equal(last?.method, 'ContainerStatus');
    assert.equal(last?.codeName, 'NOT_FOUND');
    // The failure leaves the client usable.
    assert.equal((await client.version()).runtimeName, 'containerd');
  });

  it('runs a pod and a container through their lifecycle', async () => {
    const uid = randomUUID();
    const logDirectory = path.join(workDir, 'logs', uid);
    fs.mkdirSync(logDirectory, { recursive: true });
    const sandboxConfig: PodSandboxConfig = {
      metadata: { name: 'cri-client-test', uid, namespace: 'gantry-test' },
      logDirectory,
      labels: { ...RUN_LABEL, pod: uid },
    };
    const { podSandboxId } = await client.runPodSandbox({ config: sandboxConfig });
    const sb = await client.podSandboxStatus({ podSandboxId });
    assert.equal(sb.status?.state, 'SANDBOX_READY');
    // The host's pod range (a kubelet node's, which Gantry's runtime shares): the first three octets of a /24.
    const range = host!.podCIDR.split('.').slice(0, 3).join('.');
    assert.ok(
      (sb.status?.network?.ip ?? '').startsWith(`${range}.`),
      `the CNI bridge gave the sandbox an IP in ${host!.podCIDR}: ${sb.status?.network?.ip}`,
    );
    assert.equal(sb.status?.metadata?.uid, uid);
    assertRecent(sb.status?.createdAt ?? 0n, 'sandbox createdAt');
    const pods = await client.listPodSandbox({ filter: { labelSelector: { pod: uid } } });
    assert.deepEqual(
      pods.items.map((p) => p.id),
      [podSandboxId],
    );

    const { containerId } = await client.createContainer({
      podSandboxId,
      sandboxConfig,
      config: {
        metadata: { name: 'sleeper' },
        image: { image },
        command: ['sh', '-c', 'echo started; trap "exit 0" TERM; while :; do sleep 1; done'],
        envs: [{ key: 'GREETING', value: 'hello' }],
        labels: { ...RUN_LABEL, pod: uid, role: 'sleeper' },
        logPath: 'sleeper.log',
        linux: {
          resources: {
            cpuPeriod: 100_000,
            cpuQuota: 50_000n,
            cpuShares: 512,
            memoryLimitInBytes: 64n << 20n,
          },
          securityContext: { namespaceOptions: { pid: 'CONTAINER' } },
        },
      },
    });
    await client.startContainer({ containerId });

    const running = (await client.containerStatus({ containerId })).status;
    assert.equal(running?.state, 'CONTAINER_RUNNING');
    assert.equal(running?.metadata?.name, 'sleeper');
    assertRecent(running?.startedAt ?? 0n, 'container startedAt');
    assert.equal(running?.finishedAt, 0n);
    assert.equal(nanosToDate(running?.finishedAt ?? 0n), undefined);
    assert.equal(running?.logPath, path.join(logDirectory, 'sleeper.log'));

    const byLabel = await client.listContainers({ filter: { labelSelector: { pod: uid, role: 'sleeper' } } });
    assert.deepEqual(
      byLabel.containers.map((c) => [c.id, c.state]),
      [[containerId, 'CONTAINER_RUNNING']],
    );
    const none = await client.listContainers({ filter: { labelSelector: { pod: uid, role: 'nobody' } } });
    assert.deepEqual(none.containers, []);

    const exec = await client.execSync({
      containerId,
      cmd: ['sh', '-c', 'echo $GREETING; exit 3'],
      timeout: 10,
    });
    assert.equal(exec.stdout.toString(), 'hello\n');
    assert.equal(exec.exitCode, 3);
    await expectCriError(client.execSync({ containerId, cmd: ['/no/such/binary'] }), (e) =>
      assert.equal(e.codeName, 'UNKNOWN', e.message),
    );
    await expectCriError(client.execSync({ containerId, cmd: ['sleep', '5'] }, { timeoutMs: 300 }), (e) =>
      assert.ok(e.isDeadlineExceeded(), e.message),
    );
    const abort = new AbortController();
    const aborted = client.execSync({ containerId, cmd: ['sleep', '5'] }, { signal: abort.signal });
    setTimeout(() => abort.abort(), 100);
    await expectCriError(aborted, (e) => assert.ok(e.isCancelled(), e.message));

    const { stats } = await client.containerStats({ containerId });
    assert.equal(stats?.attributes?.id, containerId);
    assert.ok((stats?.cpu?.usageCoreNanoSeconds?.value ?? 0n) > 0n, 'no CPU usage');
    assert.ok(nanosToSeconds(stats?.cpu?.usageCoreNanoSeconds?.value ?? 0n) < 60);
    assert.ok((stats?.memory?.workingSetBytes?.value ?? 0n) > 0n, 'no working set');
    assertRecent(stats?.cpu?.timestamp ?? 0n, 'CPU sample timestamp');
    const listed = await client.listContainerStats({ filter: { labelSelector: { pod: uid } } });
    assert.deepEqual(
      listed.stats.map((s) => s.attributes?.id),
      [containerId],
    );

    await client.updateContainerResources({ containerId, linux: { memoryLimitInBytes: 128n << 20n } });
    const resources = (await client.containerStatus({ containerId })).status?.resources?.linux;
    assert.equal(resources?.memoryLimitInBytes, 128n << 20n);
    assert.equal(resources?.cpuQuota, 50_000n);
    await client.reopenContainerLog({ containerId });

    await client.stopContainer({ containerId, timeout: 5 });
    const exited = (await client.containerStatus({ containerId })).status;
    assert.equal(exited?.state, 'CONTAINER_EXITED');
    assert.equal(exited?.exitCode, 0);
    assert.ok((exited?.finishedAt ?? 0n) >= (exited?.startedAt ?? 0n));
    // CRI log format: TIMESTAMP STREAM TAG MESSAGE.
    assert.match(fs.readFileSync(path.join(logDirectory, 'sleeper.log'), 'utf8'), /^\S+ stdout F started$/m);
    await client.removeContainer({ containerId });
    await expectCriError(client.containerStatus({ containerId }), (e) => assert.ok(e.isNotFound()));

    await client.stopPodSandbox({ podSandboxId });
    await client.removePodSandbox({ podSandboxId });
    assert.deepEqual((await client.listPodSandbox({ filter: { id: podSandboxId } })).items, []);
  });

  it('GetContainerEvents is UNIMPLEMENTED on containerd 1.x and streams on 2.x', async () => {
    const major = Number((await client.version()).runtimeVersion.replace(/^v/, '').split('.')[0]);
    const abort = new AbortController();
    const events = client.getContainerEvents({}, { signal: abort.signal });
    if (major < 2) {
      await expectCriError(events.next(), (e) => assert.ok(e.isUnimplemented(), e.message));
    } else {
      setTimeout(() => abort.abort(), 300);
      for await (const ev of events) assert.equal(typeof ev.createdAt, 'bigint');
    }
  });

  it('fails fast while containerd is down and reconnects after it restarts', async () => {
    const other = new CriClient(restartHost!.criSocket);
    try {
      assert.equal((await other.version()).runtimeName, 'containerd');
      await stopRuntime(restartHost!.name);
      const t0 = performance.now();
      const err = await expectCriError(other.version(), (e) => assert.ok(e.isUnavailable(), e.message));
      assert.ok(performance.now() - t0 < 2_000, `took ${performance.now() - t0} ms to fail`);
      assert.ok(err.message.includes(restartHost!.criSocket), err.message);
      await expectCriError(other.waitForReady(200), (e) => assert.ok(e.isUnavailable(), e.message));

      // A call that asks to wait rides out the restart instead of failing.
      const waiting = other.version({}, { waitForReady: true, timeoutMs: 20_000 });
      await startRuntime(restartHost!.name);
      const t1 = performance.now();
      await other.waitForReady(10_000);
      assert.ok(performance.now() - t1 < 5_000, `reconnect took ${performance.now() - t1} ms`);
      assert.equal((await waiting).runtimeName, 'containerd');
      assert.equal((await other.version()).runtimeName, 'containerd');
    } finally {
      other.close();
    }
  });
});
