// The node agent against real containerd hosts and the real apiserver: Containers pinned to a
// host (spec.nodeName) run, answer, restart by their policy (every restart counted, even when the
// sandbox was removed behind the agent's back), report health and errors, survive an
// agent crash without duplicates (by the runtime's record of every container it created), and
// leave nothing behind when deleted; processes that ignore SIGTERM do not keep others from
// starting. No controller runs here.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { Container, Host } from '../../../src/api/v1alpha1/index.js';
import { CriClient } from '../../../src/cri/client.js';
import { labels } from '../../../src/agent/runtimespec.js';
import { agentPorts, installCrds, startAgent, stopAgent } from '../../../src/localcluster/gantry.js';
import { getObject, kubectl, kubectlOk, localCluster } from '../../support/cluster.js';
import { nanosIso, RuntimeRecorder } from '../../support/runtime.js';
import { eventually } from '../../support/wait.js';

const cluster = localCluster();
const [host1, host2] = cluster.hosts.map((h) => h.name) as [string, string];
const cri = Object.fromEntries(cluster.hosts.map((h) => [h.name, new CriClient(h.criSocket)]));
const ns = `agent-it-${process.pid}`;
const agentArgs = [
  '--restart-backoff-seconds=1',
  '--restart-backoff-max-seconds=4',
  '--report-interval-seconds=5',
];

function manifest(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: 'gantry.dev/v1alpha1',
    kind: 'Container',
    metadata: { name, namespace: ns },
    spec,
  });
}

async function apply(name: string, spec: Record<string, unknown>): Promise<void> {
  await kubectlOk(['apply', '-f', '-'], { input: manifest(name, spec) });
}

function getContainer(name: string): Promise<Container | undefined> {
  return getObject<Container>(['containers.gantry.dev', '-n', ns, name]);
}

/** Waits until the Container's status satisfies `ok`, and returns it. */
function waitStatus(
  name: string,
  what: string,
  ok: (s: NonNullable<Container['status']>) => boolean,
  timeoutMs = 60_000,
) {
  let seen: unknown;
  return eventually(
    `${name}: ${what}`,
    async () => {
      const c = await getContainer(name);
      seen = c?.status;
      return c?.status && ok(c.status) ? c : undefined;
    },
    { timeoutMs },
  ).catch((e: Error) => {
    throw new Error(`${e.message}; status: ${JSON.stringify(seen)}`);
  });
}

const running = (s: NonNullable<Container['status']>) => s.phase === 'Running';

async function runtimeObjects(
  host: string,
  uid: string,
): Promise<{ sandboxes: number; containers: string[] }> {
  const selector = { [labels.uid]: uid };
  const [{ items }, { containers }] = await Promise.all([
    cri[host]!.listPodSandbox({ filter: { labelSelector: selector } }),
    cri[host]!.listContainers({ filter: { labelSelector: selector } }),
  ]);
  return { sandboxes: items.length, containers: containers.map((c) => c.state) };
}

before(async () => {
  await installCrds(cluster);
  await kubectlOk(['create', 'namespace', ns]);
  await Promise.all([startAgent(cluster, host1, agentArgs), startAgent(cluster, host2, agentArgs)]);
});

after(async () => {
  await kubectl(['delete', 'containers.gantry.dev', '--all', '-n', ns, '--wait=true', '--timeout=90s']);
  await kubectl(['delete', 'images.gantry.dev', '--all', '-n', ns, '--wait=true']);
  await kubectl(['delete', 'namespace', ns, '--wait=false']);
  await kubectl(['label', 'host', host2, 'gantry.test/pool-']);
  await Promise.all([stopAgent(host1), stopAgent(host2)]);
  for (const c of Object.values(cri)) c.close();
});

