// Reading a container's output: the runtime writes it in the CRI log format to files in the
// agent's state directory (<stateDir>/logs/<namespace>_<name>_<uid>/container/<attempt>.log), one
// file per attempt, kept until the Container is deleted. The agent rotates a running attempt's file
// (logrotate.ts): <attempt>.log.<timestamp> are its earlier parts, oldest first by name.
import fs from 'node:fs';
import path from 'node:path';

export interface LogLine {
  time: string;
  stream: 'stdout' | 'stderr';
  text: string;
}

/**
 * Parses CRI log lines ("<RFC3339Nano> <stdout|stderr> <P|F> <text>"), joining partial (P)
 * fragments with the full (F) line that ends them.
 */
export function parseCriLog(content: string): LogLine[] {
  const out: LogLine[] = [];
  let partial = '';
  for (const raw of content.split('\n')) {
    const m = /^(\S+) (stdout|stderr) ([PF]) ?(.*)$/.exec(raw);
    if (!m) continue;
    const [, time, stream, tag, text] = m as unknown as [string, string, 'stdout' | 'stderr', string, string];
    if (tag === 'P') {
      partial += text;
      continue;
    }
    out.push({ time, stream, text: partial + text });
    partial = '';
  }
  return out;
}

export interface ContainerLogs {
  dir: string;
  /** Attempt numbers with a log file, oldest first. */
  attempts: number[];
}

/** The log directory of the newest Container named namespace/name among the state directories. */
export function findContainerLogs(
  stateDirs: string[],
  namespace: string,
  name: string,
): ContainerLogs | undefined {
  const prefix = `${namespace}_${name}_`;
  const candidates = stateDirs.flatMap((state) => {
    const root = path.join(state, 'logs');
    if (!fs.existsSync(root)) return [];
    return fs
      .readdirSync(root)
      .filter((d) => d.startsWith(prefix) && !d.slice(prefix.length).includes('_'))
      .map((d) => path.join(root, d));
  });
  const newest = candidates.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
  if (!newest) return undefined;
  return { dir: newest, attempts: logAttempts(newest) };
}

/** Attempt numbers with a log file in a Container's log directory, oldest first. */
export function logAttempts(dir: string): number[] {
  const files = fs.existsSync(path.join(dir, 'container')) ? fs.readdirSync(path.join(dir, 'container')) : [];
  return files
    .map((f) => /^(\d+)\.log$/.exec(f)?.[1])
    .filter((a): a is string => a !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

/** The file the runtime writes one attempt's output to now. */
export function attemptLogFile(logs: ContainerLogs, attempt: number): string {
  return path.join(logs.dir, 'container', `${attempt}.log`);
}

/** One attempt's log files, oldest first: its rotated parts (`<current>.<timestamp>`), then the current file. */
export function attemptLogFiles(logs: ContainerLogs, attempt: number): string[] {
  const current = attemptLogFile(logs, attempt);
  const rotated = fs
    .readdirSync(path.dirname(current))
    .filter((f) => f.startsWith(`${path.basename(current)}.`))
    .sort();
  return [...rotated.map((f) => path.join(path.dirname(current), f)), current];
}

export interface LogRead {
  lines: LogLine[];
  /** Bytes read from the last (current) file: where following it goes on. */
  currentBytes: number;
}

/**
 * The lines of `files` (oldest first), only the last `tail` if given: files are read newest first
 * and only as far back as needed. A file removed meanwhile (rotated away) is skipped.
 */
export function readLogFiles(files: readonly string[], tail?: number): LogRead {
  let content = '';
  let currentBytes = 0;
  for (let i = files.length - 1; i >= 0; i--) {
    let part: Buffer;
    try {
      part = fs.readFileSync(files[i]!);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      continue;
    }
    if (i === files.length - 1) currentBytes = part.length;
    // Joined before parsing: a partial line can continue in the next file.
    content = part.toString('utf8') + content;
    if (tail !== undefined && parseCriLog(content).length > tail) break;
  }
  const lines = parseCriLog(content);
  return { lines: tail !== undefined ? lines.slice(Math.max(0, lines.length - tail)) : lines, currentBytes };
}
