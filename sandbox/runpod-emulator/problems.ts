// RFC 9457 problems as RunPod v2 sends them (title/status/detail/errors, no `type`), thrown by handlers.

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function titleFor(status: number): string {
  return TITLES[status] ?? (status >= 500 ? 'Internal Server Error' : 'Error');
}

/** The exact production text; clients match on a substring of it. */
export const NO_CAPACITY_DETAIL =
  'There are no longer any instances available with the requested specifications. Please refresh and try again.';
export const VALIDATION_DETAIL = 'Request validation failed.';

export class ProblemError extends Error {
  override readonly name = 'ProblemError';
  readonly status: number;
  readonly detail: string;
  readonly errors: string[] | undefined;
  readonly headers: Record<string, string>;
  constructor(status: number, detail: string, opts: { errors?: string[]; headers?: Record<string, string> } = {}) {
    super(`${status} ${detail}`);
    this.status = status;
    this.detail = detail;
    this.errors = opts.errors;
    this.headers = opts.headers ?? {};
  }

  /** Body with keys in alphabetical order, as observed from production. */
  body(): Record<string, unknown> {
    return {
      detail: this.detail,
      ...(this.errors ? { errors: this.errors } : {}),
      status: this.status,
      title: titleFor(this.status),
    };
  }
}

export const noCapacity = (): ProblemError => new ProblemError(400, NO_CAPACITY_DETAIL);
export const validationFailed = (errors: string[]): ProblemError =>
  new ProblemError(422, VALIDATION_DETAIL, { errors });
export const notFound = (what: string): ProblemError => new ProblemError(404, `${what} not found`);
// Title and detail UNCONFIRMED upstream.
export const insufficientBalance = (): ProblemError => new ProblemError(402, 'Insufficient balance.');
