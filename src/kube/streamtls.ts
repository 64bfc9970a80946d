// The TLS identities between Gantry's aggregated API server (src/subresources) and the agents,
// over which Containers' logs travel. One CA, which the aggregated server keeps in a Secret of
// its own namespace and uses to issue: its client certificate (the one identity agents accept) and
// the agents' serving certificate, which it writes as a kubernetes.io/tls Secret (with ca.crt)
// into the agents' namespace. Agents hold no CA key: a node that is taken over can read its own
// certificate, not make one that reaches another node's containers.
import type { SecretReader } from './pullsecrets.js';

/**
 * The name in every agent's serving certificate: agents are reached by address, which differs per
 * node, so the client checks this name instead (TLS servername), as etcd peers do.
 */
export const agentServerName = 'gantry-agent';
/** Common name of the aggregated server's client certificate: the only client agents serve. */
export const subresourcesClientName = 'gantry-subresources';

export interface TlsIdentity {
  /** PEM: the CA that signed the peer's certificate. */
  ca: string;
  cert: string;
  key: string;
}

/** A kubernetes.io/tls Secret with ca.crt as a TLS identity; undefined while it is absent or incomplete. */
export async function readTlsSecret(
  read: SecretReader,
  namespace: string,
  name: string,
): Promise<TlsIdentity | undefined> {
  const data = (await read(namespace, name))?.data ?? {};
  const field = (k: string) => (data[k] ? Buffer.from(data[k], 'base64').toString('utf8') : undefined);
  const [ca, cert, key] = [field('ca.crt'), field('tls.crt'), field('tls.key')];
  return ca && cert && key ? { ca, cert, key } : undefined;
}

export function sameIdentity(a: TlsIdentity | undefined, b: TlsIdentity | undefined): boolean {
  return a?.ca === b?.ca && a?.cert === b?.cert && a?.key === b?.key;
}
