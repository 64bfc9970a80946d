// A Host's labels are its Node's, copied here. Labels decide where Workloads go, and the agent
// runs on the machine its Host describes: if it wrote them, one compromised node could give its
// Host any label (node-restriction.kubernetes.io/tenant=bank, say) and draw another tenant's
// Containers to it. The kubelet's NodeRestriction admission keeps a node from giving its Node such
// labels; copying the Node's keeps that guarantee for the Host. The agent sets only
// kubernetes.io/hostname when it creates its Host, and the admission policy lets it change no label
// after that. Labels people put on a Host themselves stay: each writer owns its own (server-side
// apply), and a label leaves the Host when it leaves the Node.
import type { V1Node } from '@kubernetes/client-node';
import type { Host } from '../api/v1alpha1/index.js';
import { isApplyNoop } from '../kube/apply.js';
import type { ReconcileResult, Reconciler } from '../kube/controller.js';
import type { CustomResourceClient } from '../kube/customresource.js';
import { isConflict, isNotFound } from '../kube/errors.js';
import { watch } from '../kube/manager.js';
import { resourceClient } from '../kube/resources.js';
import type { Cache } from '../kube/store.js';
import { realClock } from '../kube/clock.js';
import { sharedCaches } from './caches.js';
import { fieldManager, type ControllerContext } from './context.js';

/** The field manager of the copied labels, apart from the controller's other writes to Hosts. */
export const nodeLabelsFieldManager = `${fieldManager}/node-labels`;

export function setupHostLabelController(ctx: ControllerContext): void {
  const caches = sharedCaches(ctx, realClock);
  const nodes = ctx.manager.informer<V1Node>({ path: '/api/v1/nodes' });
  ctx.manager.controller({
    name: 'host-labels',
    kind: 'Host',
    reconciler: new HostLabelReconciler({
      hosts: caches.hosts.cache,
      nodes: nodes.cache,
      hostsApi: resourceClient(ctx.client, 'Host'),
    }),
    workers: 1,
    // A Host and its Node share their name, and so their key.
    watches: [watch(caches.hosts), watch(nodes)],
  });
}

export interface HostLabelDeps {
  hosts: Cache<Host>;
  nodes: Cache<V1Node>;
  hostsApi: Pick<CustomResourceClient<Host>, 'apply'>;
}

export class HostLabelReconciler implements Reconciler {
  constructor(private readonly deps: HostLabelDeps) {}

  async reconcile(name: string): Promise<ReconcileResult | void> {
    const host = this.deps.hosts.get(name);
    if (!host) return;
    // The UID makes the apply fail on a Host deleted meanwhile instead of creating one.
    const metadata = {
      name,
      uid: host.metadata.uid,
      labels: this.deps.nodes.get(name)?.metadata?.labels ?? {},
    };
    if (isApplyNoop({ metadata }, host, nodeLabelsFieldManager)) return;
    try {
      await this.deps.hostsApi.apply(
        { apiVersion: 'gantry.dev/v1alpha1', kind: 'Host', metadata },
        { fieldManager: nodeLabelsFieldManager },
      );
    } catch (e) {
      // Deleted (and perhaps registered again, with another UID: its own event follows).
      if (!isNotFound(e) && !isConflict(e)) throw e;
    }
  }
}
