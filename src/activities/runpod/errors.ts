// Typed RunPod errors. Each class has a fixed `name` so the activity edge can turn it into an
// ApplicationFailure with `type = err.name`, and a `kind` for callers that prefer a switch.

/** Stable error-type names, for `nonRetryableErrorTypes` lists and ApplicationFailure types. */
export const RunPodErrorNames = {
  api: 'RunPodApiError',
  noCapacity: 'RunPodNoCapacityError',
  rateLimited: 'RunPodRateLimitedError',
  insufficientBalance: 'RunPodInsufficientBalanceError',
  unauthorized: 'RunPodUnauthorizedError',
  forbidden: 'RunPodForbiddenError',
  validation: 'RunPodValidationError',
  notFound: 'RunPodNotFoundError',
  conflict: 'RunPodConflictError',
  serverError: 'RunPodServerError',
  timeout: 'RunPodTimeoutError',
  network: 'RunPodNetworkError',
  protocol: 'RunPodProtocolError',
} as const;

export type RunPodErrorKind =
  | 'no-capacity'
  | 'rate-limited'
  | 'insufficient-balance'
  | 'unauthorized'
  | 'forbidden'
  | 'validation'
  | 'not-found'
  | 'conflict'
  | 'server-error'
  | 'timeout'
  | 'network'
  | 'other';

/** What we know about the request and the problem+json body that failed. */
export interface RunPodErrorContext {
  /** HTTP status; null when no response arrived (timeout, network). */
  status: number | null;
  method: string;
  /** Path below the base URL, e.g. `/pods/abc`. */
  path: string;
  /** `detail` of the problem body, or the raw text when the body was not a problem. */
  detail: string;
  /** `title` of the problem body, when there was one. */
  title?: string | undefined;
  /** `errors[]` of a 422 problem body (e.g. `"$: additional properties 'x' not allowed"`). */
  errors?: readonly string[] | undefined;
  /** `x-request-id` response header, worth logging (its presence is unconfirmed). */
  requestId?: string | undefined;
  cause?: unknown;
}

/** Base class of every error the RunPod client throws for a failed call. */
export class RunPodApiError extends Error {
  override readonly name: string = RunPodErrorNames.api;
  readonly kind: RunPodErrorKind = 'other';
  readonly status: number | null;
  readonly method: string;
  readonly path: string;
  readonly detail: string;
  readonly title: string | undefined;
  readonly errors: readonly string[];
  readonly requestId: string | undefined;

  constructor(ctx: RunPodErrorContext) {
    const where = `${ctx.method} ${ctx.path}`;
    super(`RunPod ${where} failed${ctx.status === null ? '' : ` with ${ctx.status}`}: ${ctx.detail}`, {
      cause: ctx.cause,
    });
    this.status = ctx.status;
    this.method = ctx.method;
    this.path = ctx.path;
    this.detail = ctx.detail;
    this.title = ctx.title;
    this.errors = ctx.errors ?? [];
    this.requestId = ctx.requestId;
  }
}

/** 400 with the no-capacity detail: try the next (GPU, data center) candidate. */
export class RunPodNoCapacityError extends RunPodApiError {
  override readonly name: string = RunPodErrorNames.noCapacity;
  override readonly kind = 'no-capacity';
}

/** What a 429 says about when to come back. */
export interface RateLimitHint {
  /** The `Retry-After` header (integer seconds), when sent. It covers only the window that was exceeded. */
  retryAfterS?: number | undefined;
  /** The latest reset (`t`, seconds) among the `RateLimit` header's windows with nothing left (`r=0`), when any. */
  exhaustedResetS?: number | undefined;
}

// SkyPilot waits 1 s when a 429 has no Retry-After; it is also the floor, so a `Retry-After: 0` cannot spin.
const MIN_RATE_LIMIT_WAIT_S = 1;

/** 429. Wait {@link waitMs} before the same call: every exhausted window must reset, not just the one exceeded. */
export class RunPodRateLimitedError extends RunPodApiError {
  override readonly name: string = RunPodErrorNames.rateLimited;
  override readonly kind = 'rate-limited';
  readonly retryAfterS: number | undefined;
  readonly exhaustedResetS: number | undefined;
  constructor(ctx: RunPodErrorContext & RateLimitHint) {
    super(ctx);
    this.retryAfterS = ctx.retryAfterS;
    this.exhaustedResetS = ctx.exhaustedResetS;
  }

  /** The larger of `Retry-After` and the reset of every exhausted `RateLimit` window, at least 1 s, in ms. */
  get waitMs(): number {
    return Math.max(MIN_RATE_LIMIT_WAIT_S, this.retryAfterS ?? MIN_RATE_LIMIT_WAIT_S, this.exhaustedResetS ?? 0) * 1000;
  }
}

/** 402: no candidate will succeed until the account is topped up. */
export class RunPodInsufficientBalanceError extends RunPodApiError {
  override readonly name: string = RunPodErrorNames.insufficientBalance;
  override readonly kind = 'insufficient-balance';
}

/** 401: missing, malformed or invalid API key. */
export class RunPodUnauthorizedError extends RunPodApiError {
  override readonly name: string = RunPodErrorNames.unauthorized;
  override readonly kind = 'unauthorized';
}

/** 403: the key lacks the permission, or the account cannot use the requested pool. */
export class RunPodForbiddenError extends RunPodApiError {
  override readonly name: string = RunPodErrorNames.forbidden;
  override readonly kind = 'forbidden';
}

