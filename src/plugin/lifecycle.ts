// `kubectl gantry run`, `rm` and `inspect`: Docker's verbs for one container, as Gantry objects.
// run creates a Container (or a Workload with --replicas), rm deletes Containers, inspect prints
// one as the API holds it. RBAC on containers (and workloads) decides who may do what.
import { isIPAddress, type Container, type Port, type Workload } from '../api/v1alpha1/index.js';
import { realClock, sleep } from '../kube/clock.js';
import { type Command, type Context, usageError } from './cli.js';
import { CliError } from './client.js';
import { kindOf, printObjects } from './output.js';

const publishForm = '[HOST_IP:][HOST_PORT:]PORT[/udp]';

/**
 * "-p" as docker run reads it, [HOST_IP:][HOST_PORT:]PORT[/PROTO]: "8080" is a port the process
 * listens on (a Service reaches it), "80:8080" publishes it on its Host's port 80, "192.0.2.10:80:8080"
 * on that address of the Host alone; an IPv6 address goes in brackets, "[2001:db8::1]:80:8080".
 */
export function parsePublish(value: string): Port {
  const invalid = (why: string) => usageError(run, `invalid port "${value}": ${why}; give ${publishForm}`);
  const slash = value.lastIndexOf('/');
  const protocol = slash < 0 ? 'tcp' : value.slice(slash + 1).toLowerCase();
  if (protocol !== 'tcp' && protocol !== 'udp') throw invalid('the protocol is tcp or udp');
  let rest = slash < 0 ? value : value.slice(0, slash);
  let hostIP: string | undefined;
  const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(rest);
  if (bracketed) {
    hostIP = bracketed[1]!;
    rest = bracketed[2]!;
  }
  const parts = rest.split(':');
  if (!bracketed && parts.length === 3) hostIP = parts.shift();
  if (parts.length > 2)
    throw invalid('too many ":" (an IPv6 address goes in brackets: [2001:db8::1]:80:8080)');
  if (hostIP !== undefined && !isIPAddress(hostIP)) throw invalid(`"${hostIP}" is not an IP address`);
  if (hostIP !== undefined && (parts.length < 2 || parts[0] === ''))
    throw invalid('a host IP needs a host port (Gantry does not pick one)');
  const number = (s: string) => {
    const n = /^\d{1,5}$/.test(s) ? Number(s) : 0;
    if (n < 1 || n > 65535) throw invalid(`"${s}" is not a port: ports are 1-65535`);
    return n;
  };
  const containerPort = number(parts.at(-1)!);
  const hostPort = parts.length === 2 ? number(parts[0]!) : undefined;
  return {
    containerPort,
    protocol: protocol === 'udp' ? 'UDP' : 'TCP',
    ...(hostPort !== undefined ? { hostPort } : {}),
    ...(hostIP !== undefined ? { hostIP } : {}),
  };
}

/** "-e NAME=value" (or "-e NAME", set to empty). */
function parseEnv(value: string): { name: string; value: string } {
  const at = value.indexOf('=');
  return at < 0 ? { name: value, value: '' } : { name: value.slice(0, at), value: value.slice(at + 1) };
}

/** A name from the image, as kubectl run would pick one: its last path part, before tag or digest. */
export function nameFromImage(image: string): string {
  const last = image.split('@')[0]!.split('/').at(-1)!.split(':')[0]!;
  const name = last
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return name || 'container';
}

