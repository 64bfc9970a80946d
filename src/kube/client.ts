// Access to the apiserver. Every request, typed (client-node's API classes) or raw (the
// informer's list and watch), goes through here so rest_client_requests_total counts it.
import http from 'node:http';
import https from 'node:https';
import {
  ApiException,
  createConfiguration,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  ServerConfiguration,
  wrapHttpLibrary,
  type Configuration,
  type HttpLibrary,
  type KubernetesObject,
  type SecurityAuthentication,
} from '@kubernetes/client-node';
import type { ApplyOptions } from './apply.js';
import { countRestRequest } from '../obs/metrics.js';

/** --kubeconfig wins; otherwise $KUBECONFIG, ~/.kube/config, then the in-cluster service account. */
export function loadKubeConfig(kubeconfigPath?: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) throw new Error('no Kubernetes cluster configured (kubeconfig or in-cluster)');
  return kc;
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  /** Serialised as JSON. */
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export class KubeClient {
  readonly kc: KubeConfig;
  private readonly server: string;
  private readonly configuration: Configuration;
  private readonly connections = new ConnectionReuse();

  constructor(kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    this.kc = kc;
    this.server = cluster.server.replace(/\/+$/, '');
    const auth: SecurityAuthentication = {
      getName: () => 'kubeconfig with connection reuse',
      applySecurityAuthentication: async (context) => {
        await kc.applySecurityAuthentication(context);
        const agent = this.connections.reuse(context.getAgent());
        if (agent) context.setAgent(agent);
      },
    };
    const base = createConfiguration({
      baseServer: new ServerConfiguration(this.server, {}),
      authMethods: { default: auth },
    });
    this.configuration = { ...base, httpApi: countingHttpLibrary(base.httpApi) };
  }

  /** A client-node API class (CoreV1Api, CustomObjectsApi...) whose requests are counted. */
  api<T>(apiClass: new (configuration: Configuration) => T): T {
    return new apiClass(this.configuration);
  }

  /** Server-side apply of a whole object of any kind (discovered from apiVersion/kind). */
  async apply<T extends KubernetesObject>(obj: T, opts: ApplyOptions): Promise<T> {
    return this.api(KubernetesObjectApi).patch(
      obj,
      undefined,
      undefined,
      opts.fieldManager,
      opts.force ?? true,
      PatchStrategy.ServerSideApply,
    );
  }

  /**
   * A raw request; resolves with the response stream on 2xx, otherwise throws ApiException
   * (like the typed clients) with the response body as a string.
   */
  async request(method: string, path: string, opts: RequestOptions = {}): Promise<http.IncomingMessage> {
    const url = new URL(this.server + path);
    for (const [key, value] of Object.entries(opts.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const tls: https.RequestOptions = {};
    await this.kc.applyToHTTPSOptions(tls);
    if (typeof tls.agent === 'object') tls.agent = this.connections.reuse(tls.agent);
    const headers: http.OutgoingHttpHeaders = {
      ...(tls.headers as http.OutgoingHttpHeaders),
      accept: 'application/json',
      ...opts.headers,
    };
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    if (body !== undefined) headers['content-type'] ??= 'application/json';
    const transport = url.protocol === 'https:' ? https : http;
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      let responded = false;
      const req = transport.request(url, { ...tls, method, headers, signal: opts.signal }, (response) => {
        responded = true;
        countRestRequest(response.statusCode ?? 0, method, url.host);
        resolve(response);
      });
      // Errors after the response (a watch aborted or cut) belong to its stream, not the count.
      req.on('error', (err) => {
        if (!responded) countRestRequest('<error>', method, url.host);
        reject(err);
      });
      req.end(body);
    });
    const code = res.statusCode ?? 0;
    if (code >= 200 && code < 300) return res;
    const text = await readAll(res);
    throw new ApiException(code, `HTTP ${code} ${method} ${url.pathname}: ${statusMessage(text)}`, text, {});
  }

  /** A raw request whose JSON response body is returned parsed. */
  async requestJSON<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, opts);
    return JSON.parse(await readAll(res)) as T;
  }
}

/**
 * client-node builds a new https.Agent for every request, so every request pays a TCP and TLS
 * handshake (measured: 63-109 requests/s through it against 695/s with keep-alive on this machine;
 * docs/benchmarks.md). This keeps one keep-alive agent per TLS identity instead; a new identity
 * (a rotated client certificate) gets a new agent. Proxy agents are left alone.
 */
class ConnectionReuse {
  private agent: https.Agent | undefined;
  private identity = '';

  reuse(agent: http.Agent | undefined): http.Agent | undefined {
    if (!agent || agent.constructor !== https.Agent) return agent;
    const o = (agent as https.Agent).options;
    const identity = [o.ca, o.cert, o.key, o.pfx, o.passphrase, o.rejectUnauthorized, o.servername]
      .map(String)
      .join('\0');
    if (!this.agent || identity !== this.identity) {
      this.agent = new https.Agent({ ...o, keepAlive: true });
      this.identity = identity;
    }
    return this.agent;
  }
}

function countingHttpLibrary(inner: HttpLibrary): HttpLibrary {
  return wrapHttpLibrary({
    async send(request) {
      const method = request.getHttpMethod().toString();
      const host = new URL(request.getUrl()).host;
      try {
        const response = await inner.send(request).toPromise();
        countRestRequest(response.httpStatusCode, method, host);
        return response;
      } catch (err) {
        countRestRequest('<error>', method, host);
        throw err;
      }
    },
  });
}

async function readAll(stream: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The `message` of a metav1.Status body, or the body itself. */
function statusMessage(body: string): string {
  try {
    const status = JSON.parse(body) as { message?: string };
    return status.message ?? body;
  } catch {
    return body;
  }
}
