// `kubectl gantry top`: CPU and memory of the namespace's containers, as `kubectl top pod` prints
// them, from each agent's last sample of the runtime's stats (Gantry's aggregated API,
// containermetrics; whoever may list the Containers may read it).
import type { ContainerMetricsList } from '../api/v1alpha1/index.js';
import { type Command, type Context, usageError } from './cli.js';
import { CliError } from './client.js';
import { table } from './output.js';
import { dumpYaml } from '@kubernetes/client-node';

export const top: Command = {
  name: 'top',
  summary: 'Show the CPU and memory containers use',
  usage: '[NAME...] [-A] [-o json|yaml]',
  description:
    "Show the CPU (millicores) and memory (working set) of the namespace's Containers, or of those " +
    'named, as their hosts last sampled them (every 10 s by default).',
  examples: ['kubectl gantry top', 'kubectl gantry top -A', 'kubectl gantry top web-7d9f4-x2k8q'],
  async run(ctx: Context) {
    if (ctx.format === 'name' || ctx.format === 'wide')
      throw new CliError(`--output ${ctx.format} is not supported by top: use json or yaml`);
    const cluster = ctx.cluster();
    const path = cluster.subresourcePath(
      ctx.flags.allNamespaces
        ? 'containermetrics'
        : `namespaces/${encodeURIComponent(cluster.namespace)}/containermetrics`,
    );
    if (ctx.flags.allNamespaces && ctx.positionals.length > 0)
      throw usageError(top, 'a container name cannot be given with -A');
    const res = await cluster.client.request('GET', path);
    let body = '';
    for await (const chunk of res) body += String(chunk);
    const list = JSON.parse(body) as ContainerMetricsList;
    for (const u of list.unavailableHosts ?? [])
      process.stderr.write(`warning: no figures from host ${u.host}: ${u.reason}\n`);
    const wanted = new Set(ctx.positionals);
    const items = wanted.size ? list.items.filter((i) => wanted.has(i.metadata.name)) : list.items;
    const missing = [...wanted].filter((n) => !items.some((i) => i.metadata.name === n));
    if (ctx.format === 'json' || ctx.format === 'yaml') {
      const doc = { ...list, items };
      ctx.out(ctx.format === 'json' ? `${JSON.stringify(doc, null, 4)}\n` : dumpYaml(doc));
    } else if (items.length > 0) {
      ctx.out(
        table(
          [...(ctx.flags.allNamespaces ? ['NAMESPACE'] : []), 'NAME', 'CPU(cores)', 'MEMORY(bytes)', 'HOST'],
          items.map((i) => [
            ...(ctx.flags.allNamespaces ? [i.metadata.namespace] : []),
            i.metadata.name,
            i.usage.cpu,
            i.usage.memory,
            i.host,
          ]),
        ),
      );
    } else if (!missing.length) {
      process.stderr.write(
        ctx.flags.allNamespaces
          ? 'No resources found\n'
          : `No resources found in ${cluster.namespace} namespace.\n`,
      );
    }
    // As kubectl top: a name without figures (not running, or not sampled yet) is an error.
    if (missing.length)
      throw new CliError(`metrics not available yet for ${missing.map((n) => `"${n}"`).join(', ')}`);
  },
};