export const run: Command = {
  name: 'run',
  summary: 'Create and run a new container',
  usage: `IMAGE [--name NAME] [-p ${publishForm}]... [-e NAME=VALUE]... [--replicas N] [-- COMMAND [ARG...]]`,
  description:
    'Run IMAGE as a Container (docker run -d), or as a Workload of N replicas with --replicas. ' +
    "COMMAND replaces the image's CMD, as with docker run. Without --name the apiserver picks one " +
    'from the image name. -p PORT names a port the process listens on; -p HOST_PORT:PORT also ' +
    "publishes it on its Host's address (HOST_IP:HOST_PORT:PORT on that address alone), and the " +
    'scheduler puts it only on a Host where that port is free.',
  examples: [
    'kubectl gantry run registry.example/web:1 --name web -p 8080:80',
    'kubectl gantry run registry.example/web:1 --replicas 3 --name web',
    'kubectl gantry run busybox:1.37 -- sh -c "echo hello; sleep 3600"',
  ],
  options: {
    name: { type: 'string' },
    publish: { type: 'string', short: 'p', multiple: true },
    env: { type: 'string', short: 'e', multiple: true },
    replicas: { type: 'string' },
  },
  async run(ctx: Context) {
    const [image, ...command] = ctx.positionals;
    if (!image) throw usageError(run, 'an image is required');
    const replicasFlag = ctx.values.replicas as string | undefined;
    if (replicasFlag !== undefined && !/^\d+$/.test(replicasFlag))
      throw usageError(run, `--replicas must be a whole number, not "${replicasFlag}"`);
    const name = ctx.values.name as string | undefined;
    const ports = ((ctx.values.publish as string[] | undefined) ?? []).map(parsePublish);
    const env = ((ctx.values.env as string[] | undefined) ?? []).map(parseEnv);
    const spec = {
      image,
      ...(command.length ? { args: command } : {}),
      ...(ports.length ? { ports } : {}),
      ...(env.length ? { env } : {}),
    };
    const cluster = ctx.cluster();
    const metadata = name
      ? { name, namespace: cluster.namespace }
      : { generateName: `${nameFromImage(image)}-`, namespace: cluster.namespace };
    let created: Container | Workload;
    if (replicasFlag === undefined) {
      created = await cluster
        .api('Container')
        .create({ apiVersion: 'gantry.dev/v1alpha1', kind: 'Container', metadata, spec });
    } else {
      // The Workload's Containers carry its name as their label, as kubectl create deployment does.
      const label = { 'gantry.dev/run': name ?? nameFromImage(image) };
      created = await cluster.api('Workload').create({
        apiVersion: 'gantry.dev/v1alpha1',
        kind: 'Workload',
        metadata,
        spec: {
          replicas: Number(replicasFlag),
          selector: { matchLabels: label },
          template: { metadata: { labels: label }, spec },
        },
      });
    }
    if (ctx.format === 'json' || ctx.format === 'yaml' || ctx.format === 'name') {
      ctx.out(printObjects([created], ctx.format, true));
      return;
    }
    ctx.out(`${kindOf(created)}/${created.metadata.name} created\n`);
  },
};

export const rm: Command = {
  name: 'rm',
  summary: 'Remove one or more containers',
  usage: 'NAME... [--wait]',
  description:
    'Delete Containers: each is sent SIGTERM and killed once its terminationGracePeriodSeconds pass. ' +
    'With --wait, return once they are gone. A Container of a Workload is replaced: scale the ' +
    'Workload instead.',
  examples: ['kubectl gantry rm web', 'kubectl gantry rm --wait web db'],
  options: { wait: { type: 'boolean' } },
  async run(ctx: Context) {
    if (ctx.positionals.length === 0) throw usageError(rm, 'at least one container name is required');
    const cluster = ctx.cluster();
    const api = cluster.api('Container');
    let missing = 0;
    for (const name of ctx.positionals) {
      if (await api.delete({ namespace: cluster.namespace, name })) {
        ctx.out(`container.gantry.dev "${name}" deleted\n`);
      } else {
        process.stderr.write(`Error from server (NotFound): containers.gantry.dev "${name}" not found\n`);
        missing++;
      }
    }
    if (ctx.values.wait) {
      for (const name of ctx.positionals) {
        while (await api.get({ namespace: cluster.namespace, name })) await sleep(realClock, 500);
      }
    }
    return missing > 0 ? 1 : 0;
  },
};

export const inspect: Command = {
  name: 'inspect',
  summary: 'Show a container as the API holds it',
  usage: 'NAME [-o json|yaml]',
  description: 'Print a Container, spec and status, as JSON (default, as docker inspect does) or YAML.',
  examples: ['kubectl gantry inspect web', 'kubectl gantry inspect web -o yaml'],
  async run(ctx: Context) {
    const [name, ...extra] = ctx.positionals;
    if (!name) throw usageError(inspect, 'a container name is required');
    if (extra.length > 0) throw usageError(inspect, `unexpected argument "${extra[0]}"`);
    const cluster = ctx.cluster();
    const c = await cluster.api('Container').get({ namespace: cluster.namespace, name });
    if (!c) throw new CliError(`containers.gantry.dev "${name}" not found`);
    ctx.out(printObjects([c], ctx.format === 'yaml' ? 'yaml' : 'json', true));
  },
};
