// The aggregated API subresources.gantry.dev/v1alpha1, served over HTTPS to the apiserver's front
// proxy. Every request: who (frontproxy.ts), may they (authorize.ts), which Container and Host
// (informer caches), then the Host's agent (agents.ts), whose answer goes back as it comes:
//   GET  namespaces/{ns}/containers/{name}/log?follow&previous&tailLines&timestamps   pods/log's options
//   GET  namespaces/{ns}/containers/{name}/exec?command&stdin&stdout&stderr&tty       a WebSocket upgrade,
//        joined through the agent to the runtime's streaming server (src/kube/upgrade.ts)
//   GET  [namespaces/{ns}/]containermetrics                                          every agent's last
//        sample of CPU and memory (metrics.ts), for whoever may list the Containers
// plus discovery, which the apiserver reads to list the API.
import type http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { type Container, type Host, subresourcesGroup } from '../api/v1alpha1/index.js';
import { joinKey } from '../kube/keys.js';
import type { Cache } from '../kube/store.js';
import { execQuery, HttpError, parseExecOptions, sendStatus } from '../kube/streaming.js';
import { joinUpgrade, refuseUpgrade, upgradeHeaders } from '../kube/upgrade.js';
import type { TlsIdentity } from '../kube/streamtls.js';
import type { BindAddress } from '../obs/http.js';
import type { Logger } from '../obs/logger.js';
import { agentEndpoint, agentGet, agentUpgrade } from './agents.js';
import { containerMetrics } from './metrics.js';
import type { Access, Authorizer } from './authorize.js';
import { authenticate, type RequestHeaderConfig, type UserInfo } from './frontproxy.js';
import type { KeyPair } from './x509.js';

export const version = 'v1alpha1';
const base = `/apis/${subresourcesGroup}/${version}`;

const groupVersion = { groupVersion: `${subresourcesGroup}/${version}`, version };
/** Discovery, as the apiserver asks for it (and `kubectl api-resources` shows it). */
const discovery: Record<string, object> = {
  '/apis': {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: [{ name: subresourcesGroup, versions: [groupVersion], preferredVersion: groupVersion }],
  },
  [`/apis/${subresourcesGroup}`]: {
    kind: 'APIGroup',
    apiVersion: 'v1',
    name: subresourcesGroup,
    versions: [groupVersion],
    preferredVersion: groupVersion,
  },
  [base]: {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: groupVersion.groupVersion,
    resources: [
      { name: 'containers/log', singularName: '', namespaced: true, kind: 'Container', verbs: ['get'] },
      {
        name: 'containermetrics',
        singularName: '',
        namespaced: true,
        kind: 'ContainerMetrics',
        verbs: ['list'],
      },
      {
        name: 'containers/exec',
        singularName: '',
        namespaced: true,
        kind: 'Container',
        verbs: ['create', 'get'],
      },
    ],
  },
};

const logPath = new RegExp(`^${base}/namespaces/([^/]+)/containers/([^/]+)/log$`);
const execPath = new RegExp(`^${base}/namespaces/([^/]+)/containers/([^/]+)/exec$`);
const metricsPath = new RegExp(`^${base}(?:/namespaces/([^/]+))?/containermetrics$`);

/** The options of pods/log this API takes, checked; passed to the agent by their names there. */
function logQuery(q: URLSearchParams, uid: string): URLSearchParams {
  const out = new URLSearchParams({ uid });
  for (const k of ['follow', 'previous', 'timestamps']) if (q.has(k)) out.set(k, q.get(k)!);
  const tail = q.get('tailLines');
  if (tail !== null) {
    if (!/^\d+$/.test(tail)) throw new HttpError(400, `tailLines must be a whole number, not "${tail}"`);
    out.set('tail', tail);
  }
  const unsupported = ['sinceSeconds', 'sinceTime', 'limitBytes', 'container'].filter((k) => q.has(k));
  if (unsupported.length)
    throw new HttpError(400, `not supported for Gantry Containers: ${unsupported.join(', ')}`);
  return out;
}

export interface ServerDeps {
  containers: Cache<Container>;
  hosts: Cache<Host>;
  authorizer: Pick<Authorizer, 'check'>;
  log: Logger;
}

export class SubresourceServer {
  private server: https.Server | undefined;
  private frontProxy: RequestHeaderConfig | undefined;
  private agentIdentity: TlsIdentity | undefined;

  constructor(private readonly deps: ServerDeps) {}

  get ready(): boolean {
    return this.server !== undefined;
  }

