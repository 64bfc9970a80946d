// CRI calls the local cluster itself makes on its hosts: read the runtime's version, probe
// checkpoint/restore, and remove every sandbox before a host's containerd is stopped.
import { probeCheckpoint as probe, type CheckpointProbeResult } from '../agent/checkpoint/probe.js';
import { CriClient } from '../cri/client.js';
import { imageRef } from './registry.js';

async function withCri<T>(socket: string, fn: (cri: CriClient) => Promise<T>): Promise<T> {
  const cri = new CriClient(socket);
  try {
    // Reachable and serving: containerd listens a moment before its CRI service is initialized.
    await cri.version({}, { waitForReady: true, timeoutMs: 10_000 });
    return await fn(cri);
  } finally {
    cri.close();
  }
}

export function runtimeVersion(socket: string): Promise<{ name: string; version: string }> {
  return withCri(socket, async (cri) => {
    const v = await cri.version();
    return { name: v.runtimeName, version: v.runtimeVersion };
  });
}

export function probeCheckpoint(socket: string, workDir: string): Promise<CheckpointProbeResult> {
  return withCri(socket, (cri) => probe(cri, { image: imageRef('counter'), workDir }));
}

/** Stops and removes every sandbox (and so every container and its network) on the host. */
export function cleanUpRuntime(socket: string): Promise<void> {
  return withCri(socket, async (cri) => {
    const { items } = await cri.listPodSandbox();
    for (const s of items) {
      await cri.stopPodSandbox({ podSandboxId: s.id });
      await cri.removePodSandbox({ podSandboxId: s.id });
    }
  });
}
