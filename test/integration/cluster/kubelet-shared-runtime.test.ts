// What a kubelet does to Gantry's containers when both share its containerd, found out on a
// real kubelet node rather than assumed from the kubelet's source: it removes them, again and
// again. This is why the chart's agent drives a containerd of Gantry's own, and why the agent
// refuses a runtime that runs kubelet pods unless told otherwise.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Container } from '../../../src/api/v1alpha1/index.js';
import { labels as runtimeLabels } from '../../../src/agent/runtimespec.js';
import { CriClient } from '../../../src/cri/client.js';
import { kubeletRuntimeSocket } from '../../../src/localcluster/cluster.js';
import {
  agentPorts,
  installCrds,
  startAgent,
  stopAgent,
  stopGantry,
} from '../../../src/localcluster/gantry.js';
import { getObject, kubectl, kubectlOk, localCluster } from '../../support/cluster.js';
import { RuntimeRecorder } from '../../support/runtime.js';
import { eventually } from '../../support/wait.js';

const cluster = localCluster();
const host = cluster.hosts[0]!.name;
const ns = `shared-runtime-${process.pid}`;
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

describe("an agent on the kubelet's own containerd", () => {
  before(async () => {
    if (!cluster.kubelet) throw new Error('this test needs kubelet nodes (npm run cluster:up)');
    await stopGantry(cluster);
    await installCrds(cluster);
    await kubectlOk(['create', 'namespace', ns]);
    // A kubelet pod on that runtime.
    await kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'kubelet-pod', namespace: ns },
        spec: { nodeName: host, containers: [{ name: 'c', image: cluster.images.counter }] },
      }),
    });
    await eventually('the kubelet pod Running', async () => {
      const p = await getObject<{ status?: { phase?: string } }>(['pod', '-n', ns, 'kubelet-pod']);
      return p?.status?.phase === 'Running';
    });
  });

  after(async () => {
    await kubectl(['delete', 'container', '-n', ns, '--all', '--wait=true', '--timeout=60s']);
    await stopAgent(host);
    await kubectl(['delete', 'namespace', ns, '--wait=false']);
  });

  it('is refused at start, naming the kubelet pods it found and the way out', async () => {
    const state = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-shared-'));
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(repoRoot, 'src/cmd/agent.ts'),
        `--host-name=${host}`,
        `--cri-socket=${kubeletRuntimeSocket(host)}`,
        `--kubeconfig=${cluster.kubeconfig}`,
        `--state-dir=${state}`,
        '--metrics-bind-address=0',
        '--health-probe-bind-address=0',
        '--transfer-bind-address=127.0.0.1:0',
      ],
      { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    fs.rmSync(state, { recursive: true, force: true });
    assert.equal(code, 1, output);
    assert.match(output, new RegExp(`the runtime also runs the kubelet's pods \\([^)]*${ns}/kubelet-pod`));
    assert.match(output, /--allow-runtime-shared-with-kubelet=true/);
  });

  it('told to share it anyway, sees the kubelet remove its container, and again after it recreates it', async () => {
    const kubeletRuntime = new CriClient(kubeletRuntimeSocket(host));
    const recorder = await RuntimeRecorder.start({ [host]: kubeletRuntime });
    await startAgent(cluster, host, [
      `--cri-socket=${kubeletRuntimeSocket(host)}`,
      '--allow-runtime-shared-with-kubelet=true',
    ]);
    await kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Container',
        metadata: { name: 'victim', namespace: ns },
        spec: { image: cluster.images.web, nodeName: host, terminationGracePeriodSeconds: 1 },
      }),
    });
    const victim = await eventually(
      'the victim Container to get its UID',
      async () => (await getObject<Container>(['container', '-n', ns, 'victim']))?.metadata.uid,
    );
    // The kubelet cleans up every few seconds; give it time for more than one round.
    await sleep(30_000);
    // The agent's own count of the stops it asked for: none (it stops a container only when its
    // spec changes or its Container goes, and neither happened).
    const metrics = await (await fetch(`http://127.0.0.1:${agentPorts(host).metrics}/metrics`)).text();
    const stops = /^gantry_cri_call_duration_seconds_count\{[^}]*method="StopContainer"[^}]*\} (\d+)/m.exec(
      metrics,
    );
    await stopAgent(host);
    const runs = (await recorder.stop()).filter((r) => r.labels[runtimeLabels.uid] === victim);
    kubeletRuntime.close();
    const started = runs.filter((r) => r.startedAt !== undefined);
    const stopped = started.filter((r) => r.finishedAt !== undefined);
    // The Container was never deleted and the agent stopped nothing: the kubelet did.
    assert.ok(await getObject(['container', '-n', ns, 'victim']), 'the Container still exists');
    assert.ok(started.length >= 2, `the agent started it ${started.length} times`);
    assert.ok(stopped.length >= 2, `${stopped.length} of its ${started.length} runs were stopped`);
    assert.equal(Number(stops?.[1] ?? 0), 0, 'the agent called StopContainer');
    const creates =
      /^gantry_cri_call_duration_seconds_count\{[^}]*method="CreateContainer"[^}]*\} (\d+)/m.exec(metrics);
    assert.ok(Number(creates?.[1] ?? 0) >= 2, 'the same record counts its CreateContainer calls');
    // Restore the host's own agent on Gantry's runtime for the finalizer.
    await startAgent(cluster, host);
  });
});
