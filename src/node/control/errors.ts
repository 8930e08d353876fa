/**
 * Errors of the control API. On the wire every error is
 *   { "error": { "code": "...", "message": "...", "errors": [{ "path": "...", "message": "..." }] } }
 * with `errors` listing each problem of a refused payload or ruleset. The codes are stable: the
 * CLI and scripts match on them.
 */

export interface ApiIssue {
  path: string;
  message: string;
}

export interface ApiErrorBody {
  error: { code: string; message: string; errors: ApiIssue[] };
}

/** An error the server answers with (status + code); thrown by handlers, rendered by the server. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly errors: ApiIssue[];
  constructor(status: number, code: string, message: string, errors: ApiIssue[] = []) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.errors = errors;
  }

  toBody(): ApiErrorBody {
    return { error: { code: this.code, message: this.message, errors: this.errors } };
  }
}

/** Client side: nothing listens on the control socket (daemon not running, or another path). */
export class DaemonUnreachableError extends Error {
  readonly code = 'DAEMON_UNREACHABLE';
  constructor(socketPath: string, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(
      `cannot reach the twinwall daemon on ${socketPath} (${why}). ` +
        'Is it running? Start it with `twinwall node --config FILE`, or give its socket with --socket PATH.',
    );
    this.name = 'DaemonUnreachableError';
  }
}

/** Client side: the daemon answered with an error body. */
export class ApiResponseError extends Error {
  readonly code: string;
  readonly status: number;
  readonly errors: ApiIssue[];
  constructor(status: number, body: ApiErrorBody['error']) {
    const details = body.errors.length ? `\n${body.errors.map((e) => `  ${e.path || '/'}: ${e.message}`).join('\n')}` : '';
    super(`${body.message}${details}`);
    this.name = 'ApiResponseError';
    this.code = body.code;
    this.status = status;
    this.errors = body.errors;
  }
}
