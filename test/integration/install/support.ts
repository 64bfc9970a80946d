// Helpers for the install tests: YAML read by the real kubectl (no YAML library in the project),
// and kubeconfigs with a ServiceAccount token instead of the admin certificate (for kubectl's
// `kubeconfig` option, test/support/cluster.ts).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { localCluster } from '../../support/cluster.js';

const run = promisify(execFile);

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

/** Splits a stream of concatenated JSON documents (what kubectl prints for several objects). */
export function parseJsonStream(text: string): unknown[] {
  const out: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') inString = true;
    else if (ch === '{' || ch === '[') {
      if (depth++ === 0) start = i;
    } else if (ch === '}' || ch === ']') {
      if (--depth === 0) out.push(JSON.parse(text.slice(start, i + 1)));
    }
  }
  return out;
}

/**
 * Kubernetes objects in a YAML stream, read by kubectl offline (`label --local` removing a label
 * nobody sets changes nothing and prints each object as JSON). Works for any kind, CRDs included.
 */
export async function parseObjects(yaml: string): Promise<KubeObject[]> {
  if (!/^kind:/m.test(yaml)) return [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-yaml-'));
  try {
    const file = path.join(dir, 'objects.yaml');
    fs.writeFileSync(file, yaml);
    const { stdout } = await run(
      `${localCluster().binDir}/kubectl`,
      ['--kubeconfig', '/dev/null', 'label', '--local', '-o', 'json', '-f', file, 'gantry-yaml-parse-'],
      { maxBuffer: 64 * 1024 * 1024 },
    );
    return parseJsonStream(stdout).map((o) => {
      const obj = o as KubeObject;
      // kubectl label adds an empty labels map where there was none.
      if (obj.metadata.labels && Object.keys(obj.metadata.labels).length === 0) delete obj.metadata.labels;
      return obj;
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function objectId(o: KubeObject): string {
  return `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
}

export function find(objects: KubeObject[], kind: string, name?: string): KubeObject {
  const o = objects.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  if (!o) throw new Error(`no ${kind}${name ? ` ${name}` : ''} among ${objects.map(objectId).join(', ')}`);
  return o;
}

/** A kubeconfig that authenticates with `token` only (no client certificate). */
export function writeTokenKubeconfig(file: string, token: string, user: string): void {
  const admin = JSON.parse(fs.readFileSync(localCluster().kubeconfig, 'utf8')) as {
    clusters: { name: string; cluster: Record<string, string> }[];
  };
  const cluster = admin.clusters[0]!;
  fs.writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [cluster],
      users: [{ name: user, user: { token } }],
      contexts: [{ name: user, context: { cluster: cluster.name, user } }],
      'current-context': user,
    }),
    { mode: 0o600 },
  );
}

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A short random suffix for names this run creates (the cluster is shared). */
export function runId(): string {
  return `${Date.now().toString(36).slice(-5)}${Math.floor(Math.random() * 1296)
    .toString(36)
    .padStart(2, '0')}`;
}
