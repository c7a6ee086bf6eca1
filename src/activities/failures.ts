import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { NON_RETRYABLE_ERROR_TYPES } from '../shared/errors.js';

/**
 * The one place typed errors become ApplicationFailures: `type` is the error's `name`, retryability comes
 * from the shared list (the workflow's retry policy lists the same names). Failures pass through untouched.
 */
export function toApplicationFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure || err instanceof CancelledFailure) return err;
  if (!(err instanceof Error)) return ApplicationFailure.create({ message: String(err), type: 'UnknownError' });
  const details = 'details' in err && err.details !== undefined ? [err.details] : undefined;
  return ApplicationFailure.create({
    message: err.message,
    type: err.name,
    nonRetryable: NON_RETRYABLE_ERROR_TYPES.includes(err.name),
    cause: err,
    ...(details ? { details } : {}),
  });
}

type AnyFn = (input: never) => Promise<unknown>;

/** Wraps every activity of a factory's result so its errors are converted once, at the edge. */
export function withFailureConversion<T extends Record<string, AnyFn>>(activities: T): T {
  const wrapped: Record<string, AnyFn> = {};
  for (const [name, fn] of Object.entries(activities)) {
    const wrapper = async (input: never) => {
      try {
        return await fn(input);
      } catch (err) {
        throw toApplicationFailure(err);
      }
    };
    Object.defineProperty(wrapper, 'name', { value: name });
    wrapped[name] = wrapper;
  }
  return wrapped as T;
}