describe('containers run', () => {
  test('a web container answers HTTP on its IP and a counter container counts', async () => {
    await apply('web', { image: cluster.images.web, nodeName: host1, ports: [{ containerPort: 8080 }] });
    await apply('counter', { image: cluster.images.counter, nodeName: host2 });
    const web = await waitStatus('web', 'Running with an IP', (s) => running(s) && !!s.ip);
    const page = await eventually('the web page', () =>
      fetch(`http://${web.status!.ip}:8080/`)
        .then((r) => r.text())
        .catch(() => undefined),
    );
    assert.equal(page, 'gantry web v1\n');
    assert.equal(web.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');

    const counter = await waitStatus('counter', 'Running', running);
    const read = async () => {
      const r = await cri[host2]!.execSync({
        containerId: counter.status!.containerID!,
        cmd: ['cat', '/tmp/count'],
        timeout: 5,
      });
      return Number(r.stdout.toString().trim());
    };
    const first = await eventually('a first count', async () => (await read()) || undefined);
    const later = await eventually('the count to grow', async () =>
      (await read()) > first ? await read() : undefined,
    );
    assert.ok(later > first);
  });

  test('gantry logs prints a container output', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [
      '--import',
      'tsx',
      'src/cmd/logs.ts',
      `${ns}/counter`,
      '--tail',
      '2',
    ]);
    const lines = stdout.trim().split('\n');
    assert.equal(lines.length, 2);
    for (const line of lines) assert.match(line, /^count \d+$/);
  });
});

describe('containers run at the baseline level, and as their securityContext says', () => {
  /** /proc/1/status of the Container's process, as fields. */
  const processStatus = async (c: Container, host: string) => {
    const r = await cri[host]!.execSync({
      containerId: c.status!.containerID!,
      cmd: ['cat', '/proc/1/status'],
      timeout: 5,
    });
    return Object.fromEntries(
      r.stdout
        .toString()
        .split('\n')
        .map((line) => line.split(':\t') as [string, string]),
    );
  };
  const bit = (hex: string, n: number) => (BigInt(`0x${hex}`) >> BigInt(n)) & 1n;

  test('every container: seccomp filter on, no_new_privs, no NET_RAW', async () => {
    await apply('baseline', { image: cluster.images.web, nodeName: host1 });
    const c = await waitStatus('baseline', 'Running', running);
    const status = await processStatus(c, host1);
    assert.equal(status.Seccomp, '2', 'the runtime default seccomp profile filters system calls');
    assert.equal(status.NoNewPrivs, '1');
    assert.equal(bit(status.CapBnd!, 13), 0n, 'CAP_NET_RAW (13) is dropped');
    assert.equal(bit(status.CapBnd!, 10), 1n, 'CAP_NET_BIND_SERVICE (10) is kept');
  });

  test('runAsUser, runAsGroup, a read-only root filesystem and capabilities dropped to ALL', async () => {
    await apply('confined', {
      image: cluster.images.web,
      nodeName: host2,
      securityContext: {
        runAsUser: 65534,
        runAsGroup: 65534,
        runAsNonRoot: true,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      },
    });
    const c = await waitStatus('confined', 'Running', running);
    const status = await processStatus(c, host2);
    assert.match(status.Uid!, /^65534\t/);
    assert.match(status.Gid!, /^65534\t/);
    assert.equal(BigInt(`0x${status.CapBnd}`), 0n, 'no capability at all');
    const write = await cri[host2]!.execSync({
      containerId: c.status!.containerID!,
      cmd: ['touch', '/written'],
      timeout: 5,
    });
    assert.notEqual(write.exitCode, 0, 'the root filesystem is read-only');
    assert.match(write.stderr.toString(), /Read-only file system/);
  });

  test('runAsNonRoot refuses an image that runs as root, and says how to fix it', async () => {
    await apply('rooted', {
      image: cluster.images.web,
      nodeName: host1,
      securityContext: { runAsNonRoot: true },
    });
    const c = await waitStatus('rooted', 'refused', (s) => s.reason === 'CreateContainerConfigError');
    assert.match(c.status?.message ?? '', /runs as root .* set securityContext.runAsUser/);
    assert.equal(c.status?.conditions?.find((x) => x.type === 'Stalled')?.status, 'True');
    assert.deepEqual(await runtimeObjects(host1, c.metadata.uid!), { sandboxes: 0, containers: [] });
  });
});

