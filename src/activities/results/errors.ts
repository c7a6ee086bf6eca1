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
