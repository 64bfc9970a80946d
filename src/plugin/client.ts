// The plugin's way to the cluster, as kubectl finds it: --kubeconfig, else $KUBECONFIG, else
// ~/.kube/config (or the in-cluster account); --context, else the current one; -n, else the
// context's namespace, else "default". Errors read as kubectl's: "Error from server (Reason): ...".
import { ApiException, KubeConfig } from '@kubernetes/client-node';
import { subresourcesGroup, type KindName } from '../api/v1alpha1/index.js';
import { KubeClient } from '../kube/client.js';
import { resourceClient } from '../kube/resources.js';

export interface GlobalFlags {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  allNamespaces?: boolean;
}

/** A failure to tell the user, exit code 1 unless said otherwise. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export function loadConfig(flags: GlobalFlags): KubeConfig {
  const kc = new KubeConfig();
  if (flags.kubeconfig) kc.loadFromFile(flags.kubeconfig);
  else kc.loadFromDefault();
  if (flags.context) {
    if (!kc.getContextObject(flags.context)) throw new CliError(`context "${flags.context}" does not exist`);
    kc.setCurrentContext(flags.context);
  }
  if (!kc.getCurrentCluster()) {
    throw new CliError('no cluster configured: set KUBECONFIG, or give --kubeconfig (and --context)');
  }
  return kc;
}

export class Cluster {
  readonly client: KubeClient;
  readonly namespace: string;

  constructor(
    readonly kc: KubeConfig,
    flags: GlobalFlags,
  ) {
    this.client = new KubeClient(kc);
    this.namespace = flags.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  }

  api<K extends KindName>(kind: K) {
    return resourceClient(this.client, kind);
  }

  /** A path of Gantry's aggregated API (logs, exec, metrics). */
  subresourcePath(rest: string): string {
    return `/apis/${subresourcesGroup}/v1alpha1/${rest}`;
  }
}

/** An apiserver error as kubectl prints it; anything else as its message. */
export function describeError(e: unknown): string {
  if (e instanceof ApiException) {
    let status: { reason?: string; message?: string } = {};
    try {
      status = JSON.parse(String(e.body)) as typeof status;
    } catch {
      status = { message: String(e.body || e.message) };
    }
    return `Error from server${status.reason ? ` (${status.reason})` : ''}: ${status.message ?? e.message}`;
  }
  if (e instanceof CliError) return `error: ${e.message}`;
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ECONNREFUSED') return `error: the cluster is unreachable: ${err.message}`;
  return `error: ${err?.message ?? String(e)}`;
}

export function isNotFound(e: unknown): boolean {
  return e instanceof ApiException && e.code === 404;
}
