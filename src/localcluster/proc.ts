// Process helpers for the local cluster: run a command to completion, start a daemon whose PID
// is recorded in a file, and stop it again by that PID (never by name).
import { spawn, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly code: number | null,
    readonly output: string,
  ) {
    super(`${command} exited with ${code}:\n${output.trim().split('\n').slice(-20).join('\n')}`);
  }
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Append stdout and stderr to this file instead of keeping them in memory. */
  logFile?: string;
  timeoutMs?: number;
}

/** Runs a command to completion; resolves with its stdout, rejects with CommandError. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const log = opts.logFile ? fs.openSync(opts.logFile, 'a') : undefined;
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      // No stdin: writing to a child that exits first fails with EPIPE, and nothing here needs it.
      stdio: ['ignore', log ?? 'pipe', log ?? 'pipe'],
      timeout: opts.timeoutMs,
    });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => {
      if (log !== undefined) fs.closeSync(log);
      reject(e);
    });
    child.on('close', (code) => {
      if (log !== undefined) fs.closeSync(log);
      const line = [cmd, ...args].join(' ');
      if (code === 0) resolve(out);
      else
        reject(
          new CommandError(
            line,
            code,
            log !== undefined ? `${err}(see ${opts.logFile})` : `${err}${out.slice(-2000)}`,
          ),
        );
    });
  });
}

/** Like run, but answers whether the command succeeded instead of throwing. */
export async function succeeds(cmd: string, args: string[], opts: RunOptions = {}): Promise<boolean> {
  try {
    await run(cmd, args, opts);
    return true;
  } catch {
    return false;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A process that exited but was not reaped yet (a zombie: its parent is busy) still takes
  // signals; it is gone all the same, and waiting for it to vanish could wait forever.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** The PID recorded in a PID file, if that process still runs. */
export function livePid(pidFile: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
    return pid > 0 && isAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Starts a long-running process detached from our process group (so Ctrl-C on `cluster:up`
 * does not take the cluster down), with output appended to logFile and its PID written to pidFile.
 */
export function startDaemon(
  cmd: string,
  args: string[],
  files: { pidFile: string; logFile: string },
  opts: Pick<SpawnOptions, 'env' | 'cwd'> = {},
): number {
  fs.mkdirSync(path.dirname(files.pidFile), { recursive: true });
  fs.mkdirSync(path.dirname(files.logFile), { recursive: true });
  const log = fs.openSync(files.logFile, 'a');
  const child = spawn(cmd, args, { ...opts, detached: true, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
  child.unref();
  fs.writeFileSync(files.pidFile, `${child.pid}\n`);
  return child.pid;
}

/** SIGTERM, wait up to graceMs, then SIGKILL. Resolves once the process is gone. */
export async function stopPid(pid: number, graceMs = 10_000): Promise<void> {
  if (!isAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(pid)) {
    process.kill(pid, 'SIGKILL');
    while (isAlive(pid)) await sleep(50);
  }
}

/** Stops the process named by a PID file (if it still runs) and removes the file. */
export async function stopPidFile(pidFile: string, graceMs?: number): Promise<void> {
  const pid = livePid(pidFile);
  if (pid !== undefined) await stopPid(pid, graceMs);
  fs.rmSync(pidFile, { force: true });
}

/** Polls check() until it answers true; throws with `what` and the log's tail on timeout. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  opts: { timeoutMs?: number; intervalMs?: number; logFile?: string; pid?: number } = {},
): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  while (Date.now() < deadline) {
    if (await check()) return;
    if (opts.pid !== undefined && !isAlive(opts.pid)) break;
    await sleep(opts.intervalMs ?? 200);
  }
  const tail = opts.logFile ? logTail(opts.logFile) : '';
  const why = opts.pid !== undefined && !isAlive(opts.pid) ? 'the process exited' : 'timed out';
  throw new Error(`${what}: ${why}${tail ? `; last lines of ${opts.logFile}:\n${tail}` : ''}`);
}

export function logTail(file: string, lines = 15): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
