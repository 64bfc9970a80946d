// The agent's end of `kubectl gantry logs` and `exec`: an HTTPS endpoint that only Gantry's
// aggregated API server may call (mutual TLS, src/kube/streamtls.ts), which has authenticated the
// user and checked RBAC before it comes here. It serves a Container's log from the runtime's
// files, joins an exec's WebSocket to the runtime's streaming server (CRI Exec's URL), and gives
// the last sample of its containers' CPU and memory (`top`).
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import {
  API_VERSION,
  type Container,
  type Host,
  type HostUsage,
  streamEndpointAnnotation,
} from '../api/v1alpha1/index.js';
import { realClock, sleep } from '../kube/clock.js';
import type { CustomResourceClient } from '../kube/customresource.js';
import { HttpError, parseExecOptions, sendStatus } from '../kube/streaming.js';
import { joinUpgrade, refuseUpgrade, upgradeHeaders } from '../kube/upgrade.js';
import type { CriClient } from '../cri/client.js';
import { joinKey } from '../kube/keys.js';
import type { SecretReader } from '../kube/pullsecrets.js';
import type { Cache } from '../kube/store.js';
import { readTlsSecret, sameIdentity, subresourcesClientName, type TlsIdentity } from '../kube/streamtls.js';
import type { BindAddress } from '../obs/http.js';
import type { Logger } from '../obs/logger.js';
import { NoPreviousRun, readLog } from './logstream.js';
import { labels, logDirectory } from './runtimespec.js';
import type { StatsCollector } from './stats.js';

export interface StreamOptions {
  host: string;
  /** Field manager of the Host annotation naming this endpoint. */
  fieldManager: string;
  bind: BindAddress;
  /** https://<address>:<port>, as the aggregated server reaches this agent. */
  endpoint: string;
  tlsSecret: { namespace: string; name: string };
  logRoot: string;
}

export interface StreamDeps {
  containers: Cache<Container>;
  cri: CriClient;
  stats: Pick<StatsCollector, 'usage' | 'sampledAt'>;
  readSecret: SecretReader;
  hosts: Cache<Host>;
  hostsApi: CustomResourceClient<Host>;
  log: Logger;
}

const flag = (v: string | null) => v === 'true' || v === '1';

/** The Container a request names (namespace, name and the UID the aggregated server resolved). */
function target(containers: Cache<Container>, parts: string[], uid: string | null): Container {
  const [namespace, name] = [decodeURIComponent(parts[0]!), decodeURIComponent(parts[1]!)];
  const c = containers.get(joinKey({ namespace, name }));
  if (!c || (uid && c.metadata.uid !== uid)) {
    throw new HttpError(
      404,
      `this host's agent runs no Container ${namespace}/${name}${uid ? ` (uid ${uid})` : ''}`,
    );
  }
  return c;
}

const logRoute = /^\/v1\/namespaces\/([^/]+)\/containers\/([^/]+)\/log$/;
const execRoute = /^\/v1\/namespaces\/([^/]+)\/containers\/([^/]+)\/exec$/;

export class StreamServer {
  private server: https.Server | undefined;
  private identity: TlsIdentity | undefined;

  constructor(
    private readonly o: StreamOptions,
    private readonly deps: StreamDeps,
  ) {}

  /** Serves once the TLS identity exists, follows its rotation, and names itself on the Host. */
  async run(signal: AbortSignal): Promise<void> {
    let waiting = false;
    while (!signal.aborted) {
      try {
        const identity = await readTlsSecret(
          this.deps.readSecret,
          this.o.tlsSecret.namespace,
          this.o.tlsSecret.name,
        );
        if (!identity && !waiting) {
          this.deps.log.info(
            'Waiting for the TLS identity of the stream endpoint (the aggregated server issues it)',
            {
              secret: `${this.o.tlsSecret.namespace}/${this.o.tlsSecret.name}`,
            },
          );
        }
        waiting = !identity;
        if (identity && !sameIdentity(identity, this.identity)) await this.serve(identity);
        if (this.server) await this.announce();
      } catch (e) {
        this.deps.log.warn('Stream endpoint: setup failed; retrying', { err: e });
      }
      await sleep(realClock, this.identity ? 60_000 : 5_000, signal);
    }
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
  }

