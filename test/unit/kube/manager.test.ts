// The parts that speak HTTP (KubeClient, restListWatcher, CustomResourceClient, Manager)
// against a small in-process fake apiserver: list (paged), watch (streamed), Leases with
// optimistic concurrency, and a custom resource's /status.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ApiException, CoordinationV1Api, KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { KubeClient } from '../../../src/kube/client.js';
import { CustomResourceClient } from '../../../src/kube/customresource.js';
import { restListWatcher, type WatchEvent } from '../../../src/kube/informer.js';
import { Manager, watch } from '../../../src/kube/manager.js';
import { createLogger } from '../../../src/obs/logger.js';
import { registry } from '../../../src/obs/metrics.js';

const thingsPath = '/apis/test.gantry.dev/v1/namespaces/ns/things';
const leasesPath = '/apis/coordination.k8s.io/v1/namespaces/gantry-system/leases';

interface Recorded {
  method: string;
  path: string;
  query: URLSearchParams;
  contentType?: string;
  body?: unknown;
}

class FakeApiserver {
  readonly things = new Map<string, KubernetesObject & { status?: object }>();
  readonly leases = new Map<string, KubernetesObject>();
  readonly requests: Recorded[] = [];
  readonly watchers: { res: http.ServerResponse; query: URLSearchParams }[] = [];
  private rv = 100;
  /** While set, list requests wait for it (a slow initial sync). */
  listGate: Promise<void> | undefined;
  private server = http.createServer((req, res) => void this.handle(req, res));
  port = 0;

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  kubeConfig(port = this.port): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromClusterAndUser(
      { name: 'fake', server: `http://127.0.0.1:${port}`, skipTLSVerify: true },
      { name: 'u', token: 't0ken' },
    );
    return kc;
  }

  addThing(name: string): KubernetesObject {
    const obj = {
      apiVersion: 'test.gantry.dev/v1',
      kind: 'Thing',
      metadata: { name, namespace: 'ns', resourceVersion: String(++this.rv) },
    };
    this.things.set(name, obj);
    this.emit({ type: 'ADDED', object: obj });
    return obj;
  }

  leaseHolder(name: string): string | undefined {
    return (this.leases.get(name) as { spec?: { holderIdentity?: string } } | undefined)?.spec
      ?.holderIdentity;
  }

  emit(event: WatchEvent): void {
    // Split each line in two writes: the client must reassemble lines across chunks.
    const line = JSON.stringify(event) + '\n';
    for (const w of this.watchers) {
      w.res.write(line.slice(0, 7));
      w.res.write(line.slice(7));
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString();
    const body = text ? (JSON.parse(text) as unknown) : undefined;
    this.requests.push({
      method: req.method ?? '',
      path: url.pathname,
      query: url.searchParams,
      contentType: req.headers['content-type'],
      body,
    });
    const send = (code: number, payload: unknown): void => {
      res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
    };
    const status = (code: number, reason: string): void =>
      send(code, {
        kind: 'Status',
        apiVersion: 'v1',
        status: 'Failure',
        code,
        reason,
        message: `${reason} (fake)`,
      });
    if (req.headers.authorization !== 'Bearer t0ken') return status(401, 'Unauthorized');

    if (url.pathname === thingsPath && req.method === 'GET') {
      if (url.searchParams.get('watch') === 'true') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
        this.watchers.push({ res, query: url.searchParams });
        return;
      }
      await this.listGate;
      // Pages of two, like a server honouring a small limit, to exercise `continue`.
      const all = [...this.things.values()];
      const start = Number(url.searchParams.get('continue') || 0);
      const page = all.slice(start, start + 2).map(({ apiVersion: _a, kind: _k, ...rest }) => rest);
      const next = start + 2 < all.length ? String(start + 2) : undefined;
      return send(200, {
        apiVersion: 'test.gantry.dev/v1',
        kind: 'ThingList',
        metadata: { resourceVersion: String(this.rv), continue: next },
        items: page,
      });
    }
    const thing = url.pathname.match(
      /^\/apis\/test\.gantry\.dev\/v1\/namespaces\/ns\/things\/([^/]+)(\/status)?$/,
    );
    if (thing) {
      const current = this.things.get(thing[1]!);
      if (!current) return status(404, 'NotFound');
      if (req.method === 'GET') return send(200, current);
      if (req.method === 'PATCH' && thing[2]) {
        current.status = (body as { status: object }).status;
        current.metadata!.resourceVersion = String(++this.rv);
        return send(200, current);
      }
    }
    if (url.pathname.startsWith(leasesPath)) return this.lease(req.method ?? '', url, body, send, status);
    return status(404, 'NotFound');
  }

  private lease(
    method: string,
    url: URL,
    body: unknown,
    send: (code: number, payload: unknown) => void,
    status: (code: number, reason: string) => void,
  ): void {
    const name = url.pathname.slice(leasesPath.length + 1);
    const lease = body as KubernetesObject;
    const stored = this.leases.get(name);
    if (method === 'GET') return stored ? send(200, stored) : status(404, 'NotFound');
    if (method === 'POST') {
      const created = lease.metadata!.name!;
      if (this.leases.has(created)) return status(409, 'AlreadyExists');
      lease.metadata!.resourceVersion = String(++this.rv);
      this.leases.set(created, lease);
      return send(201, lease);
    }
    if (method === 'PUT') {
      if (!stored) return status(404, 'NotFound');
      if (stored.metadata?.resourceVersion !== lease.metadata?.resourceVersion)
        return status(409, 'Conflict');
      lease.metadata!.resourceVersion = String(++this.rv);
      this.leases.set(name, lease);
      return send(200, lease);
    }
    status(405, 'MethodNotAllowed');
  }
}

