import { ErrorTypes } from '../../shared/errors.js';

/** The pod could not be reached or the SSH session broke: retryable. */
export class SshError extends Error {
  override readonly name = ErrorTypes.Ssh;
  constructor(
    message: string,
    readonly where: string,
  ) {
    super(message);
  }
}

/** A command on the pod failed; carries the tail of its output. */
export class RemoteCommandError extends Error {
  override readonly name = ErrorTypes.RemoteCommand;
  constructor(
    readonly step: string,
    readonly code: number | null,
    readonly outputTail: string,
  ) {
    super(`${step} failed on the pod (exit ${code ?? 'signal'}): ${outputTail}`);
  }
}

export class DownloadFailedError extends Error {
  override readonly name = ErrorTypes.DownloadFailed;
}

/** Downloaded files do not match the Hub's metadata or their own headers. */
export class DownloadVerificationError extends Error {
  override readonly name = ErrorTypes.DownloadVerification;
}

/** vLLM cannot hold this model at these settings on this GPU: no retry can fix it. */
export class ModelDoesNotFitError extends Error {
  override readonly name = ErrorTypes.ModelDoesNotFit;
}

export class VllmStartFailedError extends Error {
  override readonly name = ErrorTypes.VllmStartFailed;
}

export class HarnessFailedError extends Error {
  override readonly name = ErrorTypes.HarnessFailed;
}

/** The harness wrote something that does not match the versioned contract. */
export class HarnessContractError extends Error {
  override readonly name = ErrorTypes.HarnessContract;
}

export class TransferChecksumError extends Error {
  override readonly name = ErrorTypes.TransferChecksum;
}
