// Health checks of running containers (Docker's HEALTHCHECK): exec through CRI ExecSync, HTTP GET
// or a TCP connect against the container's IP, every intervalSeconds. A container is Starting
// until its first success (failures inside startPeriodSeconds do not count), Healthy after a
// success, and Unhealthy after `retries` consecutive failures. Health drives the Ready condition;
// as in Docker, an unhealthy container is not restarted.
import net from 'node:net';
import type { HealthCheck } from '../api/v1alpha1/index.js';
import type { CriClient } from '../cri/client.js';

export type Health = 'Starting' | 'Healthy' | 'Unhealthy';

export interface HealthState {
  health: Health;
  /** The last failure, for the Ready condition's message. */
  message?: string;
}

/** Runs one check; resolves with undefined when healthy, else a short reason. */
export async function runCheck(
  cri: CriClient,
  check: HealthCheck,
  target: { containerId: string; ip?: string },
): Promise<string | undefined> {
  const timeoutMs = check.timeoutSeconds * 1000;
  if (check.exec) {
    try {
      const r = await cri.execSync(
        { containerId: target.containerId, cmd: check.exec.command, timeout: check.timeoutSeconds },
        { timeoutMs: timeoutMs + 5_000 },
      );
      if (r.exitCode === 0) return undefined;
      const out = (r.stderr.toString() || r.stdout.toString()).trim().slice(0, 200);
      return `exec ${check.exec.command.join(' ')} exited with ${r.exitCode}${out ? `: ${out}` : ''}`;
    } catch (e) {
      return `exec ${check.exec.command.join(' ')} failed: ${(e as Error).message}`;
    }
  }
  if (!target.ip) return 'the container has no IP address';
  if (check.httpGet) {
    const url = `http://${target.ip}:${check.httpGet.port}${check.httpGet.path}`;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
      await res.body?.cancel();
      return res.status >= 200 && res.status < 400 ? undefined : `GET ${url} answered ${res.status}`;
    } catch (e) {
      return `GET ${url} failed: ${(e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message}`;
    }
  }
  if (check.tcpSocket) {
    const { port } = check.tcpSocket;
    return new Promise((resolve) => {
      const socket = net.connect({ host: target.ip, port, timeout: timeoutMs });
      socket.once('connect', () => {
        socket.destroy();
        resolve(undefined);
      });
      socket.once('timeout', () => {
        socket.destroy();
        resolve(`TCP connect to ${target.ip}:${port} timed out`);
      });
      socket.once('error', (e) => resolve(`TCP connect to ${target.ip}:${port} failed: ${e.message}`));
    });
  }
  return 'the health check names no probe';
}

interface Monitored {
  containerId: string;
  ip?: string;
  check: HealthCheck;
  startedAt: number;
  failures: number;
  state: HealthState;
  timer?: NodeJS.Timeout;
  stopped: boolean;
}

/**
 * One check loop per Container key. `onChange(key)` is called when a container's health changes,
 * so its reconciler writes the new status.
 */
export class HealthMonitor {
  private readonly loops = new Map<string, Monitored>();

  constructor(
    private readonly cri: CriClient,
    private readonly onChange: (key: string) => void,
  ) {}

  /** Starts checking (or keeps checking) this container; a new container ID or check restarts the loop. */
  ensure(
    key: string,
    target: { containerId: string; ip?: string; startedAt?: Date },
    check: HealthCheck,
  ): void {
    const current = this.loops.get(key);
    if (
      current &&
      current.containerId === target.containerId &&
      JSON.stringify(current.check) === JSON.stringify(check)
    ) {
      current.ip = target.ip;
      return;
    }
    this.stop(key);
    const m: Monitored = {
      containerId: target.containerId,
      ip: target.ip,
      check,
      startedAt: target.startedAt?.getTime() ?? Date.now(),
      failures: 0,
      state: { health: 'Starting' },
      stopped: false,
    };
    this.loops.set(key, m);
    // The first check runs at once, so a healthy container is Ready without waiting an interval.
    m.timer = setTimeout(() => void this.tick(key, m), 0);
  }

  get(key: string): HealthState | undefined {
    return this.loops.get(key)?.state;
  }

  stop(key: string): void {
    const m = this.loops.get(key);
    if (!m) return;
    m.stopped = true;
    clearTimeout(m.timer);
    this.loops.delete(key);
  }

  stopAll(): void {
    for (const key of [...this.loops.keys()]) this.stop(key);
  }

  private async tick(key: string, m: Monitored): Promise<void> {
    const failure = await runCheck(this.cri, m.check, m);
    if (m.stopped) return;
    const before = m.state.health;
    const inStartPeriod = Date.now() - m.startedAt < m.check.startPeriodSeconds * 1000;
    if (failure === undefined) {
      m.failures = 0;
      m.state = { health: 'Healthy' };
    } else if (!(inStartPeriod && before === 'Starting')) {
      m.failures++;
      if (m.failures >= m.check.retries) m.state = { health: 'Unhealthy', message: failure };
      else if (before !== 'Starting') m.state = { health: before, message: failure };
    }
    if (m.state.health !== before) this.onChange(key);
    m.timer = setTimeout(() => void this.tick(key, m), m.check.intervalSeconds * 1000);
  }
}
