// Telling apiserver failures apart by HTTP status. client-node's ApiException and StatusError
// both carry a numeric `code`; network errors carry string codes (ECONNREFUSED), so they have
// no status here.

/** A metav1.Status failure that did not come as an HTTP error (a watch's ERROR event). */
export class StatusError extends Error {
  override readonly name = 'StatusError';

  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** The HTTP status of a failed apiserver call, if it got that far. */
export function errorCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

export const isNotFound = (err: unknown): boolean => errorCode(err) === 404;
export const isConflict = (err: unknown): boolean => errorCode(err) === 409;
/** The resourceVersion asked for is compacted away: relist. */
export const isGone = (err: unknown): boolean => errorCode(err) === 410;
