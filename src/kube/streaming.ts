// Plumbing of the log streams (the aggregated server and the agents): failures as Kubernetes
// clients read them, a metav1.Status whose message says why.
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
