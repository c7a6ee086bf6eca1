import { ErrorTypes } from '../../shared/errors.js';

/**
 * The team's server has no GPU with the study's `gpuIndex`, or cannot say which GPUs it has (no `nvidia-smi`): a
 * person must fix the study or the server. The message names the GPUs the host lists.
 */
export class GpuNotFoundError extends Error {
  override readonly name = ErrorTypes.GpuNotFound;
}

/** The GPU lock cannot work on this host (its lock folder is not usable, `flock` is missing): not retryable. */
export class GpuLockUnavailableError extends Error {
  override readonly name = ErrorTypes.GpuLockUnavailable;
}