  private async serve(identity: TlsIdentity): Promise<void> {
    const tls = {
      ca: identity.ca,
      cert: identity.cert,
      key: identity.key,
      requestCert: true,
      rejectUnauthorized: true,
    };
    this.identity = identity;
    if (this.server) {
      this.server.setSecureContext(tls);
      this.deps.log.info('Stream endpoint: TLS identity renewed');
      return;
    }
    const server = https.createServer(tls, (req, res) => void this.handle(req, res));
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      void this.exec(req, socket, head);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.bind.port, this.o.bind.host, () => resolve());
    });
    this.server = server;
    this.deps.log.info('Serving logs, exec and stats to the aggregated API server', {
      ...this.o.bind,
      endpoint: this.o.endpoint,
    });
  }

  /** Names this endpoint on the Host (its own field manager: the Host's other writers are untouched). */
  private async announce(): Promise<void> {
    const live = this.deps.hosts.get(this.o.host);
    if (!live || live.metadata.annotations?.[streamEndpointAnnotation] === this.o.endpoint) return;
    await this.deps.hostsApi.apply(
      {
        apiVersion: API_VERSION,
        kind: 'Host',
        metadata: { name: this.o.host, annotations: { [streamEndpointAnnotation]: this.o.endpoint } },
      },
      { fieldManager: this.o.fieldManager },
    );
  }

  /** Only the aggregated server's certificate may call (the CA also signs serving certificates). */
  private authorize(req: http.IncomingMessage): void {
    const cn = (req.socket as TLSSocket).getPeerCertificate()?.subject?.CN;
    if (cn !== subresourcesClientName)
      throw new HttpError(403, `only ${subresourcesClientName} may call this endpoint`);
  }

  /** The running runtime container of `c` (CRI ID); 409 when it has none, as the kubelet answers. */
  private async runningContainer(c: Container): Promise<string> {
    const { containers } = await this.deps.cri.listContainers({
      filter: { labelSelector: { [labels.uid]: c.metadata.uid! }, state: { state: 'CONTAINER_RUNNING' } },
    });
    const [latest] = containers.sort((a, b) => (b.metadata?.attempt ?? 0) - (a.metadata?.attempt ?? 0));
    if (!latest) {
      throw new HttpError(
        409,
        `container ${c.metadata.namespace}/${c.metadata.name} is not running (phase ${c.status?.phase ?? 'Pending'})`,
      );
    }
    return latest.id;
  }

  /** exec: CRI Exec, then the caller's WebSocket joined to the runtime's streaming server. */
  private async exec(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    try {
      this.authorize(req);
      const url = new URL(req.url ?? '/', 'https://agent');
      const m = execRoute.exec(url.pathname);
      if (req.method !== 'GET' || !m)
        throw new HttpError(404, `no such endpoint: ${req.method} ${url.pathname}`);
      const c = target(this.deps.containers, [m[1]!, m[2]!], url.searchParams.get('uid'));
      const o = parseExecOptions(url.searchParams);
      const containerId = await this.runningContainer(c);
      const { command: cmd, ...streams } = o;
      const { url: streamUrl } = await this.deps.cri.exec({ containerId, cmd, ...streams });
      const upstream = http.request(new URL(streamUrl), { headers: upgradeHeaders(req) });
      await joinUpgrade(
        socket,
        head,
        upstream,
        (e) =>
          new HttpError(
            502,
            `the runtime's streaming server (${streamUrl.replace(/\/exec\/.*/, '')}) did not answer: ${e.message}`,
          ),
      );
    } catch (e) {
      if (!(e instanceof HttpError)) this.deps.log.warn('exec failed', { path: req.url, err: e });
      refuseUpgrade(socket, e);
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    try {
      this.authorize(req);
      const url = new URL(req.url ?? '/', 'https://agent');
      if (req.method === 'GET' && url.pathname === '/v1/stats') {
        const containers = this.deps.stats.usage();
        if (!containers) throw new HttpError(503, 'no sample of the runtime yet');
        res.writeHead(200, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            sampledAt: this.deps.stats.sampledAt?.toISOString(),
            containers,
          } satisfies HostUsage),
        );
        return;
      }
      const m = logRoute.exec(url.pathname);
      if (req.method !== 'GET' || !m)
        throw new HttpError(404, `no such endpoint: ${req.method} ${url.pathname}`);
      const c = target(this.deps.containers, [m[1]!, m[2]!], url.searchParams.get('uid'));
      const tail = url.searchParams.get('tail');
      const lines = readLog(
        {
          dir: logDirectory(this.o.logRoot, {
            namespace: c.metadata.namespace!,
            name: c.metadata.name!,
            uid: c.metadata.uid!,
          }),
          done: () => {
            const now = this.deps.containers.get(
              joinKey({ namespace: c.metadata.namespace!, name: c.metadata.name! }),
            );
            // As docker logs -f, a follower ends with the process: finished, or stopped.
            return (
              now?.metadata.uid !== c.metadata.uid ||
              ['Succeeded', 'Failed', 'Stopped'].includes(now?.status?.phase ?? '')
            );
          },
        },
        {
          follow: flag(url.searchParams.get('follow')),
          previous: flag(url.searchParams.get('previous')),
          timestamps: flag(url.searchParams.get('timestamps')),
          tail: tail === null ? undefined : Number(tail),
        },
        abort.signal,
      );
      // The first line (or a refusal) decides the status; everything after streams.
      const first = await lines.next().catch((e: unknown) => {
        throw e instanceof NoPreviousRun
          ? new HttpError(400, `Container ${c.metadata.namespace}/${c.metadata.name}: ${e.message}`)
          : e;
      });
      res.writeHead(200, {
        'content-type': 'text/plain; charset=utf-8',
        'x-content-type-options': 'nosniff',
      });
      if (!first.done) res.write(first.value);
      res.flushHeaders();
      for await (const line of lines) if (!res.write(line)) await new Promise((r) => res.once('drain', r));
      res.end();
    } catch (e) {
      sendStatus(res, e);
    }
  }
}
