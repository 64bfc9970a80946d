// The node agent's entry point: `npm run start:agent -- --host-name host-1 --cri-socket ...`.
import { setUpAgent } from '../agent/agent.js';
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
  setUpAgent(manager, client, options, log);
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
