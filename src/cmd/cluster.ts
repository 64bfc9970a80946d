// npm run cluster:up [-- --hosts N] | cluster:down | cluster:status
import { parseArgs } from 'node:util';
import { down, status, up } from '../localcluster/cluster.js';
import { PrerequisiteError } from '../localcluster/prerequisites.js';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { hosts: { type: 'string', default: process.env.GANTRY_HOSTS ?? '2' } },
});

async function main(): Promise<void> {
  switch (positionals[0]) {
    case 'up': {
      const hosts = Number(values.hosts);
      if (!Number.isInteger(hosts) || hosts < 1 || hosts > 20)
        throw new PrerequisiteError('--hosts must be 1..20');
      console.log(
        `starting the local cluster with ${hosts} hosts (the first run builds binaries for many minutes)`,
      );
      const c = await up({ hosts });
      console.log(`
local cluster is up
  kubeconfig:  ${c.kubeconfig}
  apiserver:   ${c.apiServerURL}
  registry:    ${c.registry}
  hosts:       ${c.hosts.map((h) => `${h.name} (${h.criSocket})`).join(', ')}
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
      throw new PrerequisiteError('usage: cluster.ts up [--hosts N] | down | status');
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof PrerequisiteError ? `error: ${e.message}` : e);
  process.exit(1);
});
