// Reading a container's output: the runtime writes it in the CRI log format to files in the
// agent's state directory (<stateDir>/logs/<namespace>_<name>_<uid>/container/<attempt>.log), one
// file per attempt, kept until the Container is deleted.
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

export function attemptLogFile(logs: ContainerLogs, attempt: number): string {
  return path.join(logs.dir, 'container', `${attempt}.log`);
}
