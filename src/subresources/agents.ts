// Reaching the agent of a Container's Host: at the endpoint the agent names on its Host
// (annotation gantry.dev/stream-endpoint), over TLS with this server's client certificate, and
// checking the agent's certificate against the CA for the name every agent's certificate carries.
import type http from 'node:http';
import https from 'node:https';
import type tls from 'node:tls';
import { type Container, type Host, streamEndpointAnnotation } from '../api/v1alpha1/index.js';
import type { Cache } from '../kube/store.js';
import { HttpError } from '../kube/streaming.js';
import { agentServerName, type TlsIdentity } from '../kube/streamtls.js';

/** The agent endpoint of the Host a Container is bound to; HttpError 503 when there is none to reach. */
export function agentEndpoint(c: Container, hosts: Cache<Host>): URL {
  const id = `${c.metadata.namespace}/${c.metadata.name}`;
  const hostName = c.spec.nodeName;
  if (!hostName)
    throw new HttpError(503, `Container ${id} is not on a Host yet (phase ${c.status?.phase ?? 'Pending'})`);
  const endpoint = hosts.get(hostName)?.metadata.annotations?.[streamEndpointAnnotation];
  if (!endpoint) {
    throw new HttpError(
      503,
      `the agent of Host ${hostName} has not published its stream endpoint (annotation ${streamEndpointAnnotation}): ` +
        'is it running, and has it read its TLS identity?',
    );
  }
  return new URL(endpoint);
}

function tlsOptions(identity: TlsIdentity): tls.ConnectionOptions {
  return { ca: identity.ca, cert: identity.cert, key: identity.key, servername: agentServerName };
}

/** A GET on the agent; resolves with its response whatever the status. */
export function agentGet(
  endpoint: URL,
  identity: TlsIdentity,
  path: string,
  opts: { signal?: AbortSignal; timeoutMs?: number } = {},
): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      new URL(path, endpoint),
      { ...tlsOptions(identity), signal: opts.signal, timeout: opts.timeoutMs ?? 10_000 },
      (res) => {
        // The timeout guards the connection, not a followed log that is quiet for a while.
        req.setTimeout(0);
        resolve(res);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) =>
      reject(new HttpError(502, `the agent at ${endpoint.host} did not answer: ${e.message}`)),
    );
  });
}

/** An upgrade request to the agent (not yet sent: joinUpgrade sends it). */
export function agentUpgrade(
  endpoint: URL,
  identity: TlsIdentity,
  path: string,
  headers: Record<string, string>,
): http.ClientRequest {
  const req = https.request(new URL(path, endpoint), { ...tlsOptions(identity), headers, timeout: 10_000 });
  // The timeout guards the handshake; a session may be idle for as long as its user likes.
  req.on('upgrade', () => req.setTimeout(0));
  req.on('timeout', () => req.destroy(new Error('timed out')));
  return req;
}
