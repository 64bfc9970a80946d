// The commands of `kubectl gantry`: ps lists Containers as `docker ps` does, through the
// apiserver (so `get`/`list` on containers decides who sees what); logs reads a Container's output
// through Gantry's aggregated API (subresources.gantry.dev), where RBAC on containers/log decides.
// exec is in exec.ts, top in top.ts, run, stop, start, inspect and rm in lifecycle.ts, images and
// pull in images.ts, build in build.ts, migrate in moves.ts.
import type { Container } from '../api/v1alpha1/index.js';
import { type Command, type Context, usageError } from './cli.js';
import { CliError } from './client.js';
import { exec } from './exec.js';
import { movedTo } from './follow.js';
import { completion } from './completion.js';
import { drain, uncordon } from './hosts.js';
import { build } from './build.js';
import { images, pull } from './images.js';
import { inspect, rm, run, start, stop } from './lifecycle.js';
import { migrate } from './moves.js';
import { age, listForTable, table } from './output.js';
import { top } from './top.js';

/** STATUS as docker ps words it: "Up 5m", "Exited (0) 2m ago"; a stopped one says so, with its exit. */
export function status(c: Container): string {
  const phase = c.status?.phase ?? 'Pending';
  const s = c.status;
  if ((phase === 'Succeeded' || phase === 'Failed') && s?.exitCode !== undefined)
    return `Exited (${s.exitCode}) ${age(s.finishedAt)} ago`;
  if (phase === 'Stopping') return phase;
  if (phase === 'Stopped')
    return s?.exitCode === undefined
      ? phase
      : `Stopped (${s.exitCode})${s.finishedAt ? ` ${age(s.finishedAt)} ago` : ''}`;
  if (phase === 'Running' && s?.startedAt)
    return `Up ${age(s.startedAt)}${s.health ? ` (${s.health.toLowerCase()})` : ''}`;
  return s?.reason ? `${phase} (${s.reason})` : phase;
}

/** Its ports as docker ps shows them: "8080->80/tcp" published on its Host, "9090/tcp" not. */
export function portsColumn(c: Container): string {
  const ports = (c.spec.ports ?? []).map((p) => {
    const inside = `${p.containerPort}/${p.protocol.toLowerCase()}`;
    if (p.hostPort === undefined) return inside;
    const address = p.hostIP ? `${p.hostIP.includes(':') ? `[${p.hostIP}]` : p.hostIP}:` : '';
    return `${address}${p.hostPort}->${inside}`;
  });
  return ports.join(', ') || '<none>';
}

export const ps: Command = {
  name: 'ps',
  summary: 'List containers',
  usage: '[-A] [-o json|yaml|name|wide]',
  description:
    'List the Containers of the namespace (or of every namespace with -A), as docker ps does; -o wide ' +
    'adds their ports (HOST_PORT->PORT when published on their Host), IP and runtime ID.',
  examples: ['kubectl gantry ps', 'kubectl gantry ps -A -o wide'],
  async run(ctx: Context) {
    if (ctx.positionals.length > 0) throw usageError(ps, `unexpected argument "${ctx.positionals[0]}"`);
    const items = await listForTable(ctx, 'Container');
    if (!items) return;
    const wide = ctx.format === 'wide';
    const header = [
      ...(ctx.flags.allNamespaces ? ['NAMESPACE'] : []),
      'NAME',
      'IMAGE',
      'STATUS',
      'RESTARTS',
      'HOST',
      'AGE',
      ...(wide ? ['PORTS', 'IP', 'CONTAINER ID'] : []),
    ];
    const rows = items.map((c) => [
      ...(ctx.flags.allNamespaces ? [c.metadata.namespace ?? ''] : []),
      c.metadata.name ?? '',
      c.spec.image,
      status(c),
      String(c.status?.restartCount ?? 0),
      c.spec.nodeName ?? '<none>',
      age(c.metadata.creationTimestamp),
      ...(wide
        ? [portsColumn(c), c.status?.ip ?? '<none>', c.status?.containerID?.slice(0, 12) ?? '<none>']
        : []),
    ]);
    ctx.out(table(header, rows));
  },
};

export const logs: Command = {
  name: 'logs',
  summary: "Print a container's output",
  usage: 'NAME [-f] [--tail N] [--previous] [--timestamps]',
  description:
    "Print a Container's output (stdout and stderr), every run in order, through the Kubernetes API: " +
    'whoever may get containers/log in the namespace may read it.',
  examples: ['kubectl gantry logs web', 'kubectl gantry logs -f --tail 10 web'],
  options: {
    follow: { type: 'boolean', short: 'f' },
    tail: { type: 'string' },
    previous: { type: 'boolean', short: 'p' },
    timestamps: { type: 'boolean' },
  },
  async run(ctx: Context) {
    const [name, ...extra] = ctx.positionals;
    if (!name) throw usageError(logs, 'a container name is required');
    if (extra.length > 0) throw usageError(logs, `unexpected argument "${extra[0]}"`);
    const tail = ctx.values.tail as string | undefined;
    if (tail !== undefined && !/^\d+$/.test(tail))
      throw usageError(logs, `--tail must be a whole number, not "${tail}"`);
    const cluster = ctx.cluster();
    const follow = ctx.values.follow === true;
    const read = async (container: string, tailLines: string | undefined) => {
      const path = cluster.subresourcePath(
        `namespaces/${encodeURIComponent(cluster.namespace)}/containers/${encodeURIComponent(container)}/log`,
      );
      const res = await cluster.client.request('GET', path, {
        query: {
          follow: follow || undefined,
          tailLines,
          previous: ctx.values.previous === true || undefined,
          timestamps: ctx.values.timestamps === true || undefined,
        },
        headers: { accept: 'text/plain, */*' },
      });
      for await (const chunk of res) ctx.out(String(chunk));
      if (!res.complete) throw new CliError('the log stream was cut before its end');
    };
    if (!follow) return read(name, tail);
    // A follower goes on with the copy a migration makes, from the copy's first line.
    let current = {
      name,
      since: (await cluster.api('Container').get({ namespace: cluster.namespace, name }))?.metadata
        .creationTimestamp,
    };
    await read(name, tail);
    for (
      let next;
      current.since && (next = await movedTo(cluster, { name: current.name, since: current.since }));
    ) {
      process.stderr.write(`${current.name} moved; following ${next}\n`);
      const copy = await cluster.api('Container').get({ namespace: cluster.namespace, name: next });
      current = { name: next, since: copy?.metadata.creationTimestamp };
      await read(next, undefined);
    }
  },
};

export const commands: Command[] = [
  run,
  ps,
  logs,
  exec,
  top,
  inspect,
  stop,
  start,
  rm,
  images,
  pull,
  build,
  migrate,
  drain,
  uncordon,
  completion,
];