/** 422, or a 400 that is not a capacity shortage: the request itself is wrong; never retry it. */
export class RunPodValidationError extends RunPodApiError {
  override readonly name: string = RunPodErrorNames.validation;
  override readonly kind = 'validation';
  /**
   * Field paths named by `errors[]`, e.g. `$.gpu.minRamPerGpu` for
   * `"$.gpu: additional properties 'minRamPerGpu' not allowed"`.
   */
  get fields(): string[] {
    return fieldsOf(this.errors);
  }
}

/**
 * Every GPU candidate's create was refused with a 400 that is neither a capacity shortage nor a field error: the
 * request breaks a rule of RunPod's (the contract: "if every candidate gives 400, it is a rule violation"). Same name
 * as RunPodValidationError, so it is never retried; `details` holds every candidate's attempt, and the message every
 * candidate's answer.
 */
export class RunPodCreateRejectedError extends RunPodValidationError {
  readonly details: unknown;
  constructor(ctx: RunPodErrorContext & { details: unknown }) {
    super(ctx);
    this.details = ctx.details;
  }
}

/** 404 on something other than a pod read or delete (those return null / false instead). */
export class RunPodNotFoundError extends RunPodApiError {
  override readonly name: string = RunPodErrorNames.notFound;
  override readonly kind = 'not-found';
}

/** 409: the action is not valid in the pod's current status, or the pod belongs to a cluster. */
export class RunPodConflictError extends RunPodApiError {
  override readonly name: string = RunPodErrorNames.conflict;
  override readonly kind = 'conflict';
}

/** 5xx. For a create this does NOT mean nothing was created: look the pod up by name first. */
export class RunPodServerError extends RunPodApiError {
  override readonly name: string = RunPodErrorNames.serverError;
  override readonly kind = 'server-error';
}

/** No response within `timeoutMs`. Like a 5xx, a create may still have happened. */
export class RunPodTimeoutError extends RunPodApiError {
  override readonly name: string = RunPodErrorNames.timeout;
  override readonly kind = 'timeout';
}

/** The request never got a response (connection refused, reset, DNS). */
export class RunPodNetworkError extends RunPodApiError {
  override readonly name: string = RunPodErrorNames.network;
  override readonly kind = 'network';
}

/** The API answered something our contract does not allow (bad JSON shape, unknown pod status). */
export class RunPodProtocolError extends Error {
  override readonly name: string = RunPodErrorNames.protocol;
  readonly status: number | undefined;
  readonly method: string | undefined;
  readonly path: string | undefined;
  constructor(message: string, ctx: { status?: number; method?: string; path?: string; cause?: unknown } = {}) {
    super(message, { cause: ctx.cause });
    this.status = ctx.status;
    this.method = ctx.method;
    this.path = ctx.path;
  }
}

// Capacity has no code: the detail text is the only signal, and some fixtures trim its second sentence.
const NO_CAPACITY_DETAIL = /no longer any instances available|no instances currently available|not enough free gpus/i;

/** True for a 400 whose detail is one of RunPod's no-capacity texts. */
export function isNoCapacity(status: number, detail: string): boolean {
  return status === 400 && NO_CAPACITY_DETAIL.test(detail);
}

/** API trouble that the same call may get past later: 5xx, no answer, no connection, 429. */
export function isTransientApiError(err: unknown): boolean {
  return (
    err instanceof RunPodServerError ||
    err instanceof RunPodTimeoutError ||
    err instanceof RunPodNetworkError ||
    err instanceof RunPodRateLimitedError
  );
}

/**
 * Builds the typed error for an HTTP error response.
 * @param ctx request and problem-body context; `status` must be set.
 * @param rateLimit parsed `Retry-After` and `RateLimit` headers, used for 429.
 */
export function classifyHttpError(
  ctx: RunPodErrorContext & { status: number },
  rateLimit: RateLimitHint = {},
): RunPodApiError {
  const { status } = ctx;
  if (status === 400)
    return isNoCapacity(status, ctx.detail) ? new RunPodNoCapacityError(ctx) : new RunPodValidationError(ctx);
  if (status === 401) return new RunPodUnauthorizedError(ctx);
  if (status === 402) return new RunPodInsufficientBalanceError(ctx);
  if (status === 403) return new RunPodForbiddenError(ctx);
  if (status === 404) return new RunPodNotFoundError(ctx);
  if (status === 409) return new RunPodConflictError(ctx);
  if (status === 422) return new RunPodValidationError(ctx);
  if (status === 429) return new RunPodRateLimitedError({ ...ctx, ...rateLimit });
  if (status >= 500) return new RunPodServerError(ctx);
  return new RunPodApiError(ctx);
}

// "$.gpu: additional properties 'a', 'b' not allowed" names $.gpu.a and $.gpu.b;
// "$: missing property 'name'" names $.name; anything else names its location prefix.
function fieldsOf(errors: readonly string[]): string[] {
  const out: string[] = [];
  for (const e of errors) {
    const m = /^(\$[^:]*):\s*(.*)$/.exec(e);
    if (!m) continue;
    const [, at = '$', rest = ''] = m;
    const named = /(?:additional propert(?:y|ies)|missing propert(?:y|ies))\s+(.*?)(?:\s+not allowed)?$/.exec(rest);
    if (named?.[1]) {
      for (const q of named[1].matchAll(/'([^']+)'/g)) out.push(`${at}.${q[1] ?? ''}`);
    } else {
      out.push(at);
    }
  }
  return [...new Set(out)];
}