describe('health checks and restart policies', () => {
  test('a failing health check flips Ready to False', async () => {
    await apply('flaky', {
      image: cluster.images.web,
      nodeName: host1,
      command: [
        '/bin/sh',
        '-c',
        'touch /tmp/ok; sleep 4; rm /tmp/ok; trap "exit 0" TERM; while :; do sleep 1; done',
      ],
      healthCheck: {
        exec: { command: ['cat', '/tmp/ok'] },
        intervalSeconds: 1,
        timeoutSeconds: 2,
        retries: 1,
      },
    });
    const ready = (c: Container) => c.status?.conditions?.find((x) => x.type === 'Ready');
    const healthy = await waitStatus('flaky', 'Healthy', (s) => s.health === 'Healthy');
    assert.equal(ready(healthy)?.status, 'True');
    const unhealthy = await waitStatus('flaky', 'Unhealthy', (s) => s.health === 'Unhealthy');
    assert.equal(ready(unhealthy)?.status, 'False');
    assert.equal(ready(unhealthy)?.reason, 'Unhealthy');
    assert.match(ready(unhealthy)?.message ?? '', /cat \/tmp\/ok exited with 1/);
    assert.equal(
      unhealthy.status?.phase,
      'Running',
      'an unhealthy container is not restarted (Docker semantics)',
    );
  });

  test('Always restarts a crashing process with back-off (CrashLoopBackOff)', async () => {
    await apply('crash-always', {
      image: cluster.images.web,
      nodeName: host2,
      command: ['/bin/sh', '-c', 'exit 1'],
    });
    const backing = await waitStatus(
      'crash-always',
      'in back-off after two restarts',
      (s) => (s.restartCount ?? 0) >= 2 && s.phase === 'Restarting',
    );
    assert.equal(backing.status?.exitCode, 1);
    assert.equal(backing.status?.reason, 'CrashLoopBackOff');
    assert.ok(backing.status?.nextRestartAt);
  });

  test('OnFailure leaves a clean exit alone and restarts a failing one', async () => {
    await apply('onfailure-ok', {
      image: cluster.images.web,
      nodeName: host1,
      restartPolicy: 'OnFailure',
      command: ['/bin/sh', '-c', 'exit 0'],
    });
    await apply('onfailure-bad', {
      image: cluster.images.web,
      nodeName: host1,
      restartPolicy: 'OnFailure',
      command: ['/bin/sh', '-c', 'exit 2'],
    });
    const ok = await waitStatus('onfailure-ok', 'Succeeded', (s) => s.phase === 'Succeeded');
    assert.equal(ok.status?.restartCount, 0);
    assert.equal(ok.status?.exitCode, 0);
    await waitStatus('onfailure-bad', 'restarted', (s) => (s.restartCount ?? 0) >= 1);
  });

  test('Never leaves a failed process Failed with its exit code', async () => {
    await apply('never', {
      image: cluster.images.web,
      nodeName: host2,
      restartPolicy: 'Never',
      command: ['/bin/sh', '-c', 'echo oops >&2; exit 7'],
    });
    const c = await waitStatus('never', 'Failed', (s) => s.phase === 'Failed');
    assert.equal(c.status?.exitCode, 7);
    assert.equal(c.status?.restartCount, 0);
    assert.match(c.status?.message ?? '', /exit code 7/);
  });
});

describe('restarts are counted whatever removed the container', () => {
  test("a sandbox removed behind the agent's back: the next start counts, by the runtime's record", async () => {
    // What a kubelet sharing the runtime did: killed the containers (exit 137) and removed the
    // sandbox, the runtime's own record of the attempt with it.
    const { result: last, runs: all } = await RuntimeRecorder.during({ [host1]: cri[host1]! }, async () => {
      await apply('outside', { image: cluster.images.counter, nodeName: host1 });
      const first = await waitStatus('outside', 'Running', running);
      assert.equal(first.status?.restartCount, 0);
      // Retried as a kubelet retries: the agent may be removing the exited attempt at that moment
      // ("already in removing state").
      const removeSandbox = (c: Container) =>
        eventually(
          `sandbox ${c.status!.sandboxID} removed`,
          async () => {
            await cri[host1]!.stopPodSandbox({ podSandboxId: c.status!.sandboxID! });
            await cri[host1]!.removePodSandbox({ podSandboxId: c.status!.sandboxID! });
            return true;
          },
          { timeoutMs: 10_000 },
        );
      await removeSandbox(first);
      const second = await waitStatus(
        'outside',
        'Running in a new sandbox',
        (s) => running(s) && s.sandboxID !== first.status!.sandboxID,
      );
      assert.equal(second.status?.restartCount, 1, 'the start after the first is a restart');
      // Killed, then its sandbox removed while the agent handles the exit.
      await cri[host1]!.stopContainer({ containerId: second.status!.containerID!, timeout: 0 });
      await removeSandbox(second);
      return waitStatus(
        'outside',
        'Running in a third sandbox',
        (s) => running(s) && s.sandboxID !== second.status!.sandboxID,
      );
    });
    const runs = all.filter((r) => r.labels[labels.uid] === last.metadata.uid);
    const started = runs.filter((r) => r.startedAt !== undefined);
    assert.ok(started.length >= 3, `${started.length} starts recorded`);
    assert.equal(last.status?.restartCount, started.length - 1, 'every start after the first is counted');
    const { status } = await cri[host1]!.containerStatus({ containerId: last.status!.containerID! });
    assert.equal(status?.metadata?.attempt, last.status?.restartCount, "the runtime's attempt says the same");
  });
});

