// Output as kubectl prints it: aligned columns in capitals (three spaces apart), ages like
// "45s", "3m12s", "2d4h", and -o json | yaml | name | wide.
import { dumpYaml, type KubernetesObject } from '@kubernetes/client-node';
import type { ObjectOf } from '../api/v1alpha1/index.js';
import type { Context } from './cli.js';
import { CliError } from './client.js';

export type Format = 'table' | 'wide' | 'json' | 'yaml' | 'name';

export function parseFormat(value: string | undefined): Format {
  if (value === undefined) return 'table';
  if (['wide', 'json', 'yaml', 'name'].includes(value)) return value as Format;
  throw new CliError(
    `unable to match a printer suitable for the output format "${value}", allowed formats are: json, name, wide, yaml`,
  );
}

/** kubectl's HumanDuration, as its AGE column shows it. */
export function age(since: string | Date | undefined, now = Date.now()): string {
  if (!since) return '<unknown>';
  const s = Math.max(0, Math.floor((now - new Date(since).getTime()) / 1000));
  const [m, h, d] = [Math.floor(s / 60), Math.floor(s / 3600), Math.floor(s / 86400)];
  if (s < 120) return `${s}s`;
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (h < 3) return `${m}m`;
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  if (d < 8) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  return `${d}d`;
}

/** Rows under a header, each column as wide as its widest cell. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + 3)))
      .join('')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** Objects in a machine-readable form; a list when there are several (or none). */
export function printObjects(
  objects: KubernetesObject[],
  format: 'json' | 'yaml' | 'name',
  single: boolean,
): string {
  if (format === 'name') return objects.map((o) => `${kindOf(o)}/${o.metadata?.name}\n`).join('');
  const doc =
    single && objects.length === 1
      ? objects[0]
      : { apiVersion: 'v1', kind: 'List', items: objects, metadata: {} };
  return format === 'json' ? `${JSON.stringify(doc, null, 4)}\n` : dumpYaml(doc);
}

/** "container.gantry.dev", as kubectl names objects in messages. */
export function kindOf(o: KubernetesObject): string {
  const group = o.apiVersion?.includes('/') ? o.apiVersion.split('/')[0] : '';
  return `${o.kind?.toLowerCase()}${group ? `.${group}` : ''}`;
}

/**
 * The Containers or Images of the namespace (of every namespace with -A), sorted as kubectl sorts
 * them, for a command that prints them as a table. With -o json, yaml or name they are printed
 * here, and with none kubectl's "No resources found" is: then it resolves undefined.
 */
export async function listForTable<K extends 'Container' | 'Image'>(
  ctx: Context,
  kind: K,
): Promise<ObjectOf<K>[] | undefined> {
  const cluster = ctx.cluster();
  const api = cluster.api(kind);
  const list = ctx.flags.allNamespaces ? await api.list() : await api.list({ namespace: cluster.namespace });
  const items = [...list].sort(
    (a, b) =>
      (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') ||
      (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''),
  );
  if (ctx.format === 'json' || ctx.format === 'yaml' || ctx.format === 'name') {
    ctx.out(printObjects(items, ctx.format, false));
    return undefined;
  }
  if (items.length === 0) {
    process.stderr.write(
      ctx.flags.allNamespaces
        ? 'No resources found\n'
        : `No resources found in ${cluster.namespace} namespace.\n`,
    );
    return undefined;
  }
  return items;
}
