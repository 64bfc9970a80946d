// Plumbing of the log and exec streams (the aggregated server and the agents): failures as
// Kubernetes clients read them, a metav1.Status whose message says why; exec's options.
import type http from 'node:http';

const reasons: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  409: 'Conflict',
  500: 'InternalError',
  502: 'InternalError',
  503: 'ServiceUnavailable',
};

/** An error that carries the HTTP status to answer with. */
export class HttpError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export function statusBody(code: number, message: string): string {
  return JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason: reasons[code] ?? 'InternalError',
    code,
  });
}

/** The code and message to answer an error with: an HttpError's own, otherwise 500. */
export function failure(err: unknown): { code: number; message: string } {
  if (err instanceof HttpError) return { code: err.code, message: err.message };
  return { code: 500, message: err instanceof Error ? err.message : String(err) };
}

export function sendStatus(res: http.ServerResponse, err: unknown): void {
  const { code, message } = failure(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(code, { 'content-type': 'application/json' }).end(statusBody(code, message));
}

/** What an exec asks for: pods/exec's options (the `container` option has no meaning here). */
export interface ExecOptions {
  command: string[];
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

const execFlag = (q: URLSearchParams, k: string) => q.get(k) === 'true' || q.get(k) === '1';

/** Reads and checks exec's options from a query, with the apiserver's messages for pods. */
export function parseExecOptions(q: URLSearchParams): ExecOptions {
  const o: ExecOptions = {
    command: q.getAll('command'),
    stdin: execFlag(q, 'stdin'),
    stdout: execFlag(q, 'stdout'),
    stderr: execFlag(q, 'stderr'),
    tty: execFlag(q, 'tty'),
  };
  if (o.command.length === 0 || o.command[0] === '') throw new HttpError(400, 'you must specify a command');
  if (!o.stdin && !o.stdout && !o.stderr)
    throw new HttpError(400, 'you must specify at least 1 of stdin, stdout, stderr');
  if (o.tty && o.stderr) throw new HttpError(400, 'tty and stderr cannot both be true');
  return o;
}

/** The query that asks for `o`, as parseExecOptions reads it. */
export function execQuery(o: ExecOptions): URLSearchParams {
  const q = new URLSearchParams();
  for (const c of o.command) q.append('command', c);
  for (const k of ['stdin', 'stdout', 'stderr', 'tty'] as const) if (o[k]) q.set(k, 'true');
  return q;
}
