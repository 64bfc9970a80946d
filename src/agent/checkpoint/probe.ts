// Whether this host can checkpoint and restore a container through CRI, answered by doing it:
// run a small container, CheckpointContainer it to an archive, then restore the archive into a
// fresh sandbox and see it run. Reading the runtime's version is not enough: CRIU also needs the
// kernel, the runtime's configuration and the criu binary to cooperate.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type CriClient, CriError, type PodSandboxConfig } from '../../cri/client.js';

export interface CheckpointProbeResult {
  works: boolean;
  /** How it went, in words a user can act on. */
  detail: string;
}

const probeLabel = 'gantry.dev/checkpoint-probe';

/** Removes what an interrupted probe left behind (its sandboxes carry probeLabel). */
async function removeProbeSandboxes(cri: CriClient): Promise<void> {
  const { items } = await cri.listPodSandbox({ filter: { labelSelector: { [probeLabel]: 'true' } } });
  for (const s of items) {
    await cri.stopPodSandbox({ podSandboxId: s.id });
    await cri.removePodSandbox({ podSandboxId: s.id });
  }
}

async function waitRunning(cri: CriClient, containerId: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { status } = await cri.containerStatus({ containerId });
    if (status?.state === 'CONTAINER_RUNNING') return;
    if (status?.state === 'CONTAINER_EXITED') {
      throw new Error(`the probe container exited (${status.reason} ${status.message})`.trim());
    }
    await sleep(100);
  }
  throw new Error('the probe container did not reach Running');
}

function sandboxConfig(workDir: string, attempt: string): PodSandboxConfig {
  const uid = crypto.randomUUID();
  const logDirectory = path.join(workDir, 'logs', uid);
  fs.mkdirSync(logDirectory, { recursive: true });
  return {
    metadata: { name: `checkpoint-probe-${attempt}`, uid, namespace: 'gantry-system' },
    hostname: 'checkpoint-probe',
    logDirectory,
    labels: { [probeLabel]: 'true' },
  };
}

async function runProbe(cri: CriClient, image: string, workDir: string): Promise<string> {
  await cri.pullImage({ image: { image } });
  const archive = path.join(workDir, `probe-${crypto.randomUUID()}.tar`);

  const source = sandboxConfig(workDir, 'source');
  const { podSandboxId: sourceSandbox } = await cri.runPodSandbox({ config: source });
  const { containerId: sourceId } = await cri.createContainer({
    podSandboxId: sourceSandbox,
    sandboxConfig: source,
    config: {
      metadata: { name: 'probe' },
      image: { image },
      command: ['/bin/sh', '-c', 'trap "exit 0" TERM; while :; do sleep 1; done'],
      logPath: 'probe.log',
      // Its own PID namespace, as kubelet does: restored PIDs then cannot collide with the sandbox's.
      linux: { securityContext: { namespaceOptions: { pid: 'CONTAINER' } } },
      // containerd < 2.3 crashes restoring a checkpoint of a container without annotations.
      annotations: { [probeLabel]: 'true' },
    },
  });
  await cri.startContainer({ containerId: sourceId });
  await waitRunning(cri, sourceId, 30_000);

  const started = Date.now();
  await cri.checkpointContainer({ containerId: sourceId, location: archive, timeout: 60 });
  const dumped = Date.now();
  await cri.stopPodSandbox({ podSandboxId: sourceSandbox });
  await cri.removePodSandbox({ podSandboxId: sourceSandbox });

  const target = sandboxConfig(workDir, 'target');
  const { podSandboxId: targetSandbox } = await cri.runPodSandbox({ config: target });
  // Restore: CreateContainer with the checkpoint archive as its image (containerd 2.x).
  const { containerId: restoredId } = await cri.createContainer({
    podSandboxId: targetSandbox,
    sandboxConfig: target,
    config: { metadata: { name: 'probe' }, image: { image: archive }, logPath: 'probe.log' },
  });
  await cri.startContainer({ containerId: restoredId });
  await waitRunning(cri, restoredId, 30_000);
  const restored = Date.now();
  const size = fs.statSync(archive).size;
  fs.rmSync(archive, { force: true });
  return `checkpoint ${dumped - started} ms, restore ${restored - dumped} ms, archive ${Math.round(size / 1024)} KiB`;
}

/**
 * Answers whether checkpoint/restore works on the runtime behind `cri`. Never throws: every
 * failure becomes a `works: false` answer naming the reason. Leaves nothing behind.
 */
export async function probeCheckpoint(
  cri: CriClient,
  opts: { image: string; workDir: string },
): Promise<CheckpointProbeResult> {
  fs.mkdirSync(opts.workDir, { recursive: true });
  try {
    await removeProbeSandboxes(cri);
    const timings = await runProbe(cri, opts.image, opts.workDir);
    return { works: true, detail: `a test container was checkpointed and restored (${timings})` };
  } catch (e) {
    if (e instanceof CriError && e.isUnimplemented()) {
      const v = await cri.version().catch(() => undefined);
      const runtime = v ? `${v.runtimeName} ${v.runtimeVersion}` : 'the runtime';
      return { works: false, detail: `${runtime} does not implement CRI CheckpointContainer` };
    }
    return { works: false, detail: (e as Error).message.split('\n')[0] ?? String(e) };
  } finally {
    await removeProbeSandboxes(cri).catch(() => undefined);
    fs.rmSync(path.join(opts.workDir, 'logs'), { recursive: true, force: true });
  }
}
