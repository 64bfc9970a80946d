import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SimulatedRuntime } from '../../../bench/support/simulated-runtime.js';
import { kubeletPods, sharedWithKubelet } from '../../../src/agent/kubeletruntime.js';
import { labels, managedByValue } from '../../../src/agent/runtimespec.js';

function sandbox(name: string, sandboxLabels: Record<string, string>) {
  return { config: { metadata: { name, namespace: 'ns', uid: name, attempt: 0 }, labels: sandboxLabels } };
}

test('a runtime with only Gantry sandboxes is not shared with a kubelet', async () => {
  const cri = new SimulatedRuntime();
  await cri.runPodSandbox(sandbox('web', { [labels.managedBy]: managedByValue, [labels.uid]: 'u1' }));
  assert.deepEqual(await kubeletPods(cri), []);
  assert.equal(await sharedWithKubelet(cri), undefined);
});

test("a runtime that holds a kubelet pod's sandbox is refused, naming the pods and the way out", async () => {
  const cri = new SimulatedRuntime();
  await cri.runPodSandbox(sandbox('web', { [labels.managedBy]: managedByValue, [labels.uid]: 'u1' }));
  for (const pod of ['coredns-1', 'proxy', 'agent', 'extra']) {
    await cri.runPodSandbox(
      sandbox(pod, { 'io.kubernetes.pod.name': pod, 'io.kubernetes.pod.namespace': 'kube-system' }),
    );
  }
  assert.deepEqual((await kubeletPods(cri)).sort(), [
    'kube-system/agent',
    'kube-system/coredns-1',
    'kube-system/extra',
    'kube-system/proxy',
  ]);
  const refusal = await sharedWithKubelet(cri);
  assert.match(
    refusal ?? '',
    /kubelet's pods \(kube-system\/\S+, kube-system\/\S+, kube-system\/\S+ and 1 more\)/,
  );
  assert.match(refusal ?? '', /agent\.runtime\.socket/);
  assert.match(refusal ?? '', /--allow-runtime-shared-with-kubelet=true/);
});
