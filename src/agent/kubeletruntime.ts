// A runtime shared with a kubelet cannot host Gantry's containers: the kubelet lists every CRI
// sandbox on its runtime and removes those no Pod owns, Gantry's included, within seconds and
// again whenever the agent recreates them (seen on the local cluster; the kubelet's pod cleanup in
// pkg/kubelet/kuberuntime). So the agent looks before it starts: sandboxes the kubelet made carry
// the pod's labels.
import type { AgentRuntime } from '../cri/client.js';

/** Labels the kubelet sets on every pod sandbox (pkg/kubelet/types/labels.go). */
const podNameLabel = 'io.kubernetes.pod.name';
const podNamespaceLabel = 'io.kubernetes.pod.namespace';

/** The kubelet pods this runtime runs, as namespace/name. */
export async function kubeletPods(cri: Pick<AgentRuntime, 'listPodSandbox'>): Promise<string[]> {
  const { items } = await cri.listPodSandbox({});
  return items
    .filter((s) => s.labels[podNameLabel] !== undefined)
    .map((s) => `${s.labels[podNamespaceLabel] ?? ''}/${s.labels[podNameLabel]}`);
}

/** Why the agent will not use this runtime, or undefined when it may. */
export async function sharedWithKubelet(
  cri: Pick<AgentRuntime, 'listPodSandbox'>,
): Promise<string | undefined> {
  const pods = await kubeletPods(cri);
  if (pods.length === 0) return undefined;
  const shown = pods.slice(0, 3).join(', ') + (pods.length > 3 ? ` and ${pods.length - 3} more` : '');
  return (
    `the runtime also runs the kubelet's pods (${shown}): the kubelet would remove Gantry's containers. ` +
    `Give the agent a containerd of its own (the chart's agent.runtime.socket; docs/operations.md), ` +
    `or pass --allow-runtime-shared-with-kubelet=true to use it anyway`
  );
}
