// npm run cluster:up [-- --hosts N] [--no-kubelet] | cluster:down | cluster:status
import { parseArgs } from 'node:util';
import { down, status, up } from '../localcluster/cluster.js';
import { PrerequisiteError } from '../localcluster/prerequisites.js';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  allowNegative: true,
  options: {
    hosts: { type: 'string', default: process.env.GANTRY_HOSTS ?? '2' },
    // Kubelet nodes (the default), or bare containerd hosts with --no-kubelet (GANTRY_KUBELET=0).
    kubelet: { type: 'boolean', default: process.env.GANTRY_KUBELET !== '0' },
  },
});

async function main(): Promise<void> {
  switch (positionals[0]) {
    case 'up': {
      const hosts = Number(values.hosts);
      if (!Number.isInteger(hosts) || hosts < 1 || hosts > 20)
        throw new PrerequisiteError('--hosts must be 1..20');
      console.log(
        `starting the local cluster with ${hosts} ${values.kubelet ? 'kubelet nodes' : 'bare hosts (no kubelet)'} (the first run builds binaries for many minutes)`,
      );
      const c = await up({ hosts, kubelet: values.kubelet });
      console.log(`
local cluster is up
  kubeconfig:  ${c.kubeconfig}
  apiserver:   ${c.apiServerURL}
  registry:    ${c.registry}
  hosts:       ${c.hosts.map((h) => `${h.name} (${h.criSocket})`).join(', ')}${c.kubelet ? ' (kubelet nodes)' : ' (no kubelet)'}
  runtime:     ${c.runtime.name} ${c.runtime.version}
  checkpoint:  ${c.checkpoint.works ? 'works' : 'does not work'} (${c.checkpoint.detail})

try:  export KUBECONFIG=${c.kubeconfig} PATH=${c.binDir}:$PATH; kubectl get nodes
stop: npm run cluster:down`);
      return;
    }
    case 'down':
      await down();
      return;
    case 'status': {
      const s = status();
      console.log(JSON.stringify(s, null, 2));
      return;
    }
    default:
      throw new PrerequisiteError('usage: cluster.ts up [--hosts N] [--no-kubelet] | down | status');
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof PrerequisiteError ? `error: ${e.message}` : e);
  process.exit(1);
});
