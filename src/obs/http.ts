// The process's HTTP endpoints, as controller-runtime lays them out: /metrics on one port, and
// the probes /healthz (liveness: is the process working at all) and /readyz (readiness: caches
// synced, dependencies reachable) on another. Both bind to 127.0.0.1 unless told otherwise;
// in a pod, the chart binds the probe port to 0.0.0.0 so the kubelet can reach it.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { Registry } from 'prom-client';

/** A named check; it fails by throwing (the message is shown in verbose output). */
export type Check = () => void | Promise<void>;

export class Checks {
  private readonly checks = new Map<string, Check>();

  add(name: string, check: Check): void {
    if (this.checks.has(name)) throw new Error(`a check named "${name}" already exists`);
    this.checks.set(name, check);
  }

  /** Runs every check; `lines` in the apiserver's format: "[+]name ok" / "[-]name failed: why". */
  async run(): Promise<{ ok: boolean; lines: string[] }> {
    const results = await Promise.all(
      [...this.checks].map(async ([name, check]) => {
        try {
          await check();
          return { ok: true, line: `[+]${name} ok` };
        } catch (err) {
          return {
            ok: false,
            line: `[-]${name} failed: ${err instanceof Error ? err.message : String(err)}`,
          };
        }
      }),
    );
    return { ok: results.every((r) => r.ok), lines: results.map((r) => r.line) };
  }
}

export interface BindAddress {
  host: string;
  port: number;
}

/** "127.0.0.1:8080", ":8080" (all interfaces), "[::1]:8080"; port 0 picks a free one. */
export function parseBindAddress(value: string): BindAddress {
  const colon = value.lastIndexOf(':');
  const port = Number(value.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`bad bind address "${value}": expected host:port`);
  }
  const host = value.slice(0, colon).replace(/^\[(.*)\]$/, '$1') || '0.0.0.0';
  return { host, port };
}

export interface RunningServer {
  /** The address actually bound (the real port when 0 was asked for). */
  address: BindAddress;
  close(): Promise<void>;
}

export function metricsApp(registry: Registry): express.Express {
  const app = express();
  app.get('/metrics', async (_req, res) => {
    res.set('Content-Type', registry.contentType).send(await registry.metrics());
  });
  return app;
}

export function probesApp(probes: { liveness: Checks; readiness: Checks }): express.Express {
  const app = express();
  const endpoint = (path: string, checks: Checks): void => {
    app.get(path, async (req, res) => {
      const { ok, lines } = await checks.run();
      const name = path.slice(1);
      res.status(ok ? 200 : 500).type('text/plain');
      if (ok && req.query.verbose === undefined) res.send('ok');
      else res.send(`${lines.join('\n')}\n${name} check ${ok ? 'passed' : 'failed'}\n`);
    });
  };
  endpoint('/healthz', probes.liveness);
  endpoint('/readyz', probes.readiness);
  return app;
}

export async function listen(app: express.Express, bind: BindAddress): Promise<RunningServer> {
  const server = http.createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(bind.port, bind.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    address: { host: bind.host, port },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections(); // a scraper's keep-alive connection must not hold shutdown
      }),
  };
}
