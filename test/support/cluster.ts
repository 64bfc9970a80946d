// Access to the real local cluster for integration and e2e tests.
// test/run.ts starts the cluster (or reuses a running one) before these tests run.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { readLocalCluster, type LocalCluster } from '../../src/localcluster/state.js';

const run = promisify(execFile);

/** The running local cluster; throws (failing the test) when it is not up. */
export function localCluster(): LocalCluster {
  const c = readLocalCluster();
  if (!c)
    throw new Error('the local cluster is not up: run `npm run cluster:up` (test/run.ts does it for you)');
  return c;
}

export function kubeConfig(): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(localCluster().kubeconfig);
  return kc;
}

export interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface KubectlOptions {
  /** Written to kubectl's stdin (for `-f -`). */
  input?: string;
  /** Killed after this long; default 120 s (the cluster is shared and can be slow). */
  timeoutMs?: number;
  /** Another identity (a ServiceAccount token's kubeconfig); default the cluster's admin. */
  kubeconfig?: string;
}

/** Runs kubectl (the cluster's own version) against the local cluster; never throws on a non-zero exit. */
export async function kubectl(args: string[], opts: KubectlOptions = {}): Promise<CmdResult> {
  const c = localCluster();
  const child = run(`${c.binDir}/kubectl`, ['--kubeconfig', opts.kubeconfig ?? c.kubeconfig, ...args], {
    timeout: opts.timeoutMs ?? 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (opts.input !== undefined) {
    child.child.stdin?.end(opts.input);
  }
  try {
    const { stdout, stderr } = await child;
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string; signal?: string };
    return {
      code: typeof err.code === 'number' ? err.code : 1,
      stdout: err.stdout ?? '',
      stderr: err.stderr || (err.signal ? `killed by ${err.signal} (timeout?)` : ''),
    };
  }
}

/** kubectl that must succeed: returns stdout, throws with the exit code and stderr otherwise. */
export async function kubectlOk(args: string[], opts: KubectlOptions = {}): Promise<string> {
  const r = await kubectl(args, opts);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  return r.stdout;
}

/** `kubectl get -o json`, parsed; undefined when the object does not exist. */
export async function getObject<T>(args: string[]): Promise<T | undefined> {
  const r = await kubectl(['get', ...args, '-o', 'json']);
  if (r.code !== 0) {
    if (/NotFound|not found/.test(r.stderr)) return undefined;
    throw new Error(`kubectl get ${args.join(' ')}: ${r.stderr}`);
  }
  return JSON.parse(r.stdout) as T;
}

/**
 * A test namespace's clean-up: its Gantry objects deleted and waited for (their agents remove the
 * runtime objects behind the finalizers), then the namespace itself, without waiting.
 */
export async function deleteTestNamespace(namespace: string): Promise<void> {
  await kubectl([
    'delete',
    'migrations.gantry.dev,workloads.gantry.dev,containers.gantry.dev',
    '--all',
    '-n',
    namespace,
    '--wait=true',
    '--timeout=120s',
  ]);
  await kubectl(['delete', 'namespace', namespace, '--wait=false']);
}
