// The aggregated API server's command line: flags (or GANTRY_SUBRESOURCES_* environment
// variables), checked with zod, as the agent's (src/agent/options.ts).
import { z } from 'zod';
import { parseFlags } from '../obs/flags.js';

const name = z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a Kubernetes object name');

export const SubresourcesOptionsSchema = z.object({
  kubeconfig: z.string().optional(),
  /** HTTPS for the apiserver's front proxy. */
  bindAddress: z.string(),
  metricsBindAddress: z.string(),
  healthProbeBindAddress: z.string(),
  /** Its own namespace: the Service in front of it and the Secret with its CA live there. */
  namespace: name,
  /** The Service the APIService names: its serving certificate is for <service>.<namespace>.svc. */
  serviceName: name,
  /** The APIService to give the CA to (spec.caBundle). */
  apiService: name,
  /** Secret (in --namespace) holding the CA, the serving and the client certificates. */
  pkiSecret: name,
  /** The agents' namespace and the Secret there with their serving certificate (agent --stream-tls-secret). */
  agentNamespace: name,
  agentTlsSecret: name,
  logLevel: z.enum(['error', 'warn', 'info', 'debug']),
});

export type SubresourcesOptions = z.output<typeof SubresourcesOptionsSchema>;

const defaults: Record<keyof SubresourcesOptions, string | undefined> = {
  kubeconfig: undefined,
  bindAddress: '0.0.0.0:8443',
  metricsBindAddress: '127.0.0.1:8080',
  healthProbeBindAddress: '127.0.0.1:8081',
  namespace: 'gantry-system',
  serviceName: 'gantry-subresources',
  apiService: 'v1alpha1.subresources.gantry.dev',
  pkiSecret: 'gantry-subresources-pki',
  agentNamespace: 'gantry-system-agent',
  agentTlsSecret: 'gantry-agent-tls',
  logLevel: 'info',
};

/** Flags win over environment variables, which win over defaults. */
export function parseSubresourcesOptions(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): SubresourcesOptions {
  return parseFlags(SubresourcesOptionsSchema, defaults, 'GANTRY_SUBRESOURCES', argv, env);
}