async function sample(series: string): Promise<number> {
  const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const quiet = () => createLogger({ stream: new PassThrough() });

describe('against a fake apiserver', () => {
  const api = new FakeApiserver();
  let client: KubeClient;
  let host: string;

  before(async () => {
    await api.start();
    client = new KubeClient(api.kubeConfig());
    host = `127.0.0.1:${api.port}`;
  });
  after(() => api.stop());

  describe('KubeClient', () => {
    it('counts raw requests by code, method and host', async () => {
      const before200 = await sample(`rest_client_requests_total{code="200",method="GET",host="${host}"}`);
      const before404 = await sample(`rest_client_requests_total{code="404",method="GET",host="${host}"}`);
      await client.requestJSON('GET', thingsPath);
      const err = await client.requestJSON('GET', `${thingsPath}/missing`).catch((e: unknown) => e);
      assert.ok(err instanceof ApiException);
      assert.equal(err.code, 404);
      assert.match(err.message, /NotFound \(fake\)/);
      assert.equal(
        await sample(`rest_client_requests_total{code="200",method="GET",host="${host}"}`),
        before200 + 1,
      );
      assert.equal(
        await sample(`rest_client_requests_total{code="404",method="GET",host="${host}"}`),
        before404 + 1,
      );
    });

    it("counts the typed clients' requests too, and failures without a response as <error>", async () => {
      const before404 = await sample(`rest_client_requests_total{code="404",method="GET",host="${host}"}`);
      const leases = client.api(CoordinationV1Api);
      await assert.rejects(leases.readNamespacedLease({ name: 'none', namespace: 'gantry-system' }), (e) => {
        return e instanceof ApiException && e.code === 404;
      });
      assert.equal(
        await sample(`rest_client_requests_total{code="404",method="GET",host="${host}"}`),
        before404 + 1,
      );

      const dead = new FakeApiserver();
      await dead.start();
      const port = dead.port;
      await dead.stop();
      const unreachable = new KubeClient(dead.kubeConfig(port));
      await assert.rejects(unreachable.request('GET', '/api'));
      await assert.rejects(
        unreachable.api(CoordinationV1Api).readNamespacedLease({ name: 'x', namespace: 'y' }),
      );
      assert.equal(
        await sample(`rest_client_requests_total{code="<error>",method="GET",host="127.0.0.1:${port}"}`),
        2,
      );
    });
  });

  describe('restListWatcher', () => {
    it('lists every page, filling in kind and apiVersion', async () => {
      for (const n of ['l1', 'l2', 'l3', 'l4', 'l5']) api.addThing(n);
      const lw = restListWatcher(client, { path: thingsPath, labelSelector: 'app=web' });
      const { items, resourceVersion } = await lw.list(new AbortController().signal);
      assert.deepEqual(
        items.map((i) => i.metadata?.name),
        [...api.things.keys()],
      );
      assert.ok(items.every((i) => i.kind === 'Thing' && i.apiVersion === 'test.gantry.dev/v1'));
      assert.equal(resourceVersion, String([...api.things.values()].at(-1)!.metadata!.resourceVersion));
      const lists = api.requests.filter((r) => r.path === thingsPath && !r.query.has('watch'));
      assert.equal(lists.at(-1)!.query.get('labelSelector'), 'app=web');
      assert.equal(lists.at(-1)!.query.get('limit'), '500');
    });

    it('watches with bookmarks and a timeout, streaming events until aborted', async () => {
      const lw = restListWatcher(client, { path: thingsPath, fieldSelector: 'metadata.name=w1' });
      const abort = new AbortController();
      const events: WatchEvent[] = [];
      const watching = lw.watch({ resourceVersion: '42', timeoutSeconds: 300, signal: abort.signal }, (e) =>
        events.push(e),
      );
      await waitFor(() => api.watchers.length > 0, 'the watch request');
      const q = api.watchers.at(-1)!.query;
      assert.deepEqual(
        ['resourceVersion', 'allowWatchBookmarks', 'timeoutSeconds', 'fieldSelector'].map((k) => q.get(k)),
        ['42', 'true', '300', 'metadata.name=w1'],
      );
      api.addThing('w1');
      api.emit({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '999' } } });
      await waitFor(() => events.length === 2, 'two events');
      assert.equal(events[0]!.type, 'ADDED');
      assert.equal(events[0]!.object.metadata?.name, 'w1');
      abort.abort();
      await assert.rejects(watching);
      api.watchers.length = 0;
    });
  });

  describe('CustomResourceClient', () => {
    const things = () =>
      new CustomResourceClient<KubernetesObject & { status?: object }>(client, {
        group: 'test.gantry.dev',
        version: 'v1',
        plural: 'things',
        kind: 'Thing',
        namespaced: true,
      });

    it('gets objects, undefined when absent', async () => {
      api.addThing('g1');
      assert.equal((await things().get({ namespace: 'ns', name: 'g1' }))?.metadata?.name, 'g1');
      assert.equal(await things().get({ namespace: 'ns', name: 'nope' }), undefined);
      assert.equal(things().collectionPath('ns'), thingsPath);
      assert.equal(things().collectionPath(), '/apis/test.gantry.dev/v1/things');
    });

    it('applies status server-side on /status, and skips the write when nothing changes', async () => {
      api.addThing('s1');
      const name = { namespace: 'ns', name: 's1' };
      const written = await things().applyStatus(
        name,
        { phase: 'Running' },
        { fieldManager: 'gantry-agent/host-1' },
      );
      const patch = api.requests.at(-1)!;
      assert.equal(patch.method, 'PATCH');
      assert.equal(patch.path, `${thingsPath}/s1/status`);
      assert.equal(patch.contentType, 'application/apply-patch+yaml');
      assert.equal(patch.query.get('fieldManager'), 'gantry-agent/host-1');
      assert.equal(patch.query.get('force'), 'true');
      assert.deepEqual(patch.body, {
        apiVersion: 'test.gantry.dev/v1',
        kind: 'Thing',
        metadata: { name: 's1', namespace: 'ns' },
        status: { phase: 'Running' },
      });
      const count = api.requests.length;
      const again = await things().applyStatus(
        name,
        { phase: 'Running' },
        { fieldManager: 'm', live: written },
      );
      assert.equal(again, written);
      assert.equal(api.requests.length, count, 'no request for an unchanged status');
      await things().applyStatus(name, { phase: 'Exited' }, { fieldManager: 'm', live: written });
      assert.equal(api.requests.length, count + 1);
    });
  });

  describe('Manager', () => {
    function manager(opts: { identity?: string; election?: boolean; graceMs?: number } = {}) {
      return new Manager({
        client,
        log: quiet(),
        handleSignals: false,
        metricsBindAddress: '127.0.0.1:0',
        healthProbeBindAddress: '127.0.0.1:0',
        gracefulShutdownMs: opts.graceMs ?? 2000,
        leaderElection:
          opts.election === false
            ? undefined
            : {
                namespace: 'gantry-system',
                name: 'test-manager',
                identity: opts.identity ?? 'one',
                leaseDurationMs: 1500,
                renewDeadlineMs: 1000,
                retryPeriodMs: 100,
              },
      });
    }

    it('syncs caches, reconciles listed and watched objects, drains and releases the lease on stop', async () => {
      api.things.clear();
      api.addThing('m1');
      const mgr = manager();
      const things = mgr.informer({ path: thingsPath });
      const seen: string[] = [];
      let finishSlow!: () => void;
      let slowDone = false;
      mgr.controller({
        name: 'manager-test-things',
        kind: 'Thing',
        watches: [watch(things)],
        reconciler: {
          async reconcile(key) {
            seen.push(key);
            if (key === 'ns/slow') {
              await new Promise<void>((r) => (finishSlow = r));
              slowDone = true;
            }
          },
        },
      });
      const stop = new AbortController();
      const running = mgr.run(stop.signal);
      await waitFor(() => seen.includes('ns/m1'), 'the listed object to be reconciled');
      assert.equal(mgr.isLeader(), true);
      assert.equal(
        api.leases.get('test-manager')?.['spec' as keyof KubernetesObject]?.['holderIdentity' as never],
        'one',
      );
      await waitFor(() => api.watchers.length > 0, 'the informer watch');
      api.addThing('slow');
      await waitFor(() => seen.includes('ns/slow'), 'the watched object to be reconciled');
      stop.abort();
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(slowDone, false, 'shutdown waits for the in-flight reconcile');
      finishSlow();
      await running;
      assert.equal(slowDone, true);
      assert.equal(api.leaseHolder('test-manager'), '', 'the lease is released');
      api.watchers.length = 0;
    });

    it('serves /metrics, /healthz, and /readyz once caches have synced', async () => {
      api.things.clear();
      api.addThing('r1');
      let releaseLists!: () => void;
      api.listGate = new Promise((r) => (releaseLists = r));
      const mgr = manager({ election: false });
      mgr.informer({ path: thingsPath });
      const stop = new AbortController();
      const running = mgr.run(stop.signal);
      await waitFor(() => mgr.served.probes !== undefined, 'the probe server');
      const probe = (path: string) => fetch(`http://127.0.0.1:${mgr.served.probes!.port}${path}`);
      assert.equal((await probe('/healthz')).status, 200);
      const notReady = await probe('/readyz?verbose');
      assert.equal(notReady.status, 500);
      assert.match(await notReady.text(), /\[-\]informers failed: not synced: \/apis\/test\.gantry\.dev/);
      releaseLists();
      api.listGate = undefined;
      await waitFor(() => mgr.isLeader(), 'start');
      let status = 0;
      for (let i = 0; i < 200 && status !== 200; i++) status = (await probe('/readyz')).status;
      assert.equal(status, 200);
      const metrics = await fetch(`http://127.0.0.1:${mgr.served.metrics!.port}/metrics`);
      assert.match(await metrics.text(), /rest_client_requests_total\{code="200",method="GET"/);
      stop.abort();
      await running;
      api.watchers.length = 0;
    });

    it('runs controllers in one of two managers; the other takes over when the leader stops', async () => {
      api.things.clear();
      api.leases.clear();
      api.addThing('e1');
      const reconciled = { first: 0, second: 0 };
      const start = (identity: 'first' | 'second') => {
        const mgr = manager({ identity });
        const things = mgr.informer({ path: thingsPath });
        mgr.controller({
          name: `manager-test-election-${identity}`,
          kind: 'Thing',
          watches: [watch(things)],
          reconciler: { reconcile: async () => void reconciled[identity]++ },
        });
        const stop = new AbortController();
        return { mgr, stop, running: mgr.run(stop.signal) };
      };
      const first = start('first');
      await waitFor(() => reconciled.first > 0, 'the first manager to lead');
      const second = start('second');
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(reconciled.second, 0, 'the standby does not reconcile');
      assert.equal(second.mgr.isLeader(), false);
      first.stop.abort();
      await first.running;
      await waitFor(() => reconciled.second > 0, 'the standby to take over', 2000);
      assert.equal(second.mgr.isLeader(), true);
      second.stop.abort();
      await second.running;
      api.watchers.length = 0;
    });

    it('shuts down and rejects when leadership is lost', async () => {
      api.things.clear();
      api.leases.clear();
      const mgr = manager({ identity: 'victim' });
      mgr.informer({ path: thingsPath });
      const stop = new AbortController();
      const running = mgr.run(stop.signal);
      await waitFor(() => mgr.isLeader(), 'leadership');
      // Another holder takes the lease over (as after a long partition): renewals now fail.
      const lease = api.leases.get('test-manager') as { spec: { holderIdentity: string }; metadata: object };
      api.leases.set('test-manager', {
        ...lease,
        metadata: { ...lease.metadata, resourceVersion: '999999' },
        spec: { ...lease.spec, holderIdentity: 'thief' },
      } as KubernetesObject);
      await assert.rejects(running, /leader election lost/);
      assert.equal(mgr.isLeader(), false);
      api.watchers.length = 0;
    });

    it('aborts in-flight reconciles at once when leadership is lost, without waiting out the grace period', async () => {
      api.things.clear();
      api.leases.clear();
      api.addThing('busy');
      // A grace period far longer than the test may run: only an immediate abort passes.
      const mgr = manager({ identity: 'deposed', graceMs: 10 * 60_000 });
      const things = mgr.informer({ path: thingsPath });
      let signal: AbortSignal | undefined;
      mgr.controller({
        name: 'manager-test-deposed',
        kind: 'Thing',
        watches: [watch(things)],
        reconciler: {
          reconcile: (_key, ctx) => {
            signal = ctx.signal;
            return new Promise((resolve) =>
              ctx.signal.addEventListener('abort', () => resolve(), { once: true }),
            );
          },
        },
      });
      const running = mgr.run(new AbortController().signal);
      await waitFor(() => signal !== undefined, 'the reconcile to start');
      const lease = api.leases.get('test-manager') as { spec: { holderIdentity: string }; metadata: object };
      api.leases.set('test-manager', {
        ...lease,
        metadata: { ...lease.metadata, resourceVersion: '999999' },
        spec: { ...lease.spec, holderIdentity: 'usurper' },
      } as KubernetesObject);
      await assert.rejects(running, /leader election lost/);
      assert.equal(signal?.aborted, true);
      assert.match(String((signal?.reason as Error).message), /leadership lost/);
      assert.equal(api.leaseHolder('test-manager'), 'usurper', "the other holder's lease is left alone");
      api.watchers.length = 0;
    });

    it('stops every other task and rejects when a background task fails', async () => {
      api.things.clear();
      const mgr = manager({ election: false });
      mgr.informer({ path: thingsPath });
      let stoppedOther = false;
      mgr.add({
        name: 'steady',
        needLeaderElection: false,
        start: (signal) =>
          new Promise<void>((resolve) =>
            signal.addEventListener('abort', () => ((stoppedOther = true), resolve()), { once: true }),
          ),
      });
      mgr.add({
        name: 'broken',
        needLeaderElection: false,
        start: () => Promise.reject(new Error('listen EADDRINUSE')),
      });
      await assert.rejects(mgr.run(), (e: Error) => {
        assert.match(e.message, /background task broken failed/);
        assert.match(String((e.cause as Error).message), /EADDRINUSE/);
        return true;
      });
      assert.ok(stoppedOther, 'the other task was stopped');
      api.watchers.length = 0;
    });

    it('gives up on a reconcile that outlives the grace period, aborting its signal', async () => {
      api.things.clear();
      api.addThing('hung');
      const mgr = manager({ election: false, graceMs: 100 });
      const things = mgr.informer({ path: thingsPath });
      let signal: AbortSignal | undefined;
      mgr.controller({
        name: 'manager-test-hung',
        kind: 'Thing',
        watches: [watch(things)],
        reconciler: {
          reconcile: (_key, ctx) => {
            signal = ctx.signal;
            return new Promise(() => {}); // ignores its signal
          },
        },
      });
      const stop = new AbortController();
      const running = mgr.run(stop.signal);
      await waitFor(() => signal !== undefined, 'the reconcile to start');
      const t0 = Date.now();
      stop.abort();
      await running;
      assert.ok(Date.now() - t0 < 1000, 'run() resolved within the grace period');
      assert.equal(signal?.aborted, true);
      api.watchers.length = 0;
    });
  });
});
