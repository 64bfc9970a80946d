// `kubectl gantry migrate`: moving a container to another host with a Migration, waited on the
// way `kubectl rollout status` waits: until the controller reports an end, printing each phase and
// then where it went and how long it did not run. Exit code 1 when the move did not succeed.
// The lines it prints about a Migration are shared with drain (hosts.ts), which reports the
// Migrations a drain creates.
import { migrationEnded, type Migration } from '../api/v1alpha1/index.js';
import { realClock, sleep } from '../kube/clock.js';
import { type Command, type Context, usageError } from './cli.js';
import { CliError } from './client.js';

/** "counter moved from host-1 to host-2 as counter-m1a2b3, not running for 0.8s": a Succeeded move. */
export function movedLine(m: Migration, container = m.spec.container): string {
  const s = m.status ?? {};
  return (
    `${container} moved from ${s.sourceHost} to ${s.targetHost} as ${s.targetContainer}` +
    `${s.downtimeSeconds !== undefined ? `, not running for ${s.downtimeSeconds}s` : ''}`
  );
}

/** "migration.gantry.dev/counter-x7k2p Failed: <its message>": a Migration by its phase and message. */
export function phaseLine(m: Migration): string {
  const phase = m.status?.phase ?? 'Pending';
  return `migration.gantry.dev/${m.metadata.name} ${phase}: ${m.status?.message ?? ''}`.replace(/: $/, '');
}

/**
 * Why a Migration is where it is: its phase line, then each condition that is not True (the
 * agents' Checkpointed, Transferred, Restored and Resumed, and Ready), with reason and message.
 */
export function migrationState(m: Migration): string {
  const pending = (m.status?.conditions ?? [])
    .filter((c) => c.status !== 'True')
    // A message the phase line already gives is not repeated.
    .map((c) => {
      const said = !c.message || c.message === m.status?.message;
      return `${c.type}=${c.status} (${c.reason}${said ? '' : `: ${c.message}`})`;
    });
  return pending.length ? `${phaseLine(m)}; ${pending.join('; ')}` : phaseLine(m);
}

export const migrate: Command = {
  name: 'migrate',
  summary: 'Move a container to another host',
  usage: 'NAME [--to HOST] [--mode Checkpoint|Restart] [--fallback None|Restart] [--no-wait]',
  description:
    'Create a Migration of the Container NAME and wait for it to end, printing where it went and ' +
    'how long it was not running. Checkpoint (the default) carries its memory over with CRIU; ' +
    'Restart starts it again on the target. Without --to the scheduler picks the host.',
  examples: ['kubectl gantry migrate counter', 'kubectl gantry migrate counter --to node-2 --mode Restart'],
  options: {
    to: { type: 'string' },
    mode: { type: 'string' },
    fallback: { type: 'string' },
    'no-wait': { type: 'boolean' },
  },
  async run(ctx: Context) {
    const [name, ...extra] = ctx.positionals;
    if (!name) throw usageError(migrate, 'a container name is required');
    if (extra.length > 0) throw usageError(migrate, `unexpected argument "${extra[0]}"`);
    const mode = (ctx.values.mode as string | undefined) ?? 'Checkpoint';
    if (mode !== 'Checkpoint' && mode !== 'Restart')
      throw usageError(migrate, `--mode is Checkpoint or Restart, not "${mode}"`);
    const fallback = (ctx.values.fallback as string | undefined) ?? 'None';
    if (fallback !== 'None' && fallback !== 'Restart')
      throw usageError(migrate, `--fallback is None or Restart, not "${fallback}"`);
    const cluster = ctx.cluster();
    const api = cluster.api('Migration');
    const created = await api.create({
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Migration',
      metadata: { generateName: `${name}-`, namespace: cluster.namespace },
      spec: {
        container: name,
        mode,
        fallback,
        ...(ctx.values.to ? { targetHost: ctx.values.to as string } : {}),
      },
    });
    const key = { namespace: cluster.namespace, name: created.metadata.name! };
    ctx.out(`migration.gantry.dev/${key.name} created\n`);
    if (ctx.values['no-wait']) return 0;
    let m: Migration | undefined = created;
    let phase = '';
    while (m && !migrationEnded(m)) {
      if (m.status?.phase && m.status.phase !== phase) {
        phase = m.status.phase;
        ctx.out(`${phase}${m.status.targetHost ? ` (to ${m.status.targetHost})` : ''}\n`);
      }
      await sleep(realClock, 500);
      m = await api.get(key);
    }
    if (!m) throw new CliError(`migration.gantry.dev/${key.name} was deleted before it ended`);
    if (m.status?.phase !== 'Succeeded') throw new CliError(phaseLine(m));
    ctx.out(`${movedLine(m, name)}\n`);
    return 0;
  },
};
