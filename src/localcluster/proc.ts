// Process helpers for the local cluster: run a command to completion, start a daemon whose PID
// (and command line, in a file next to it) is recorded in a file, and stop it again by that PID
// (never by name).
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

/** Where startDaemon records the command line of the process a PID file names (a JSON array). */
export function commandFile(pidFile: string): string {
  return `${pidFile}.cmdline`;
}

/** A process's command line as the kernel has it (/proc/<pid>/cmdline); undefined if unreadable. */
export function processCommand(pid: number): string[] | undefined {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw === '' ? undefined : raw.replace(/\0$/, '').split('\0');
  } catch {
    return undefined;
  }
}

function recordedCommand(pidFile: string): string[] | undefined {
  try {
    const argv: unknown = JSON.parse(fs.readFileSync(commandFile(pidFile), 'utf8'));
    return Array.isArray(argv) && argv.every((a) => typeof a === 'string') ? argv : undefined;
  } catch {
    return undefined;
  }
}

const sameArgv = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * The process a PID file names, if it runs, with the command line it was started with (the one
 * recorded next to the PID file; /proc's for a process started before those were recorded).
 * Undefined when the PID now belongs to another program than the one recorded: that process is
 * not ours, and must be neither reused nor stopped.
 */
export function runningDaemon(pidFile: string): { pid: number; command?: string[] } | undefined {
  const pid = livePid(pidFile);
  if (pid === undefined) return undefined;
  const recorded = recordedCommand(pidFile);
  const actual = processCommand(pid);
  // A wrapper that execs the real program (setpriv ...) leaves /proc the tail of what was recorded.
  if (recorded && actual && !sameArgv(recorded.slice(recorded.length - actual.length), actual))
    return undefined;
  const command = recorded ?? actual;
  return command ? { pid, command } : { pid };
}

/**
 * How the command line of a running process differs from the one wanted, one line per
 * difference; empty when they are identical. Flags are compared by name (`--name=value` or a bare
 * `--name`), everything else in order, so "another checkout" reads as another entry point and a
 * changed flag as its two values.
 */
export function commandDifferences(running: readonly string[], wanted: readonly string[]): string[] {
  if (sameArgv(running, wanted)) return [];
  const split = (argv: readonly string[]) => {
    const flags = new Map<string, string[]>();
    const plain: string[] = [];
    for (const arg of argv) {
      const m = /^(--?[^=\s]+)(?:=([\s\S]*))?$/.exec(arg);
      if (!m) {
        plain.push(arg);
        continue;
      }
      const values = flags.get(m[1]!) ?? [];
      values.push(m[2] === undefined ? m[1]! : `${m[1]!}=${m[2]}`);
      flags.set(m[1]!, values);
    }
    return { flags, plain };
  };
  const r = split(running);
  const w = split(wanted);
  const out: string[] = [];
  if (!sameArgv(r.plain, w.plain)) {
    out.push(`program and arguments: running ${r.plain.join(' ')}; wanted ${w.plain.join(' ')}`);
  }
  for (const name of new Set([...r.flags.keys(), ...w.flags.keys()])) {
    const rv = r.flags.get(name) ?? [];
    const wv = w.flags.get(name) ?? [];
    if (sameArgv(rv, wv)) continue;
    if (wv.length === 0) out.push(`${rv.join(' ')}: only in the running one`);
    else if (rv.length === 0) out.push(`${wv.join(' ')}: not in the running one`);
    else out.push(`${name}: running ${rv.join(' ')}; wanted ${wv.join(' ')}`);
  }
  if (out.length === 0)
    out.push('the same arguments in another order (a later flag wins over an earlier one)');
  return out;
}

/**
 * Starts a long-running process detached from our process group (so Ctrl-C on `cluster:up`
 * does not take the cluster down), with output appended to logFile, its PID written to pidFile
 * and its command line next to it (commandFile).
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
  fs.writeFileSync(commandFile(files.pidFile), `${JSON.stringify([cmd, ...args])}\n`);
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

/** Stops the process named by a PID file (if it still runs) and removes the file and its command line. */
export async function stopPidFile(pidFile: string, graceMs?: number): Promise<void> {
  const pid = livePid(pidFile);
  if (pid !== undefined) await stopPid(pid, graceMs);
  fs.rmSync(pidFile, { force: true });
  fs.rmSync(commandFile(pidFile), { force: true });
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
