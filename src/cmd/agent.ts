// The node agent's entry point: `npm run start:agent -- --host-name host-1 --cri-socket ...`.
import { setUpAgent } from '../agent/agent.js';
import { sharedWithKubelet } from '../agent/kubeletruntime.js';
import { observeCriCall } from '../agent/metrics.js';
import { CriClient } from '../cri/client.js';
import { parseAgentOptions } from '../agent/options.js';
import { KubeClient, loadKubeConfig } from '../kube/client.js';
import { Manager } from '../kube/manager.js';
import { createLogger } from '../obs/logger.js';

async function main(): Promise<void> {
  let options;
  try {
    options = parseAgentOptions(process.argv.slice(2));
  } catch (e) {
    console.error(`gantry-agent: ${(e as Error).message}`);
    process.exit(2);
  }
  const log = createLogger({ level: options.logLevel, fields: { host: options.hostName } });
  const client = new KubeClient(loadKubeConfig(options.kubeconfig));
  const manager = new Manager({
    client,
    log,
    metricsBindAddress: options.metricsBindAddress,
    healthProbeBindAddress: options.healthProbeBindAddress,
  });
  const cri = new CriClient(options.criSocket, { observer: observeCriCall });
  if (!options.allowRuntimeSharedWithKubelet) {
    // A runtime that is not up yet answers later; the agent's readiness says so meanwhile.
    const refusal = await sharedWithKubelet(cri).catch(() => undefined);
    if (refusal) throw new Error(`gantry-agent: refusing ${options.criSocket}: ${refusal}`);
  }
  setUpAgent(manager, client, options, log, cri);
  log.info('Starting the agent', { criSocket: options.criSocket });
  await manager.run();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
