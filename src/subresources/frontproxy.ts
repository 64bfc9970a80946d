// Who is asking: the apiserver authenticates the user and passes the request on through its front
// proxy, naming the user in X-Remote-* headers. Those headers are believed only on a connection
// whose client certificate the requestheader CA signed, with a name the apiserver allows, as
// every aggregated API server does (k8s.io/apiserver's request-header authenticator): anyone else
// could write them. The settings come from the ConfigMap the apiserver publishes for that
// purpose, kube-system/extension-apiserver-authentication.
import type http from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { CoreV1Api } from '@kubernetes/client-node';
import { isNotFound } from '../kube/errors.js';
import { HttpError } from '../kube/streaming.js';

export interface RequestHeaderConfig {
  /** PEM: the CA of the front proxy's client certificate. */
  ca: string;
  /** Common names the proxy's certificate may have; empty: any the CA signed. */
  allowedNames: string[];
  usernameHeaders: string[];
  uidHeaders: string[];
  groupHeaders: string[];
  extraHeaderPrefixes: string[];
}

export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
  extra: Record<string, string[]>;
}

const list = (v: string | undefined): string[] => (v ? (JSON.parse(v) as string[]) : []);

/** Reads the apiserver's front-proxy settings; undefined when it has none (no --requestheader-client-ca-file). */
export async function readRequestHeaderConfig(core: CoreV1Api): Promise<RequestHeaderConfig | undefined> {
  const cm = await core
    .readNamespacedConfigMap({ namespace: 'kube-system', name: 'extension-apiserver-authentication' })
    .catch((e: unknown) => {
      if (isNotFound(e)) return undefined;
      throw e;
    });
  const d = cm?.data ?? {};
  const ca = d['requestheader-client-ca-file'];
  if (!ca) return undefined;
  return {
    ca,
    allowedNames: list(d['requestheader-allowed-names']),
    usernameHeaders: list(d['requestheader-username-headers']),
    uidHeaders: list(d['requestheader-uid-headers']),
    groupHeaders: list(d['requestheader-group-headers']),
    extraHeaderPrefixes: list(d['requestheader-extra-headers-prefix']),
  };
}

/** The user the front proxy names; HttpError 401 when the caller is not the front proxy. */
export function authenticate(req: http.IncomingMessage, cfg: RequestHeaderConfig): UserInfo {
  const socket = req.socket as TLSSocket;
  if (!socket.authorized) {
    throw new HttpError(
      401,
      'only the Kubernetes apiserver may call this server (through its front proxy, with a client certificate ' +
        `signed by its requestheader-client-ca-file): ${String(socket.authorizationError ?? 'no client certificate')}`,
    );
  }
  const cn = String(socket.getPeerCertificate().subject?.CN ?? '');
  if (cfg.allowedNames.length > 0 && !cfg.allowedNames.includes(cn)) {
    throw new HttpError(
      401,
      `client certificate "${cn}" is not among the apiserver's requestheader-allowed-names`,
    );
  }
  const values = (name: string) => req.headersDistinct[name.toLowerCase()] ?? [];
  const username = cfg.usernameHeaders.flatMap(values).find((v) => v !== '');
  if (!username) throw new HttpError(401, 'the front proxy named no user');
  const extra: Record<string, string[]> = {};
  for (const prefix of cfg.extraHeaderPrefixes.map((p) => p.toLowerCase())) {
    for (const [header, v] of Object.entries(req.headersDistinct)) {
      if (!header.startsWith(prefix) || !v) continue;
      const key = decodeURIComponent(header.slice(prefix.length)).toLowerCase();
      extra[key] = [...(extra[key] ?? []), ...v];
    }
  }
  return {
    username,
    uid: cfg.uidHeaders.flatMap(values).find((v) => v !== ''),
    groups: cfg.groupHeaders.flatMap(values),
    extra,
  };
}
