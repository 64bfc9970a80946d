// `kubectl gantry images` and `pull`: Docker's image verbs, as Image objects. An Image keeps a
// reference pulled (and, with keep, safe from image garbage collection) on every Host its node
// selector picks; its status counts the Hosts that hold the resolved digest. pull creates one and
// waits until every such Host holds it, as docker pull waits for the layers.
import { parseImageReference, repository } from '../api/v1alpha1/index.js';
import { type Command, type Context, usageError } from './cli.js';
import { getCondition } from '../kube/conditions.js';
import { realClock, sleep } from '../kube/clock.js';
import { CliError } from './client.js';
import { age, listForTable, table } from './output.js';
import { nameFromImage } from './lifecycle.js';

/** Bytes as docker images shows them: 1.2GB, 34.5MB, 812kB (powers of 1000). */
export function humanSize(bytes: number | undefined): string {
  if (bytes === undefined) return '<unknown>';
  for (const [unit, size] of [
    ['GB', 1e9],
    ['MB', 1e6],
    ['kB', 1e3],
  ] as const) {
    if (bytes >= size) return `${Number((bytes / size).toPrecision(3))}${unit}`;
  }
  return `${bytes}B`;
}

export const images: Command = {
  name: 'images',
  summary: 'List images',
  usage: '[-A] [-o json|yaml|name]',
  description:
    'List the Image objects of the namespace (or of every namespace with -A): the reference, its ' +
    'digest, and how many of the Hosts that should hold it do.',
  examples: ['kubectl gantry images', 'kubectl gantry images -A'],
  async run(ctx: Context) {
    if (ctx.positionals.length > 0) throw usageError(images, `unexpected argument "${ctx.positionals[0]}"`);
    const items = await listForTable(ctx, 'Image');
    if (!items) return;
    const header = [
      ...(ctx.flags.allNamespaces ? ['NAMESPACE'] : []),
      'NAME',
      'REPOSITORY',
      'TAG',
      'DIGEST',
      'HOSTS',
      'SIZE',
      'AGE',
    ];
    const rows = items.map((i) => {
      const ref = parseImageReference(i.spec.image);
      return [
        ...(ctx.flags.allNamespaces ? [i.metadata.namespace ?? ''] : []),
        i.metadata.name ?? '',
        repository(ref),
        ref.tag ?? '<none>',
        i.status?.digest ? i.status.digest.replace(/^sha256:/, '').slice(0, 12) : '<none>',
        `${i.status?.readyHosts ?? 0}/${i.status?.desiredHosts ?? 0}`,
        humanSize(i.status?.sizeBytes),
        age(i.metadata.creationTimestamp),
      ];
    });
    ctx.out(table(header, rows));
  },
};

export const pull: Command = {
  name: 'pull',
  summary: 'Pull an image onto the hosts',
  usage: 'IMAGE [--name NAME] [--keep] [--no-wait]',
  description:
    'Create an Image object for IMAGE and wait until every Ready Host holds it (the digest its tag ' +
    'resolved to). With --keep, image garbage collection leaves it alone. A reference the registry ' +
    'does not resolve, or a Host that cannot pull it, fails the command with the error.',
  examples: [
    'kubectl gantry pull registry.example/web:1',
    'kubectl gantry pull registry.example/web:1 --keep',
  ],
  options: {
    name: { type: 'string' },
    keep: { type: 'boolean' },
    'no-wait': { type: 'boolean' },
  },
  async run(ctx: Context) {
    const [ref, ...extra] = ctx.positionals;
    if (!ref) throw usageError(pull, 'an image is required');
    if (extra.length > 0) throw usageError(pull, `unexpected argument "${extra[0]}"`);
    const cluster = ctx.cluster();
    const api = cluster.api('Image');
    const name = (ctx.values.name as string | undefined) ?? nameFromImage(ref);
    const created = await api.create({
      apiVersion: 'gantry.dev/v1alpha1',
      kind: 'Image',
      metadata: { name, namespace: cluster.namespace },
      spec: { image: ref, ...(ctx.values.keep ? { keep: true } : {}) },
    });
    ctx.out(`image.gantry.dev/${created.metadata.name} created\n`);
    if (ctx.values['no-wait']) return 0;
    const key = { namespace: cluster.namespace, name };
    for (;;) {
      const i = await api.get(key);
      if (!i) throw new CliError(`image.gantry.dev/${name} was deleted while pulling`);
      const s = i.status;
      const current = (cond: string) => {
        const c = getCondition(s?.conditions, cond);
        return c && (c.observedGeneration ?? 0) >= (i.metadata.generation ?? 1) ? c : undefined;
      };
      const resolved = current('Resolved');
      if (resolved?.status === 'False') throw new CliError(`${ref}: ${resolved.reason}: ${resolved.message}`);
      const ready = current('Ready');
      if (ready?.reason === 'PullFailed') throw new CliError(`${ref}: ${ready.message}`);
      if (ready?.status === 'True') {
        ctx.out(`${ref}: ${s?.digest ?? ''} on ${s?.readyHosts ?? 0} of ${s?.desiredHosts ?? 0} hosts\n`);
        return 0;
      }
      await sleep(realClock, 500);
    }
  },
};
