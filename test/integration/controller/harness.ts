// Shared by the controller's integration tests: the real entry point run as a child process
// against the local cluster (its JSON logs parsed, its /metrics scraped), a namespace of its
// own per test file.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CoreV1Api } from '@kubernetes/client-node';
import { resourceClient } from '../../../src/kube/resources.js';
import { KubeClient } from '../../../src/kube/client.js';
import { isNotFound } from '../../../src/kube/errors.js';
import { kubeConfig, kubectlOk, localCluster } from '../../support/cluster.js';
import { eventually } from '../../support/wait.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

export type LogLine = Record<string, unknown> & { msg?: string };

/** One `node --import tsx src/cmd/controller.ts` process. */
export class ControllerProcess {
  readonly logs: LogLine[] = [];
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;
  private stderr = '';
  private exitCode: number | null | undefined;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, ['--import', 'tsx', 'src/cmd/controller.ts', ...args], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffered = '';
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.stderr += `${line}\n`; // not JSON: keep it for the failure message
        }
      }
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code) => {
        this.exitCode = code;
        resolve(code);
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /**
   * The first log line matching `match`, waiting for it. The default allows for a slow start:
   * loading the process under tsx takes seconds of CPU, more on a busy machine.
   */
  async waitForLog(what: string, match: (line: LogLine) => boolean, timeoutMs = 45_000): Promise<LogLine> {
    return eventually(
      `log "${what}" from controller ${this.pid}`,
      () => {
        const line = this.logs.find(match);
        if (!line && !this.running)
          throw new Error(`the controller exited (${this.exitCode}): ${this.tail()}`);
        return line;
      },
      { timeoutMs },
    );
  }

  /** The identity it campaigns for leadership with. */
  async identity(): Promise<string> {
    const line = await this.waitForLog(
      'Starting controller manager',
      (l) => l.msg === 'Starting controller manager',
    );
    return line.identity as string;
  }

  async metricsURL(): Promise<string> {
    const line = await this.waitForLog('Serving metrics', (l) => l.msg === 'Serving metrics');
    return `http://${line.host as string}:${line.port as number}/metrics`;
  }

  async scrape(): Promise<string> {
    const res = await fetch(await this.metricsURL(), { signal: AbortSignal.timeout(5000) });
    return res.text();
  }

  /** The value of one series (name and exact labels), or undefined when absent. */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
    const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
    for (const line of (await this.scrape()).split('\n')) {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!m || m[1] !== name) continue;
      const have = (m[2] ?? '').split(',').filter(Boolean);
      if (wanted.every((w) => have.includes(w)) && have.length === wanted.length) return Number(m[3]);
    }
    return undefined;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** SIGTERM, then SIGKILL if it has not exited within 15 s. */
  async stop(): Promise<number | null> {
    if (!this.running) return this.exitCode ?? null;
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), 15_000);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  tail(lines = 20): string {
    const out = this.logs.slice(-lines).map((l) => JSON.stringify(l));
    return [...out, this.stderr.trim()].filter(Boolean).join('\n');
  }
}

/** The flags every test passes: the local cluster, servers on free ports. */
export function baseArgs(): string[] {
  return [
    '--kubeconfig',
    localCluster().kubeconfig,
    '--metrics-bind-address',
    '127.0.0.1:0',
    '--health-probe-bind-address',
    '127.0.0.1:0',
  ];
}

/** A unique, DNS-safe name for this run's objects. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
}

export function clients() {
  const client = new KubeClient(kubeConfig());
  return {
    client,
    core: client.api(CoreV1Api),
    images: resourceClient(client, 'Image'),
    hosts: resourceClient(client, 'Host'),
  };
}

/** Installs (or updates) Gantry's CRDs and waits until they are served. */
export async function installCrds(): Promise<void> {
  const crds = `${repoRoot}crds/`;
  for (const args of [
    ['apply', '--server-side', '--force-conflicts', '--field-manager=gantry-controller-test', '-f', crds],
    ['wait', '--for=condition=Established', '--timeout=60s', '-f', crds],
  ]) {
    await kubectlOk(args);
  }
}

export async function createNamespace(name: string): Promise<void> {
  await clients().core.createNamespace({ body: { metadata: { name } } });
}

export async function deleteNamespace(name: string): Promise<void> {
  await clients()
    .core.deleteNamespace({ name })
    .catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
}
