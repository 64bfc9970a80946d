// `kubectl gantry drain` and `uncordon`: kubectl's node verbs for Hosts. drain sets the Host's
// spec.drain (the drain controller then moves its Containers off, by Migrations a few at a time,
// a Workload's replicas by its migrationPolicy) and waits, as kubectl drain does, until none is
// left, printing each Container as it moves or goes; uncordon makes the Host schedulable again.
// Hosts are cluster-scoped: RBAC on hosts (and listing Containers and Migrations everywhere)
// decides who may.
import { ApiException } from '@kubernetes/client-node';
import {
  containerFinished,
  drainContainerLabel,
  drainHostLabel,
  migrationEnded,
  migrationLabel,
  workloadOwner,
  type Container,
  type Host,
  type Migration,
} from '../api/v1alpha1/index.js';
import { realClock, sleep } from '../kube/clock.js';
import { type Command, type Context, usageError } from './cli.js';
import { CliError, type Cluster } from './client.js';
import { movedLine, migrationState, phaseLine } from './moves.js';
import { printObjects } from './output.js';

const pollMs = 1000;

/**
 * A duration as kubectl's --timeout takes it (Go's syntax: "0", "90s", "1h30m", "1.5m", "500ms"),
 * in milliseconds; undefined when it is not one.
 */
