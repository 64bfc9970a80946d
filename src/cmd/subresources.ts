// Gantry's aggregated API server (Containers' logs through the apiserver):
// `npm run start:subresources -- --kubeconfig ...`. src/subresources/index.ts says what it does.
import { KubeClient, loadKubeConfig } from '../kube/client.js';
import { Manager } from '../kube/manager.js';
import { createLogger } from '../obs/logger.js';
import { parseSubresourcesOptions } from '../subresources/options.js';
import { setUpSubresources } from '../subresources/index.js';

async function main(): Promise<void> {
  let options;
  try {
    options = parseSubresourcesOptions(process.argv.slice(2));
  } catch (e) {
    console.error(`gantry-subresources: ${(e as Error).message}`);
    process.exit(2);
  }
  const log = createLogger({ level: options.logLevel, fields: { component: 'subresources' } });
  const client = new KubeClient(loadKubeConfig(options.kubeconfig));
  const manager = new Manager({
    client,
    log,
    metricsBindAddress: options.metricsBindAddress,
    healthProbeBindAddress: options.healthProbeBindAddress,
  });
  setUpSubresources(manager, client, options, log);
  log.info('Starting the aggregated API server', { apiService: options.apiService });
  await manager.run();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
