// `kubectl gantry run`, `stop`, `start`, `rm` and `inspect`: Docker's verbs for one container, as
// Gantry objects. run creates a Container (or a Workload with --replicas), stop and start set its
// spec.stopped and wait for its agent to say it is done, rm deletes Containers, inspect prints one
// as the API holds it. RBAC on containers (and workloads) decides who may do what.
import {
  containerFinished,
  isIPAddress,
  workloadOwner,
  type Container,
  type Port,
  type Workload,
} from '../api/v1alpha1/index.js';
import { realClock, sleep } from '../kube/clock.js';
import { getCondition } from '../kube/conditions.js';
import type { CustomResourceClient } from '../kube/customresource.js';
import { type Command, type Context, type Options, usageError } from './cli.js';
import { CliError, describeError } from './client.js';
import { parseDuration } from './hosts.js';
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

/** Where a stop or start stands, as the plugin waits for it. */
export type Progress = 'done' | 'waiting' | { failed: string };

/** The agent has reported on `generation` of the spec (the one that asked for the stop or start). */
function observed(c: Container, generation: number): boolean {
  return (c.status?.observedGeneration ?? 0) >= generation;
}

/** A stop is done once the agent reports Stopped for the spec that asked for it. */
export function stopProgress(c: Container, generation: number): Progress {
  return observed(c, generation) && c.status?.phase === 'Stopped' ? 'done' : 'waiting';
}

/**
 * A start is done once the process runs (or already ran to success), and failed when the agent
 * reports it stuck (kstatus' Stalled: it cannot create it, or it exited and waits out a back-off).
 */
export function startProgress(c: Container, generation: number): Progress {
  if (!observed(c, generation)) return 'waiting';
  if (c.status?.phase === 'Running' || c.status?.phase === 'Succeeded') return 'done';
  const stalled = getCondition(c.status?.conditions, 'Stalled');
  if (stalled?.status === 'True')
    return { failed: `${c.status?.phase} (${stalled.reason}): ${stalled.message}` };
  return 'waiting';
}

/** "3" for -t 3: seconds between SIGTERM and SIGKILL, within what the API takes (0-3600). */
export function parseGracePeriod(value: string): number | undefined {
  return /^\d{1,4}$/.test(value) && Number(value) <= 3600 ? Number(value) : undefined;
}

/** Why a Container may not be stopped or started by name: a Workload's replica belongs to its Workload. */
export function replicaRefusal(c: Container): string | undefined {
  const owner = workloadOwner(c);
  if (!owner) return undefined;
  return (
    `container.gantry.dev/${c.metadata.name} is a replica of workload.gantry.dev/${owner.name}, which ` +
    `decides how many run: scale the Workload instead (kubectl scale workload/${owner.name} --replicas=N)`
  );
}

type Verb = 'stop' | 'start';

const progressOf: Record<Verb, (c: Container, generation: number) => Progress> = {
  stop: stopProgress,
  start: startProgress,
};

const pollMs = 500;

/**
 * Polls the Container `asked` names until its stop or start is done (resolving with the Container
 * as it then is), fails, or the deadline passes (then a CliError says why and where it stands).
 */
async function settled(ctx: Context, verb: Verb, asked: Container, deadline: number): Promise<Container> {
  const cluster = ctx.cluster();
  const key = { namespace: cluster.namespace, name: asked.metadata.name! };
  const generation = asked.metadata.generation ?? 0;
  for (;;) {
    const c = await cluster.api('Container').get(key);
    if (!c) throw new CliError(`container.gantry.dev/${key.name} was deleted before it could ${verb}`);
    const p = progressOf[verb](c, generation);
    if (p === 'done') return c;
    if (p !== 'waiting') throw new CliError(`container.gantry.dev/${key.name} did not ${verb}: ${p.failed}`);
    if (Date.now() >= deadline) {
      const at = `${c.status?.phase ?? 'Pending'}${c.status?.message ? `: ${c.status.message}` : ''}`;
      throw new CliError(`timed out waiting for container.gantry.dev/${key.name} to ${verb}; it is ${at}`);
    }
    await sleep(realClock, pollMs);
  }
}

/** The name, as docker prints it; or the object as -o asks. */
function printDone(ctx: Context, c: Container): void {
  if (ctx.format === 'json' || ctx.format === 'yaml' || ctx.format === 'name')
    ctx.out(printObjects([c], ctx.format, true));
  else ctx.out(`${c.metadata.name}\n`);
}

/**
 * Stops or starts each named Container: reads it, refuses a missing one or a replica, asks with
 * `ask` (which resolves with the Container as it asked, its generation the one to wait for), and
 * then, unless --no-wait, waits for each in the order given (as docker does) until --timeout,
 * printing each name once done. Every failure is told on stderr; exit code 1 if there was one.
 */
