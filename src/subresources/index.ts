// Gantry's aggregated API server (subresources.gantry.dev): Containers' logs, exec and usage for
// users of the Kubernetes API, through the apiserver (an APIService, as metrics-server and
// KubeVirt's virt-api). A process of its own rather than part of the controller: it holds the one
// certificate that reaches every agent's stream endpoint, so only it carries it; it serves from
// every replica (no leader election); and its long-lived streams never share a process with
// reconciliation.
import { CoreV1Api } from '@kubernetes/client-node';
import type { Container, Host } from '../api/v1alpha1/index.js';
import { realClock, sleep } from '../kube/clock.js';
import type { KubeClient } from '../kube/client.js';
import type { Manager } from '../kube/manager.js';
import { resourceClient } from '../kube/resources.js';
import { parseBindAddress } from '../obs/http.js';
import type { Logger } from '../obs/logger.js';
import { Authorizer } from './authorize.js';
import { readRequestHeaderConfig, type RequestHeaderConfig } from './frontproxy.js';
import type { SubresourcesOptions } from './options.js';
import { Pki, type PkiState } from './pki.js';
import { SubresourceServer } from './server.js';

/** How often certificates and the front proxy's settings are read again once all is well. */
const REFRESH_MS = 60_000;

export function setUpSubresources(
  manager: Manager,
  client: KubeClient,
  o: SubresourcesOptions,
  log: Logger,
): void {
  const containers = manager.informer<Container>({
    path: resourceClient(client, 'Container').collectionPath(),
  });
  const hosts = manager.informer<Host>({ path: resourceClient(client, 'Host').collectionPath() });
  const pki = new Pki(o, client, log);
  const core = client.api(CoreV1Api);
  const server = new SubresourceServer({
    containers: containers.cache,
    hosts: hosts.cache,
    authorizer: new Authorizer(client),
    log,
  });
  let problem = 'starting';
  manager.readiness.add('serving', () => {
    if (!server.ready) throw new Error(problem);
  });

  manager.add({
    name: 'subresources',
    needLeaderElection: false,
    start: async (signal) => {
      let applied = '';
      while (!signal.aborted) {
        let settled = false;
        try {
          const state: PkiState | undefined = await pki.ensure();
          const frontProxy: RequestHeaderConfig | undefined = await readRequestHeaderConfig(core);
          if (!frontProxy) {
            problem =
              'the apiserver has no front proxy (--requestheader-client-ca-file): it cannot pass users to aggregated APIs';
            log.warn('Not serving', { reason: problem });
          } else if (state) {
            const wanted = JSON.stringify([state.serving, state.agentClient, frontProxy]);
            if (wanted !== applied) {
              const first = !server.ready;
              server.configure(state.serving, state.agentClient, frontProxy);
              if (first) await server.listen(parseBindAddress(o.bindAddress));
              log.info(first ? 'Serving the aggregated API' : 'TLS settings renewed', {
                bindAddress: o.bindAddress,
                apiService: o.apiService,
              });
              applied = wanted;
            }
            settled = state.registered;
          }
        } catch (e) {
          problem = `setting up TLS failed: ${(e as Error).message}`;
          log.warn('Setting up failed; retrying', { err: e });
        }
        await sleep(realClock, settled ? REFRESH_MS : 3_000, signal);
      }
      await server.close();
    },
  });
}
