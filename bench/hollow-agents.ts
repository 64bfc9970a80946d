// HOLLOW agents for bench/scale-controlplane.ts only: several real agents (watches, reconcilers,
// heartbeats, Host reports, API writes) in one process, each on the simulated runtime
// (src/cri/simulated.ts) that runs nothing, like kubemark's hollow nodes.
// Usage: tsx bench/hollow-agents.ts <kubeconfig> <state dir> <host>...; stops on SIGTERM.
import path from 'node:path';
import { setUpAgent } from '../src/agent/agent.js';
import { parseAgentOptions } from '../src/agent/options.js';
import { KubeClient, loadKubeConfig } from '../src/kube/client.js';
import { Manager } from '../src/kube/manager.js';
import { createLogger } from '../src/obs/logger.js';
import { SimulatedRuntime } from './support/simulated-runtime.js';

const [kubeconfig, stateDir, ...hosts] = process.argv.slice(2);
if (!kubeconfig || !stateDir || hosts.length === 0) {
  console.error('usage: hollow-agents.ts <kubeconfig> <state dir> <host>...');
  process.exit(2);
}

const client = new KubeClient(loadKubeConfig(kubeconfig));
const stop = new AbortController();
process.on('SIGTERM', () => stop.abort());
process.on('SIGINT', () => stop.abort());

const runs = hosts.map((host) => {
  const options = parseAgentOptions(
    [
      `--host-name=${host}`,
      `--kubeconfig=${kubeconfig}`,
      `--state-dir=${path.join(stateDir, host)}`,
      '--metrics-bind-address=0',
      '--health-probe-bind-address=0',
      // Migrations are out of scope here; port 0 keeps the agents of one process from colliding.
      '--transfer-bind-address=127.0.0.1:0',
      '--capacity-cpu=64',
      '--capacity-memory=256Gi',
      '--log-level=warn',
    ],
    {},
  );
  const log = createLogger({ level: options.logLevel, fields: { host } });
  const manager = new Manager({
    client,
    log,
    metricsBindAddress: '0',
    healthProbeBindAddress: '0',
    handleSignals: false,
  });
  setUpAgent(manager, client, options, log, new SimulatedRuntime());
  return manager.run(stop.signal);
});

Promise.all(runs).then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
