// The apiserver's own count of the writes it served (apiserver_request_total, mutating verbs), by
// resource: read before and after a run, the difference is what that run cost the apiserver,
// whoever made the requests (the bench, the controller, the agents).
import type { KubeClient } from '../../src/kube/client.js';

const mutating = new Set(['POST', 'PUT', 'PATCH', 'APPLY', 'DELETE', 'DELETECOLLECTION']);

/** Writes served so far, by "resource[/subresource] VERB". */
export type WriteCounts = Map<string, number>;

export async function apiserverWrites(client: KubeClient): Promise<WriteCounts> {
  const res = await client.request('GET', '/metrics', { headers: { accept: 'text/plain' } });
  let text = '';
  for await (const chunk of res) text += String(chunk);
  const counts: WriteCounts = new Map();
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const labels = Object.fromEntries(
      [...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!] as const),
    );
    if (!mutating.has(labels.verb ?? '')) continue;
    const key = `${labels.resource}${labels.subresource ? `/${labels.subresource}` : ''} ${labels.verb}`;
    counts.set(key, (counts.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return counts;
}

/** What was written between two readings, largest first, and the total. */
export function writesBetween(
  before: WriteCounts,
  after: WriteCounts,
): { rows: [string, number][]; total: number } {
  const rows = [...after]
    .map(([key, n]) => [key, n - (before.get(key) ?? 0)] as [string, number])
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1]);
  return { rows, total: rows.reduce((sum, [, n]) => sum + n, 0) };
}

/** Prints writes per unit of work (per Container), by resource and verb. */
export function printWritesPer(label: string, units: number, before: WriteCounts, after: WriteCounts): void {
  const { rows, total } = writesBetween(before, after);
  console.log(
    `${label}: ${(total / units).toFixed(2)} apiserver writes per Container (${total} for ${units})`,
  );
  for (const [key, n] of rows) console.log(`  ${key.padEnd(36)} ${(n / units).toFixed(2)}`);
}