  /** (Re)configures TLS: its serving certificate, and the front proxy's CA to check callers against. */
  configure(serving: KeyPair, agentIdentity: TlsIdentity, frontProxy: RequestHeaderConfig): void {
    this.frontProxy = frontProxy;
    this.agentIdentity = agentIdentity;
    // Not rejected in the handshake: discovery and refusals answer over TLS, and authenticate() says why.
    const options = {
      cert: serving.cert,
      key: serving.key,
      ca: frontProxy.ca,
      requestCert: true,
      rejectUnauthorized: false,
    };
    if (this.server) this.server.setSecureContext(options);
    else {
      this.server = https.createServer(options, (req, res) => void this.handle(req, res));
      this.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
        void this.exec(req, socket, head);
      });
    }
  }

  async listen(bind: BindAddress): Promise<void> {
    const server = this.server!;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(bind.port, bind.host, () => resolve());
    });
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
  }

  private user(req: http.IncomingMessage): UserInfo {
    return authenticate(req, this.frontProxy!);
  }

  /** The Container a request names, after checking the user may do `what` to it. */
  private async resolve(
    req: http.IncomingMessage,
    m: RegExpExecArray,
    what: Pick<Access, 'verb' | 'subresource'>,
  ): Promise<Container> {
    const [namespace, name] = [decodeURIComponent(m[1]!), decodeURIComponent(m[2]!)];
    await this.deps.authorizer.check(this.user(req), { ...what, namespace, name });
    const c = this.deps.containers.get(joinKey({ namespace, name }));
    if (!c) throw new HttpError(404, `containers.gantry.dev "${name}" not found in namespace "${namespace}"`);
    return c;
  }

  /**
   * exec, as pods/exec over WebSocket: `create` on containers/exec is what RBAC must allow (the
   * apiserver asks the same of pods/exec whatever the method), then the agent takes the socket.
   */
  private async exec(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'https://subresources');
      const m = execPath.exec(url.pathname);
      if (!m || req.method !== 'GET') {
        throw new HttpError(
          404,
          `the server could not find the requested resource (${req.method} ${url.pathname} with an upgrade)`,
        );
      }
      const c = await this.resolve(req, m, { verb: 'create', subresource: 'exec' });
      const query = execQuery(parseExecOptions(url.searchParams));
      query.set('uid', c.metadata.uid!);
      const endpoint = agentEndpoint(c, this.deps.hosts);
      const path = `/v1/namespaces/${encodeURIComponent(c.metadata.namespace!)}/containers/${encodeURIComponent(c.metadata.name!)}/exec?${query}`;
      await joinUpgrade(
        socket,
        head,
        agentUpgrade(endpoint, this.agentIdentity!, path, upgradeHeaders(req)),
        (e) => new HttpError(502, `the agent at ${endpoint.host} did not answer: ${e.message}`),
      );
    } catch (e) {
      if (!(e instanceof HttpError) || e.code >= 500)
        this.deps.log.warn('exec failed', { path: req.url, err: e });
      refuseUpgrade(socket, e);
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    try {
      const url = new URL(req.url ?? '/', 'https://subresources');
      const doc = discovery[url.pathname.replace(/\/$/, '')];
      if (req.method === 'GET' && doc) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
        return;
      }
      const metrics = metricsPath.exec(url.pathname);
      if (metrics && req.method === 'GET') {
        const namespace = metrics[1] && decodeURIComponent(metrics[1]);
        await this.deps.authorizer.check(this.user(req), { verb: 'list', namespace });
        const list = await containerMetrics(
          this.deps.hosts.list(),
          this.agentIdentity!,
          namespace,
          abort.signal,
        );
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(list));
        return;
      }
      const sub = logPath.exec(url.pathname);
      if (sub && req.method === 'GET') {
        const c = await this.resolve(req, sub, { verb: 'get', subresource: 'log' });
        const endpoint = agentEndpoint(c, this.deps.hosts);
        const path = `/v1/namespaces/${encodeURIComponent(c.metadata.namespace!)}/containers/${encodeURIComponent(c.metadata.name!)}/log`;
        const upstream = await agentGet(
          endpoint,
          this.agentIdentity!,
          `${path}?${logQuery(url.searchParams, c.metadata.uid!)}`,
          {
            signal: abort.signal,
          },
        );
        res.writeHead(upstream.statusCode ?? 502, {
          'content-type': upstream.headers['content-type'] ?? 'text/plain',
        });
        res.flushHeaders();
        upstream.pipe(res);
        return;
      }
      throw new HttpError(
        404,
        `the server could not find the requested resource (${req.method} ${url.pathname})`,
      );
    } catch (e) {
      if (!(e instanceof HttpError) || e.code >= 500)
        this.deps.log.warn('Request failed', { path: req.url, err: e });
      sendStatus(res, e);
    }
  }
}