async function stopOrStart(
  c: Command & { name: Verb },
  ctx: Context,
  ask: (api: CustomResourceClient<Container>, found: Container, deadline: number) => Promise<Container>,
): Promise<number> {
  if (ctx.positionals.length === 0) throw usageError(c, 'at least one container name is required');
  const flag = (ctx.values.timeout as string | undefined) ?? '0';
  const timeoutMs = parseDuration(flag);
  if (timeoutMs === undefined)
    throw usageError(c, `invalid --timeout "${flag}": give a duration such as 30s or 5m`);
  const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
  const cluster = ctx.cluster();
  const api = cluster.api('Container');
  let failed = 0;
  const fail = (e: unknown) => {
    process.stderr.write(`${describeError(e)}\n`);
    failed++;
  };
  const asked: Container[] = [];
  for (const name of ctx.positionals) {
    try {
      const found = await api.get({ namespace: cluster.namespace, name });
      if (!found) {
        process.stderr.write(`Error from server (NotFound): containers.gantry.dev "${name}" not found\n`);
        failed++;
        continue;
      }
      const refused = replicaRefusal(found);
      if (refused) throw new CliError(refused);
      asked.push(await ask(api, found, deadline));
    } catch (e) {
      fail(e);
    }
  }
  for (const one of asked) {
    try {
      printDone(ctx, ctx.values['no-wait'] ? one : await settled(ctx, c.name, one, deadline));
    } catch (e) {
      fail(e);
    }
  }
  return failed > 0 ? 1 : 0;
}

const waitOptions: Options = {
  timeout: { type: 'string' },
  'no-wait': { type: 'boolean' },
};

export const stop: Command & { name: Verb } = {
  name: 'stop',
  summary: 'Stop one or more running containers',
  usage: 'NAME... [-t SECONDS] [--timeout DURATION] [--no-wait]',
  description:
    'Stop Containers and keep them (spec.stopped: true), as docker stop does: each process gets ' +
    'SIGTERM, and SIGKILL once its terminationGracePeriodSeconds (or -t SECONDS) pass; it is not ' +
    'restarted whatever its restartPolicy says, and keeps its Host and its logs. Prints each name once ' +
    "its agent reports it Stopped (--timeout, default 0: no limit; --no-wait: at once). A Workload's " +
    'replica is refused: scale the Workload instead. start runs them again.',
  examples: ['kubectl gantry stop web', 'kubectl gantry stop -t 5 web db'],
  options: { 'grace-period': { type: 'string', short: 't' }, ...waitOptions },
  run(ctx: Context) {
    const flag = ctx.values['grace-period'] as string | undefined;
    const grace = flag === undefined ? undefined : parseGracePeriod(flag);
    if (flag !== undefined && grace === undefined)
      throw usageError(stop, `invalid -t "${flag}": give whole seconds from 0 to 3600`);
    return stopOrStart(stop, ctx, async (api, c) =>
      // Stopped already, or stopping: nothing to ask again (a stop under way keeps its grace period).
      c.spec.stopped
        ? c
        : api.mergePatch(
            { namespace: c.metadata.namespace, name: c.metadata.name! },
            { spec: { stopped: true, stopGracePeriodSeconds: grace ?? null } },
          ),
    );
  },
};

export const start: Command & { name: Verb } = {
  name: 'start',
  summary: 'Start one or more stopped containers',
  usage: 'NAME... [--timeout DURATION] [--no-wait]',
  description:
    'Run stopped Containers again (spec.stopped removed), as docker start does, and Containers whose ' +
    'process exited for good (Succeeded or Failed) too. Each runs as a new runtime container from its ' +
    'image, on the same Host: its logs stay (logs --previous), what it wrote to its filesystem does not. ' +
    'Prints each name once its agent reports it Running (--timeout, default 0: no limit; --no-wait: at ' +
    "once). A Workload's replica is refused: scale the Workload instead.",
  examples: ['kubectl gantry start web', 'kubectl gantry start --timeout 2m web db'],
  options: waitOptions,
  run(ctx: Context) {
    return stopOrStart(start, ctx, async (api, c, deadline) => {
      const key = { namespace: c.metadata.namespace, name: c.metadata.name! };
      if (!c.spec.stopped && !containerFinished(c)) return c; // running, or on its way: nothing to ask
      // Exited for good: stopped first, so that its agent runs it again as after any stop.
      if (!c.spec.stopped)
        await settled(ctx, 'stop', await api.mergePatch(key, { spec: { stopped: true } }), deadline);
      return api.mergePatch(key, { spec: { stopped: null, stopGracePeriodSeconds: null } });
    });
  },
};