export function parseDuration(value: string): number | undefined {
  if (value === '0') return 0;
  const unit: Record<string, number> = {
    h: 3_600_000,
    m: 60_000,
    s: 1000,
    ms: 1,
    us: 1e-3,
    µs: 1e-3,
    ns: 1e-6,
  };
  if (!/^((\d+(\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns))+$/.test(value)) return undefined;
  let total = 0;
  for (const [, amount, u] of value.matchAll(/(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)/g))
    total += Number(amount) * unit[u!]!;
  return total;
}

/** "5m0s", "1h2m3s", "1.5s": a duration as Go (and so kubectl) prints one. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const s = ms / 1000;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = Number((s % 60).toFixed(3));
  return h ? `${h}h${m}m${rest}s` : m ? `${m}m${rest}s` : `${rest}s`;
}

/** When it was created, as the API wrote it (RFC 3339, so it sorts as text). */
function created(o: Migration): string {
  return String(o.metadata.creationTimestamp ?? '');
}

/** "ns/name", as kubectl drain names the pods it evicts. */
function key(c: Container | Migration): string {
  return `${c.metadata.namespace}/${c.metadata.name}`;
}

/** What a poll of a draining Host sees: its Containers and the drain's Migrations. */
export interface DrainView {
  host: Host;
  /** Every Container bound to the Host, finished ones included. */
  containers: Container[];
  /** Every Migration a drain of this Host created (labelled gantry.dev/drain-host). */
  migrations: Migration[];
}

/** What the drain moves, as the drain controller counts it: running or starting, not a copy in the making. */
export function remaining(view: DrainView): Container[] {
  return view.containers.filter((c) => !containerFinished(c) && !c.metadata.labels?.[migrationLabel]);
}

/** The drain's Migrations of a Container (labelled with its UID), oldest first. */
function movesOf(view: DrainView, uid: string | undefined): Migration[] {
  return view.migrations
    .filter((m) => m.metadata.labels?.[drainContainerLabel] === uid)
    .sort((a, b) => created(a).localeCompare(created(b)));
}

/** Why a Container is still on a draining Host: its current or last Migration and its conditions. */
export function whyStill(view: DrainView, c: Container): string {
  if (c.metadata.deletionTimestamp) {
    return 'being deleted (its Workload starts a replacement elsewhere), waiting for its agent to stop it';
  }
  const moves = movesOf(view, c.metadata.uid);
  const last = moves.at(-1);
  if (!last) {
    const limit = view.host.spec.maxConcurrentMigrations ?? 2;
    return (
      `not moved yet: waiting its turn (at most ${limit} moves off this Host at once` +
      `${workloadOwner(c) ? ", and no more of its Workload's replicas than its maxUnavailable" : ''})`
    );
  }
  if (!migrationEnded(last)) return migrationState(last);
  const failed = moves.filter((m) => m.status?.phase !== 'Succeeded').length;
  return `${failed} move${failed === 1 ? '' : 's'} failed, the last: ${migrationState(last)}`;
}

/** Drained: nothing left to move and every move of the drain ended (a Migration deletes its source just before it says Succeeded). */
export function drained(view: DrainView): boolean {
  return remaining(view).length === 0 && view.migrations.every(migrationEnded);
}

/** The failure of a drain that timed out: each Container not moved yet, and why. */
export function timeoutMessage(name: string, timeoutMs: number, view: DrainView): string {
  const left = remaining(view);
  const lines = left.map((c) => `  ${key(c)}: ${whyStill(view, c)}`);
  // A move whose source is gone but that has not said Succeeded yet.
  const uids = new Set(left.map((c) => c.metadata.uid));
  for (const m of view.migrations) {
    if (migrationEnded(m) || uids.has(m.metadata.labels?.[drainContainerLabel])) continue;
    lines.push(`  ${m.metadata.namespace}/${m.spec.container}: ${migrationState(m)}`);
  }
  return (
    `unable to drain host "${name}": timed out after ${formatDuration(timeoutMs)} with ` +
    `${lines.length} Container${lines.length === 1 ? '' : 's'} not moved yet:\n${lines.join('\n')}`
  );
}

/** The Migrations and Containers already told about, so that each is told once. */
export interface Reported {
  started: Set<string>;
  ended: Set<string>;
}

/**
 * What changed since the last poll, as lines to print: each of the drain's Migrations that started
 * or ended (moved, or failed, to be tried again), and each Container that left the Host without
 * one (deleted for its Workload to replace elsewhere, or exited).
 */
export function progressLines(
  before: DrainView | undefined,
  now: DrainView,
  reported: Reported,
): { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const byCreation = [...now.migrations].sort((a, b) => created(a).localeCompare(created(b)));
  for (const m of byCreation) {
    const uid = m.metadata.uid!;
    const who = `${m.metadata.namespace}/${m.spec.container}`;
    if (!reported.started.has(uid)) {
      reported.started.add(uid);
      out.push(`moving ${who} (migration.gantry.dev/${m.metadata.name}, ${m.spec.mode})`);
    }
    if (!migrationEnded(m) || reported.ended.has(uid)) continue;
    reported.ended.add(uid);
    if (m.status?.phase === 'Succeeded') out.push(movedLine(m, who));
    else err.push(`error when moving ${who}: ${phaseLine(m)}`);
  }
  const still = new Set(remaining(now).map((c) => c.metadata.uid));
  for (const c of before ? remaining(before) : []) {
    if (still.has(c.metadata.uid) || movesOf(now, c.metadata.uid).length > 0) continue;
    const exited = now.containers.find((n) => n.metadata.uid === c.metadata.uid);
    const w = workloadOwner(c);
    if (exited) out.push(`${key(c)} exited (${exited.status?.phase}), not moved`);
    else out.push(`${key(c)} removed${w ? ` (workload ${w.name} starts a replacement elsewhere)` : ''}`);
  }
  return { out, err };
}

/** Reads a drain's progress; undefined once the Host is gone. */
async function look(cluster: Cluster, name: string): Promise<DrainView | undefined> {
  const host = await cluster.api('Host').get({ name });
  if (!host) return undefined;
  const [containers, migrations] = await Promise.all([
    cluster.api('Container').list({ fieldSelector: `spec.nodeName=${name}` }),
    cluster.api('Migration').list({ labelSelector: `${drainHostLabel}=${name}` }),
  ]);
  return { host, containers, migrations };
}

export const drain: Command = {
  name: 'drain',
  summary: 'Move every container off a host',
  usage: 'HOST [--timeout DURATION] [--no-wait] [-o name]',
  description:
    'Drain the Host (spec.drain: true): it takes no new Containers, and the controller moves the ' +
    "ones it runs elsewhere, a few at a time (by Migration; a Workload's replicas as its " +
    'migrationPolicy says). Then wait until none is left, printing each Container as it moves or ' +
    'goes, as kubectl drain does. --timeout (default 0: no limit) gives up with exit code 1, naming ' +
    'the Containers still there and why; the Host stays draining. uncordon undoes it.',
  examples: [
    'kubectl gantry drain host-1',
    'kubectl gantry drain host-1 --timeout 10m',
    'kubectl gantry drain host-1 --no-wait',
  ],
  options: {
    timeout: { type: 'string' },
    'no-wait': { type: 'boolean' },
  },
  async run(ctx: Context) {
    const [name, ...extra] = ctx.positionals;
    if (!name) throw usageError(drain, 'a host name is required');
    if (extra.length > 0) throw usageError(drain, `unexpected argument "${extra[0]}"`);
    const timeoutFlag = (ctx.values.timeout as string | undefined) ?? '0';
    const timeoutMs = parseDuration(timeoutFlag);
    if (timeoutMs === undefined)
      throw usageError(drain, `invalid --timeout "${timeoutFlag}": give a duration such as 90s, 10m or 1h`);
    const cluster = ctx.cluster();
    await setSpec(ctx, name, { drain: true }, (h) => h.spec.drain === true, 'draining');
    if (ctx.values['no-wait']) return 0;
    const quiet = ctx.format !== 'table' && ctx.format !== 'wide';
    const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
    let view = await look(cluster, name);
    // Moves that had ended before this drain began are an earlier drain's.
    const ended = (view?.migrations ?? []).filter(migrationEnded).map((m) => m.metadata.uid!);
    const reported: Reported = { started: new Set(ended), ended: new Set(ended) };
    let before: DrainView | undefined;
    for (;;) {
      if (!view) throw new CliError(`host.gantry.dev/${name} was deleted while draining`);
      if (!view.host.spec.drain) {
        throw new CliError(`the drain of host.gantry.dev/${name} was called off (spec.drain is false again)`);
      }
      const { out, err } = progressLines(before, view, reported);
      if (!quiet) for (const line of out) ctx.out(`${line}\n`);
      for (const line of err) process.stderr.write(`${line}\n`);
      if (drained(view)) break;
      if (Date.now() >= deadline) throw new CliError(timeoutMessage(name, timeoutMs, view));
      await sleep(realClock, pollMs);
      before = view;
      view = await look(cluster, name);
    }
    if (!quiet) ctx.out(`host.gantry.dev/${name} drained\n`);
    return 0;
  },
};

/** The apiserver's 404 for a Host, printed as kubectl prints it. */
function notFound(name: string): ApiException<string> {
  const message = `hosts.gantry.dev "${name}" not found`;
  return new ApiException(404, message, JSON.stringify({ reason: 'NotFound', message }), {});
}

/**
 * Sets fields of a Host's spec by merge patch unless they already hold (then "already <done>", as
 * kubectl cordon says), and prints the outcome: "host.gantry.dev/NAME <done>", or the Host as -o asks.
 */
async function setSpec(
  ctx: Context,
  name: string,
  spec: Partial<Host['spec']>,
  holds: (h: Host) => boolean,
  done: string,
): Promise<Host> {
  const api = ctx.cluster().api('Host');
  const current = await api.get({ name });
  if (!current) throw notFound(name);
  const already = holds(current);
  const host = already ? current : await api.mergePatch({ name }, { spec });
  if (ctx.format === 'json' || ctx.format === 'yaml' || ctx.format === 'name') {
    ctx.out(printObjects([host], ctx.format, true));
  } else {
    ctx.out(`host.gantry.dev/${name} ${already ? 'already ' : ''}${done}\n`);
  }
  return host;
}

export const uncordon: Command = {
  name: 'uncordon',
  summary: 'Let a host take containers again',
  usage: 'HOST [-o name]',
  description:
    'Mark the Host schedulable again, as kubectl uncordon does a node: ends a drain (spec.drain: ' +
    'false) and a cordon (spec.unschedulable: false). Moves under way finish; Containers moved off ' +
    'stay where they went. A Host whose Node is cordoned stays unschedulable until the Node is not.',
  examples: ['kubectl gantry uncordon host-1'],
  async run(ctx: Context) {
    const [name, ...extra] = ctx.positionals;
    if (!name) throw usageError(uncordon, 'a host name is required');
    if (extra.length > 0) throw usageError(uncordon, `unexpected argument "${extra[0]}"`);
    await setSpec(
      ctx,
      name,
      { drain: false, unschedulable: false },
      (h) => !h.spec.drain && !h.spec.unschedulable,
      'uncordoned',
    );
  },
};