describe('errors show their reason and never block other containers', () => {
  const secret = (name: string, password: string) =>
    kubectlOk([
      'create',
      'secret',
      'docker-registry',
      name,
      '-n',
      ns,
      `--docker-server=${cluster.authRegistry.address}`,
      `--docker-username=${cluster.authRegistry.username}`,
      `--docker-password=${password}`,
    ]);

  test('missing tag, unreachable registry, missing and bad credentials', async () => {
    await secret('good-creds', cluster.authRegistry.password);
    await secret('bad-creds', 'wrong-password');
    await apply('missing-tag', { image: `${cluster.registry}/gantry/web:no-such-tag`, nodeName: host1 });
    await apply('no-registry', { image: '127.0.0.1:5999/gantry/web:1', nodeName: host1 });
    // Always: a copy pulled with good credentials must not let these run without them.
    await apply('no-login', {
      image: cluster.authRegistry.image,
      nodeName: host1,
      imagePullPolicy: 'Always',
    });
    await apply('bad-login', {
      image: cluster.authRegistry.image,
      nodeName: host1,
      imagePullPolicy: 'Always',
      imagePullSecrets: [{ name: 'bad-creds' }],
    });
    await apply('no-secret', {
      image: cluster.authRegistry.image,
      nodeName: host1,
      imagePullPolicy: 'Always',
      imagePullSecrets: [{ name: 'nope' }],
    });
    await apply('good-login', {
      image: cluster.authRegistry.image,
      nodeName: host1,
      imagePullSecrets: [{ name: 'good-creds' }],
    });
    // Created after the failing ones, on the same host: it must not wait for them.
    await apply('bystander', { image: cluster.images.web, nodeName: host1 });

    const reasons: Record<string, RegExp> = {
      'missing-tag': /^ImageNotFound$/,
      'no-registry': /^RegistryUnavailable$/,
      'no-login': /^ImagePullUnauthorized$/,
      'bad-login': /^ImagePullUnauthorized$/,
      'no-secret': /^ImagePullSecretMissing$/,
    };
    for (const [name, reason] of Object.entries(reasons)) {
      const c = await waitStatus(name, `reason ${reason}`, (s) => reason.test(s.reason ?? ''));
      assert.equal(c.status?.phase, 'Creating');
      assert.ok((c.status?.message ?? '').length > 0, `${name} has a message`);
    }
    await waitStatus('good-login', 'Running with the right credentials', running);
    await waitStatus('bystander', 'Running', running);
    // The private image is on host-1 now; without credentials it is still not everyone's to run.
    await apply('borrower', { image: cluster.authRegistry.image, nodeName: host1 });
    const borrower = await waitStatus('borrower', 'refused', (s) => s.reason === 'ImagePullUnauthorized');
    assert.deepEqual(await runtimeObjects(host1, borrower.metadata.uid!), { sandboxes: 0, containers: [] });
    const events = await kubectlOk([
      'get',
      'events',
      '-n',
      ns,
      '--field-selector',
      'involvedObject.name=missing-tag',
      '-o',
      'json',
    ]);
    assert.ok(
      (JSON.parse(events) as { items: { type: string; reason: string }[] }).items.some(
        (e) => e.type === 'Warning' && e.reason === 'ImageNotFound',
      ),
      'a Warning event says ImageNotFound',
    );
  });
});

