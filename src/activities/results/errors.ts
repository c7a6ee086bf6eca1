import { ErrorTypes } from '../../shared/errors.js';

export class TransferChecksumError extends Error {
  override readonly name = ErrorTypes.TransferChecksum;
}

/** A pod file the worker will not bring home: an unsafe name, a symlink or a special file. The pod is untrusted. */
export class UnsafePodFileError extends Error {
  override readonly name = ErrorTypes.UnsafePodFile;
}

/** A pod file, run or session over the worker's transfer limits; the message names the setting to raise. */
export class TransferLimitError extends Error {
  override readonly name = ErrorTypes.TransferLimit;
}

/** What the shared results store was doing when it failed (src/activities/results/s3-store.ts). */
export type ResultsStoreOperation = 'config' | 'push' | 'pull' | 'remove' | 'list' | 'head' | 'get' | 'put' | 'delete';

/**
 * The shared results store refused or failed: an unsafe path or key, a missing local file, or an S3 error. The message
 * names the operation, the key and the store's url, never the credentials.
 */
export class ResultsStoreError extends Error {
  // Not yet in ErrorTypes (src/shared/errors.ts belongs to another change); keep the two spellings equal.
  override readonly name = 'ResultsStoreError';
  readonly operation: ResultsStoreOperation;
  readonly url: string;
  readonly key: string | null;
  /** The HTTP status the store answered with, when it answered. */
  readonly status: number | null;

  constructor(opts: {
    operation: ResultsStoreOperation;
    url: string;
    key?: string | null;
    status?: number | null;
    message: string;
    cause?: unknown;
  }) {
    const where = opts.key ? `${opts.operation} ${opts.key}` : opts.operation;
    super(`results store ${opts.url}: ${where}: ${opts.message}`, { cause: opts.cause });
    this.operation = opts.operation;
    this.url = opts.url;
    this.key = opts.key ?? null;
    this.status = opts.status ?? null;
  }
}
