// Users of the local cluster as people are: a ServiceAccount's own token in a kubeconfig of its own
// (the apiserver authenticates it and RBAC decides), and `kubectl gantry` found on the PATH the way
// kubectl finds every plugin, run as a user types it.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { kubectlOk, localCluster, type CmdResult } from './cluster.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
// Kubeconfigs hold tokens: gone with the test file's process.
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-users-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));

/** A new ServiceAccount of `namespace` and a kubeconfig for its token, on the admin kubeconfig's cluster. */
export async function userKubeconfig(namespace: string, sa: string): Promise<string> {
  await kubectlOk(['create', 'serviceaccount', sa, '-n', namespace]);
  const token = (await kubectlOk(['create', 'token', sa, '-n', namespace, '--duration=1h'])).trim();
  const admin = JSON.parse(await kubectlOk(['config', 'view', '--raw', '-o', 'json'])) as {
    clusters: { cluster: Record<string, string> }[];
  };
  const file = path.join(work, `${namespace}-${sa}.kubeconfig`);
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'local', cluster: admin.clusters[0]!.cluster }],
    users: [{ name: sa, user: { token } }],
    contexts: [{ name: sa, context: { cluster: 'local', user: sa, namespace } }],
    'current-context': sa,
  };
  fs.writeFileSync(file, JSON.stringify(doc), { mode: 0o600 });
  return file;
}

/** A user as userKubeconfig makes one, bound to the ClusterRole `role` (view, edit) in its namespace. */
export async function userWithRole(namespace: string, sa: string, role: string): Promise<string> {
  const file = await userKubeconfig(namespace, sa);
  await kubectlOk([
    'create',
    'rolebinding',
    `${sa}-${role}`,
    '-n',
    namespace,
    `--clusterrole=${role}`,
    `--serviceaccount=${namespace}:${sa}`,
  ]);
  return file;
}

let pluginDir: string | undefined;

/** A directory with `kubectl-gantry` (this checkout's, run from source) in it, for the PATH. */
export function installPlugin(): string {
  if (pluginDir) return pluginDir;
  const bin = path.join(work, 'bin');
  fs.mkdirSync(bin);
  const entry = path.join(repoRoot, 'src', 'cmd', 'kubectl-gantry.ts');
  fs.writeFileSync(
    path.join(bin, 'kubectl-gantry'),
    `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} --import tsx ${JSON.stringify(entry)} "$@"\n`,
    { mode: 0o755 },
  );
  pluginDir = bin;
  return bin;
}

/** `kubectl ARGS` (the cluster's own kubectl) as `user` (a kubeconfig), with the plugin on the PATH. */
export function typed(user: string, args: string[], timeoutMs = 60_000): Promise<CmdResult> {
  const dir = installPlugin();
  return new Promise((resolve) => {
    const child = spawn(path.join(localCluster().binDir, 'kubectl'), args, {
      cwd: repoRoot,
      env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, KUBECONFIG: user },
      timeout: timeoutMs,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += String(d)));
    child.stderr.on('data', (d) => (stderr += String(d)));
    child.on('close', (code, signal) =>
      resolve({ code: code ?? 1, stdout, stderr: stderr || (signal ? `killed by ${signal}` : '') }),
    );
  });
}