describe('a tenant cannot stall a host', () => {
  test('processes that ignore SIGTERM hold no worker: while ten use their grace period, another Container starts', async () => {
    // More than the agent's 8 workers: with stops held in workers, the latecomer waited a grace period.
    const stubborn = Array.from({ length: 10 }, (_, i) => `stubborn-${i}`);
    await Promise.all(
      stubborn.map((n) =>
        apply(n, {
          image: cluster.images.web,
          nodeName: host2,
          command: ['sh', '-c', 'trap "" TERM; while :; do sleep 1; done'],
          terminationGracePeriodSeconds: 20,
        }),
      ),
    );
    for (const n of stubborn) await waitStatus(n, 'Running', running);
    const { runs } = await RuntimeRecorder.during({ [host2]: cri[host2]! }, async () => {
      await kubectlOk(['delete', 'containers.gantry.dev', '-n', ns, ...stubborn, '--wait=false']);
      await apply('latecomer', { image: cluster.images.web, nodeName: host2 });
      await waitStatus('latecomer', 'Running', running);
      await eventually(
        'the stubborn Containers to be gone',
        async () =>
          (await kubectlOk(['get', 'containers.gantry.dev', '-n', ns, '-o', 'name']))
            .split('\n')
            .every((line) => !line.includes('stubborn-')),
        { timeoutMs: 90_000 },
      );
    });
    const named = (prefix: string) => runs.filter((r) => r.labels[labels.name]?.startsWith(prefix));
    const [late] = named('latecomer');
    assert.ok(late?.startedAt, 'the latecomer started');
    const stopped = named('stubborn-');
    assert.equal(stopped.length, 10);
    for (const r of stopped)
      assert.ok(
        r.finishedAt !== undefined && r.finishedAt > late.startedAt,
        `${r.labels[labels.name]} stopped at ${nanosIso(r.finishedAt)}, before the latecomer started at ${nanosIso(late.startedAt)}: the latecomer waited for a stop`,
      );
  });
});

describe('the agent restarts without running anything twice', () => {
  test('kill the agent mid-work: no duplicates, no losses, statuses right again', async () => {
    const names = Array.from({ length: 6 }, (_, i) => `burst-${i}`);
    // host-2's containerd records every container it creates from here on: a duplicate made and
    // removed again while the agent came back would not show in the end state, but shows here.
    const recorded = await RuntimeRecorder.during({ [host2]: cri[host2]! }, async () => {
      await Promise.all(names.map((n) => apply(n, { image: cluster.images.web, nodeName: host2 })));
      // Mid-work: some created, some not.
      await eventually('a first burst container to be Running', async () => {
        for (const n of names) if ((await getContainer(n))?.status?.phase === 'Running') return true;
        return undefined;
      });
      await stopAgent(host2, 'SIGKILL');
      await startAgent(cluster, host2, agentArgs);
      return Promise.all(names.map((n) => waitStatus(n, 'Running after the restart', running)));
    });
    const all = recorded.result;
    const runs = recorded.runs.filter((r) => r.labels[labels.namespace] === ns);
    for (const c of all) {
      const mine = runs.filter((r) => r.labels[labels.uid] === c.metadata.uid);
      // A start cut short by the kill (its gRPC call cancelled) leaves a container that containerd
      // marks exited without ever starting it; the next attempt replaces it. Nothing ran twice as
      // long as exactly one of them ever started, and that one still runs.
      const ran = mine.filter((r) => r.startedAt !== undefined);
      assert.deepEqual(
        ran.map((r) => ({ id: r.id, finished: r.finishedAt !== undefined })),
        [{ id: c.status?.containerID, finished: false }],
        `${c.metadata.name}: exactly one runtime container ever started, the one in status, and it runs (created: ${mine
          .map((r) => `${r.id.slice(0, 12)} ${r.events.map((e) => e.type).join('/')}`)
          .join(', ')})`,
      );
    }
    for (const c of all) {
      const rt = await runtimeObjects(host2, c.metadata.uid!);
      assert.equal(rt.sandboxes, 1, `${c.metadata.name}: one sandbox`);
      assert.deepEqual(rt.containers, ['CONTAINER_RUNNING'], `${c.metadata.name}: one running container`);
      const { containers } = await cri[host2]!.listContainers({
        filter: { labelSelector: { [labels.uid]: c.metadata.uid! } },
      });
      assert.equal(
        c.status?.containerID,
        containers[0]?.id,
        `${c.metadata.name}: status names the runtime container`,
      );
    }
  });

  test('deleting a Container leaves nothing in the runtime', async () => {
    const web = await waitStatus('web', 'Running', running);
    await kubectlOk(['delete', 'containers.gantry.dev', '-n', ns, 'web', '--wait=true', '--timeout=60s']);
    assert.deepEqual(await runtimeObjects(host1, web.metadata.uid!), { sandboxes: 0, containers: [] });
  });
});

