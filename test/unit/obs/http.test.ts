import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  Checks,
  listen,
  metricsApp,
  parseBindAddress,
  probesApp,
  type RunningServer,
} from '../../../src/obs/http.js';
import { registry } from '../../../src/obs/metrics.js';

describe('http endpoints', () => {
  const liveness = new Checks();
  const readiness = new Checks();
  let ready = false;
  let metrics: RunningServer;
  let probes: RunningServer;
  const url = (s: RunningServer, path: string): string => `http://127.0.0.1:${s.address.port}${path}`;

  before(async () => {
    liveness.add('ping', () => {});
    readiness.add('informers', () => {
      if (!ready) throw new Error('not synced: containers');
    });
    readiness.add('async', async () => {});
    metrics = await listen(metricsApp(registry), parseBindAddress('127.0.0.1:0'));
    probes = await listen(probesApp({ liveness, readiness }), parseBindAddress('127.0.0.1:0'));
  });

  after(async () => {
    await metrics.close();
    await probes.close();
  });

  it('serves /metrics in the Prometheus text format on its own port', async () => {
    const res = await fetch(url(metrics, '/metrics'));
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const body = await res.text();
    assert.match(body, /# TYPE process_cpu_seconds_total counter/);
    assert.equal((await fetch(url(metrics, '/healthz'))).status, 404);
    assert.equal((await fetch(url(probes, '/metrics'))).status, 404);
  });

  it('answers /healthz ok when the liveness checks pass', async () => {
    const res = await fetch(url(probes, '/healthz'));
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'ok');
    const verbose = await fetch(url(probes, '/healthz?verbose'));
    assert.equal(await verbose.text(), '[+]ping ok\nhealthz check passed\n');
  });

  it('fails /readyz with the failing check until it passes', async () => {
    ready = false;
    const failing = await fetch(url(probes, '/readyz'));
    assert.equal(failing.status, 500);
    assert.equal(
      await failing.text(),
      '[-]informers failed: not synced: containers\n[+]async ok\nreadyz check failed\n',
    );
    ready = true;
    const passing = await fetch(url(probes, '/readyz'));
    assert.equal(passing.status, 200);
    assert.equal(await passing.text(), 'ok');
  });

  it('rejects duplicate check names', () => {
    assert.throws(() => liveness.add('ping', () => {}), /already exists/);
  });

  it('parses bind addresses, defaulting the host to all interfaces', () => {
    assert.deepEqual(parseBindAddress('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseBindAddress(':8081'), { host: '0.0.0.0', port: 8081 });
    assert.deepEqual(parseBindAddress('[::1]:9000'), { host: '::1', port: 9000 });
    assert.throws(() => parseBindAddress('8080'), /bad bind address/);
    assert.throws(() => parseBindAddress('localhost:http'), /bad bind address/);
  });

  it('reports a port already in use', async () => {
    await assert.rejects(
      listen(metricsApp(registry), { host: '127.0.0.1', port: metrics.address.port }),
      /EADDRINUSE/,
    );
  });
});
