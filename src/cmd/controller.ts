// The gantry controller process: parses its flags, builds the manager (metrics, probes, leader
// election) and registers every controller of src/controller/index.ts. Exit codes: 0 after a
// graceful shutdown, 1 when the manager fails (leadership lost, startup error), 2 on bad flags.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { EventsV1Api } from '@kubernetes/client-node';
import { controllers } from '../controller/index.js';
import { controllerUsage, parseControllerFlags } from '../controller/options.js';
import { KubeClient, loadKubeConfig } from '../kube/client.js';
import { EventRecorder } from '../kube/events.js';
import { Manager } from '../kube/manager.js';
import { createLogger } from '../obs/logger.js';

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(controllerUsage());
    return 0;
  }
  const parsed = parseControllerFlags(argv, process.env);
  if (!parsed.ok) {
    process.stderr.write(`gantry-controller: ${parsed.error}\n`);
    return 2;
  }
  const options = parsed.value;
  const identity = `${hostname()}_${randomUUID()}`;
  const log = createLogger({ level: options.logLevel, fields: { component: 'controller' } });
  try {
    const client = new KubeClient(loadKubeConfig(options.kubeconfig));
    const manager = new Manager({
      client,
      log,
      metricsBindAddress: options.metricsBindAddress,
      healthProbeBindAddress: options.healthProbeBindAddress,
      leaderElection: options.leaderElect
        ? {
            namespace: options.leaderElectionNamespace,
            name: options.leaderElectionId,
            identity,
            leaseDurationMs: options.leaseDurationMs,
            renewDeadlineMs: options.renewDeadlineMs,
            retryPeriodMs: options.retryPeriodMs,
          }
        : undefined,
    });
    const recorder = new EventRecorder({
      api: client.api(EventsV1Api),
      reportingController: 'gantry.dev/controller',
      reportingInstance: identity,
      log,
    });
    for (const setup of controllers) setup({ manager, client, recorder, log, options });
    log.info('Starting controller manager', {
      identity,
      controllers: controllers.length,
      cluster: client.kc.getCurrentCluster()?.server,
    });
    await manager.run();
    // Events still being written are worth a moment, not a hang when the apiserver is away.
    await Promise.race([recorder.flush(), delay(5_000, undefined, { ref: false })]);
    return 0;
  } catch (err) {
    log.error('Controller manager failed', { err });
    return 1;
  }
}

// Exit explicitly: a reconcile that ignored its abort signal must not keep the process alive.
main(process.argv.slice(2)).then((code) => process.exit(code));
