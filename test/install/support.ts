// Helpers for the install suite: Gantry installed the way its users install it (Helm, or kapply of
// the plain manifests) onto the local cluster's kubelet nodes, from Gantry's image built here.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { V1Pod } from '@kubernetes/client-node';
import { CriClient } from '../../src/cri/client.js';
import { helm } from '../../src/install/helm.js';
import { ensureGantryImage, type GantryImage } from '../../src/localcluster/image.js';
import { cacheDir } from '../../src/localcluster/versions.js';
import { getObject, kubectlOk, localCluster } from '../support/cluster.js';
import { eventually } from '../support/wait.js';

const run = promisify(execFile);
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The release users had before Gantry was ever run from its chart on kubelet nodes: the last
 * commit before that work. Its chart is installed as it was, then upgraded to this checkout's.
 */
export const previousRelease = 'f70e2f8';

export interface Release {
  chart: string;
  image: GantryImage;
}

/** This checkout's chart and image (built here, pushed to the local registry). */
export async function currentRelease(): Promise<Release> {
  return {
    chart: path.join(repoRoot, 'charts', 'gantry'),
    image: await ensureGantryImage({ out: () => {} }),
  };
}

/**
 * An earlier commit's chart and image. Its image is built from that commit's sources with this
 * checkout's Dockerfile: the Dockerfile then named public base images, which cannot be pulled
 * here; the bases are the only difference.
 */
export async function releaseAt(commit: string): Promise<Release> {
  const dir = path.join(cacheDir, 'releases', commit);
  if (!fs.existsSync(path.join(dir, '.complete'))) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    await run('sh', ['-c', `git -C "${repoRoot}" archive ${commit} | tar -x -C "${dir}"`]);
    for (const f of ['Dockerfile', '.dockerignore'])
      fs.copyFileSync(path.join(repoRoot, f), path.join(dir, f));
    fs.writeFileSync(path.join(dir, '.complete'), `${commit}\n`);
  }
  return {
    chart: path.join(dir, 'charts', 'gantry'),
    image: await ensureGantryImage({ context: dir, out: () => {} }),
  };
}

/** helm that must succeed; returns its output. */
export async function helmOk(args: string[], timeoutMs = 600_000): Promise<string> {
  const r = await helm(['--kubeconfig', localCluster().kubeconfig, ...args], { timeoutMs });
  if (r.code !== 0) throw new Error(`helm ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  return r.stdout + r.stderr;
}

export async function pods(namespace: string, selector: string): Promise<V1Pod[]> {
  const list = await getObject<{ items: V1Pod[] }>(['pods', '-n', namespace, '-l', selector]);
  return list?.items ?? [];
}

const ready = (p: V1Pod) =>
  !p.metadata?.deletionTimestamp &&
  (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

/** Waits until exactly `count` pods of the selector are Ready (none terminating) and returns them. */
export async function readyPods(
  namespace: string,
  selector: string,
  count: number,
  timeoutMs = 300_000,
): Promise<V1Pod[]> {
  return eventually(
    `${count} Ready pods ${selector} in ${namespace}`,
    async () => {
      const all = await pods(namespace, selector);
      return all.length === count && all.every(ready) ? all : undefined;
    },
    { timeoutMs, intervalMs: 1000 },
  );
}

/**
 * Runs a Node.js script inside a pod's container (Gantry's image has node and no shell) and
 * returns what it printed.
 */
export async function nodeScriptIn(namespace: string, pod: string, script: string): Promise<string> {
  return kubectlOk(['exec', '-n', namespace, pod, '--', '/nodejs/bin/node', '-e', script]);
}

/**
 * A script for nodeScriptIn: one request to the apiserver with the pod's own projected
 * service-account token, printing `<status> <metav1.Status message>`.
 */
export function requestWithPodToken(
  method: string,
  apiPath: string,
  body: unknown,
  contentType: string,
): string {
  return `
const fs = require('node:fs'), https = require('node:https');
const sa = '/var/run/secrets/kubernetes.io/serviceaccount/';
const req = https.request({
  host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT,
  method: ${JSON.stringify(method)}, path: ${JSON.stringify(apiPath)}, ca: fs.readFileSync(sa + 'ca.crt'),
  headers: { authorization: 'Bearer ' + fs.readFileSync(sa + 'token', 'utf8').trim(), 'content-type': ${JSON.stringify(contentType)} },
}, (res) => { let b = ''; res.on('data', (d) => (b += d)); res.on('end', () => {
  let m = ''; try { m = JSON.parse(b).message ?? ''; } catch {}
  console.log(res.statusCode + ' ' + m);
}); });
req.end(${JSON.stringify(JSON.stringify(body))});
`;
}

/** A CRI client per host for Gantry's own runtimes, by host name. */
export function gantryRuntimes(): Record<string, CriClient> {
  return Object.fromEntries(localCluster().hosts.map((h) => [h.name, new CriClient(h.criSocket)]));
}
