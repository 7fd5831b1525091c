/**
 * What can go wrong talking to the control plane, in the words the components show.
 *
 * - `unavailable`: the control plane (or Backstage's proxy to it) did not answer in time,
 *   or answered 502/503/504.
 * - `unauthenticated`: 401, the user's Backstage token is missing or expired.
 * - `refused`: the API answered `{"error": {"code", "message"}}` with a 4xx (the policy's
 *   refusal, a bad request, a conflict): `code` and `message` are the API's.
 * - `unexpected`: anything else (a 500, a body that is not the API's).
 */
export type MeshgateErrorKind =
  | 'unavailable'
  | 'unauthenticated'
  | 'refused'
  | 'unexpected';

export class MeshgateAccessError extends Error {
  readonly kind: MeshgateErrorKind;
  /** The API's error code (`duration_over_maximum`, `already_decided`, ...), when it sent one. */
  readonly code?: string;
  /** HTTP status, when there was a response. */
  readonly status?: number;

  constructor(
    kind: MeshgateErrorKind,
    message: string,
    options: { code?: string; status?: number } = {},
  ) {
    super(message);
    this.name = 'MeshgateAccessError';
    this.kind = kind;
    this.code = options.code;
    this.status = options.status;
  }
}

/** The sentence a person sees for an error, whatever threw it. */
export function describeError(error: unknown): string {
  if (error instanceof MeshgateAccessError) {
    switch (error.kind) {
      case 'unavailable':
        return `The meshgate control plane is not reachable right now (${error.message}). Try again in a moment.`;
      case 'unauthenticated':
        return 'Your sign-in has expired. Sign in to Backstage again, then retry.';
      case 'refused':
        return error.message;
      default:
        return `meshgate answered with an error: ${error.message}`;
    }
  }
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}