describe('images are kept warm where their Image selects', () => {
  test('an Image with a node selector ends up on exactly the matching hosts', async () => {
    const image = cluster.images.web2;
    for (const h of [host1, host2]) {
      if ((await cri[h]!.imageStatus({ image: { image } })).image)
        await cri[h]!.removeImage({ image: { image } });
    }
    // The controller copies Node labels to Hosts; none runs here, so the Host is labelled.
    await kubectlOk(['label', 'host', host2, 'gantry.test/pool=warm', '--overwrite']);
    await kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Image',
        metadata: { name: 'web2', namespace: ns },
        spec: { image, nodeSelector: { 'gantry.test/pool': 'warm' }, keep: true },
      }),
    });
    await eventually(
      `${image} on ${host2}`,
      async () => (await cri[host2]!.imageStatus({ image: { image } })).image,
    );
    assert.equal(
      (await cri[host1]!.imageStatus({ image: { image } })).image,
      undefined,
      `${image} stays off ${host1}`,
    );

    // keep: something removes it behind the agent's back (every name of it), and it comes back,
    // by tag or by the digest the controller resolved.
    const held = (await cri[host2]!.imageStatus({ image: { image } })).image!;
    await cri[host2]!.removeImage({ image: { image: held.id } });
    const digests = held.repoDigests;
    await eventually(
      `${image} pulled again on ${host2}`,
      async () =>
        (await cri[host2]!.listImages()).images.some((i) => i.repoDigests.some((d) => digests.includes(d))),
      { timeoutMs: 90_000 },
    );
  });
});

describe('the Host', () => {
  const schedulable = async () =>
    (await getObject<Host>(['hosts.gantry.dev', host1]))?.status?.conditions?.find(
      (c) => c.type === 'Schedulable',
    );

  test('follows kubectl cordon on its Node', async () => {
    await kubectlOk(['cordon', host1]);
    try {
      const cordoned = await eventually('Schedulable=False', async () => {
        const c = await schedulable();
        return c?.status === 'False' ? c : undefined;
      });
      assert.equal(cordoned.reason, 'NodeCordoned');
    } finally {
      await kubectlOk(['uncordon', host1]);
    }
    await eventually(
      'Schedulable=True again',
      async () => (await schedulable())?.status === 'True' || undefined,
    );
  });

  test('reports its runtime, checkpoint support, capacity and a fresh heartbeat', async () => {
    const h = (await getObject<Host>(['hosts.gantry.dev', host1]))!;
    assert.equal(h.status?.runtimeVersion, `containerd://${cluster.runtime.version.replace(/^v/, '')}`);
    assert.equal(h.status?.checkpoint?.supported, cluster.checkpoint.works);
    assert.ok(h.status?.capacity?.cpu);
    assert.equal(h.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    const lease = JSON.parse(
      await kubectlOk(['get', 'lease', '-n', 'gantry-system', `gantry-host-${host1}`, '-o', 'json']),
    ) as {
      spec: { renewTime: string; holderIdentity: string };
    };
    assert.equal(lease.spec.holderIdentity, host1);
    assert.ok(Date.now() - Date.parse(lease.spec.renewTime) < 30_000, 'the heartbeat lease is fresh');
  });

  test('the agent exports its metrics', async () => {
    const text = await (await fetch(`http://127.0.0.1:${agentPorts(host2).metrics}/metrics`)).text();
    for (const series of [
      /^gantry_image_pull_duration_seconds_bucket\{.*result="success"/m,
      /^gantry_image_pull_bytes_total /m,
      /^gantry_cri_call_duration_seconds_bucket\{.*method="CreateContainer",result="OK"/m,
      /^gantry_containers\{phase="Running"\} [1-9]/m,
      /^gantry_container_restarts_total\{namespace=/m,
      /^gantry_container_cpu_usage_cores\{namespace=/m,
      /^gantry_container_memory_working_set_bytes\{namespace=/m,
      /^gantry_container_start_duration_seconds_bucket/m,
      /^controller_runtime_reconcile_total\{controller="agent-container"/m,
    ]) {
      assert.match(text, series);
    }
  });
});
