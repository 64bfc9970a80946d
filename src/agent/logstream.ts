// A Container's output as `kubectl gantry logs` shows it, read from the runtime's files (logs.ts):
// every attempt in order, as `docker logs` shows a restarted container's whole output, or only
// the one before the current with `previous`; the last `tail` lines; and with `follow`, what is
// written next, moving on to the next attempt's file when the container restarts, until the
// Container finishes for good or is deleted.
import fs from 'node:fs';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { logAttempts, parseCriLog, type LogLine } from './logs.js';
import { logPath } from './runtimespec.js';

export interface LogOptions {
  previous?: boolean;
  tail?: number;
  timestamps?: boolean;
  follow?: boolean;
}

export interface LogSource {
  /** The Container's log directory (<stateDir>/logs/<namespace>_<name>_<uid>). */
  dir: string;
  /** True once no more output can come: the Container finished for good, or is gone. */
  done(): boolean;
  pollMs?: number;
}

export class NoPreviousRun extends Error {}

const file = (dir: string, attempt: number) => path.join(dir, logPath(attempt));

/**
 * Splits CRI log text where its last complete line ends: after an F (full) line, so that partial
 * (P) fragments wait for the line that completes them.
 */
export function splitComplete(text: string): [complete: string, rest: string] {
  const lines = text.split('\n');
  let cut = 0;
  let offset = 0;
  for (let i = 0; i < lines.length - 1; i++) {
    offset += lines[i]!.length + 1;
    if (/^\S+ (stdout|stderr) F/.test(lines[i]!)) cut = offset;
  }
  return [text.slice(0, cut), text.slice(cut)];
}

export function formatLine(l: LogLine, timestamps: boolean | undefined): string {
  return timestamps ? `${l.time} ${l.text}\n` : `${l.text}\n`;
}

function readFrom(name: string, offset: number): Buffer {
  const fd = fs.openSync(name, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.alloc(Math.max(0, size - offset));
    fs.readSync(fd, buf, 0, buf.length, offset);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

/** One attempt's file read on from where the last read stopped, whole lines at a time. */
class FileCursor {
  private offset = 0;
  private pending = '';
  private readonly decoder = new StringDecoder('utf8');

  constructor(readonly name: string) {}

  /** The complete lines written since the last call; once `ended`, a last fragment too. */
  read(ended = false): LogLine[] {
    const chunk = fs.existsSync(this.name) ? readFrom(this.name, this.offset) : Buffer.alloc(0);
    this.offset += chunk.length;
    const text = this.pending + this.decoder.write(chunk);
    if (!ended) {
      const [complete, rest] = splitComplete(text);
      this.pending = rest;
      return parseCriLog(complete);
    }
    this.pending = '';
    // The process is gone: a partial line it left is all of that line there will be.
    const lines = text.split('\n').filter((l) => l !== '');
    const last = lines.length - 1;
    if (last >= 0) lines[last] = lines[last]!.replace(/^(\S+ (?:stdout|stderr)) P/, '$1 F');
    return parseCriLog(lines.join('\n'));
  }
}

/**
 * The log as lines of text (each ending in "\n"). Throws NoPreviousRun when `previous` is asked
 * of a Container that has not restarted.
 */
export async function* readLog(
  source: LogSource,
  o: LogOptions,
  signal?: AbortSignal,
): AsyncGenerator<string, void, undefined> {
  const all = logAttempts(source.dir);
  let chosen = all;
  if (o.previous) {
    if (all.length < 2) throw new NoPreviousRun('the container has not restarted: there is no previous run');
    chosen = [all[all.length - 2]!];
  }
  // Earlier attempts have ended; the newest may still be written to, and is followed from here on.
  const cursors = chosen.map((a) => new FileCursor(file(source.dir, a)));
  const lines = cursors.flatMap((c, i) => c.read(i < cursors.length - 1));
  const shown = o.tail === undefined ? lines : lines.slice(Math.max(0, lines.length - o.tail));
  for (const l of shown) yield formatLine(l, o.timestamps);
  if (!o.follow || o.previous) return;

  let current = chosen.length
    ? { attempt: chosen[chosen.length - 1]!, cursor: cursors[cursors.length - 1]! }
    : undefined;
  const poll = source.pollMs ?? 250;
  while (!signal?.aborted) {
    const next = logAttempts(source.dir).find((a) => current === undefined || a > current.attempt);
    // A newer attempt means this one has ended: its last line counts even without its end.
    if (current) for (const l of current.cursor.read(next !== undefined)) yield formatLine(l, o.timestamps);
    if (next !== undefined) {
      current = { attempt: next, cursor: new FileCursor(file(source.dir, next)) };
      continue;
    }
    if (source.done() || !fs.existsSync(source.dir)) {
      // What the process wrote just before it ended.
      if (current) for (const l of current.cursor.read(true)) yield formatLine(l, o.timestamps);
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, poll);
      signal?.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
  }
}
