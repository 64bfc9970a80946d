// A Container's output as `kubectl gantry logs` shows it, read from the runtime's files (logs.ts):
// every attempt in order, as `docker logs` shows a restarted container's whole output, or only
// the one before the current with `previous`; the last `tail` lines; and with `follow`, what is
// written next, moving on to the next attempt's file when the container restarts, until the
// Container finishes for good or is deleted.
import fs from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { attemptLogFiles, logAttempts, parseCriLog, type LogLine } from './logs.js';

export interface LogOptions {
  previous?: boolean;
  tail?: number;
  timestamps?: boolean;
  follow?: boolean;
}

export interface LogSource {
  /** The Container's log directory (<stateDir>/logs/<namespace>_<name>_<uid>). */
  dir: string;
  /** True once no more output can come: the Container finished (for good, or stopped), or is gone. */
  done(): boolean;
  pollMs?: number;
}

export class NoPreviousRun extends Error {}

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

/** The inode at `name`, or undefined while no file is there (renamed, not yet reopened). */
function inodeAt(name: string): number | undefined {
  try {
    return fs.statSync(name).ino;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * One attempt's output read on from where the last read stopped, whole lines at a time: first its
 * rotated files (logrotate.ts), then the file the runtime writes. The file is held open, so a
 * rotation (renamed aside, the runtime told to reopen) loses nothing: the old file is read to its
 * end once a new one is at the name, and reading goes on there.
 */
class FileCursor {
  private fd?: number;
  private inode?: number;
  private offset = 0;
  private pending = '';
  private readonly decoder = new StringDecoder('utf8');

  constructor(
    readonly name: string,
    private readonly rotated: string[] = [],
  ) {}

  private readOpen(): Buffer {
    const buf = Buffer.alloc(Math.max(0, fs.fstatSync(this.fd!).size - this.offset));
    fs.readSync(this.fd!, buf, 0, buf.length, this.offset);
    this.offset += buf.length;
    return buf;
  }

  private chunk(): Buffer {
    const parts: Buffer[] = [];
    for (const f of this.rotated.splice(0)) {
      try {
        parts.push(fs.readFileSync(f));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; // rotated away meanwhile
      }
    }
    for (;;) {
      if (this.fd === undefined) {
        this.inode = inodeAt(this.name);
        if (this.inode === undefined) break;
        this.fd = fs.openSync(this.name, 'r');
        this.offset = 0;
      }
      parts.push(this.readOpen());
      const now = inodeAt(this.name);
      if (now === undefined || now === this.inode) break;
      // Rotated and reopened: nothing more goes to the old file; read its end, then the new one.
      parts.push(this.readOpen());
      this.close();
    }
    return Buffer.concat(parts);
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }

  /** The complete lines written since the last call; once `ended`, a last fragment too. */
  read(ended = false): LogLine[] {
    const text = this.pending + this.decoder.write(this.chunk());
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
  const cursors = chosen.map((a) => cursorOf(source.dir, a));
  try {
    yield* follow(cursors, chosen, source, o, signal);
  } finally {
    for (const c of cursors) c.close();
  }
}

function cursorOf(dir: string, attempt: number): FileCursor {
  const files = attemptLogFiles({ dir, attempts: [] }, attempt);
  return new FileCursor(files.at(-1)!, files.slice(0, -1));
}

/** What readLog shows: the chosen attempts' lines (the last `tail`), then, following, what comes. */
async function* follow(
  cursors: FileCursor[],
  chosen: number[],
  source: LogSource,
  o: LogOptions,
  signal?: AbortSignal,
): AsyncGenerator<string, void, undefined> {
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
      current = { attempt: next, cursor: cursorOf(source.dir, next) };
      cursors.push(current.cursor);
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
