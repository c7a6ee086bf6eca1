import { ErrorTypes } from '../../shared/errors.js';

/**
 * What went wrong with SSH: `connect` (could not log in), `lost` (the connection dropped under a command),
 * `timeout` (a command ran past its limit), `cancelled` (the activity was cancelled), `sftp` (an SFTP operation
 * failed; the connection may still be fine), `channel` (the server refused a new channel), `host-key` (the server's
 * host key is not the pinned one, or there is no pin: {@link HostKeyMismatchError}).
 */
export type SshErrorKind = 'connect' | 'lost' | 'timeout' | 'cancelled' | 'sftp' | 'channel' | 'host-key';

/** The pod could not be reached or the SSH session broke: retryable. */
export class SshError extends Error {
  override readonly name: string = ErrorTypes.Ssh;
  constructor(
    message: string,
    readonly where: string,
    readonly kind: SshErrorKind = 'lost',
  ) {
    super(message);
  }
}

/**
 * The server at a pod's address presented a host key other than the pinned one (another machine, or someone in
 * between), or there was no pin to check it against. Not retryable: the reconnect logic and Temporal both stop.
 */
export class HostKeyMismatchError extends SshError {
  override readonly name = ErrorTypes.HostKeyMismatch;
  readonly details: { hostPort: string; expected: string | null; presented: string | null };
  constructor(o: { hostPort: string; expected: string | null; presented: string | null; keyType?: string }) {
    super(
      o.expected === null
        ? `refusing to connect to ${o.hostPort}: no host key pinned for it (a rented pod's key is pinned when it ` +
            "becomes ready; the team's server needs target.hostKeySha256 in the study file)"
        : `host key of ${o.hostPort} changed: expected ${o.expected}, presented ${o.presented ?? '?'}` +
            `${o.keyType ? ` (${o.keyType})` : ''}. This is not the machine the session pinned (or someone is in ` +
            'between); the session stops and does not reconnect.',
      o.hostPort,
      'host-key',
    );
    this.details = { hostPort: o.hostPort, expected: o.expected, presented: o.presented };
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
  constructor(
    message: string,
    /** vLLM's numbers (GiB, tokens) and the reason, for the failure's details. */
    readonly details?: { reason: string; numbers: Record<string, number> },
  ) {
    super(message);
  }
}

export class VllmStartFailedError extends Error {
  override readonly name = ErrorTypes.VllmStartFailed;
}

/**
 * The model server died (or stopped answering) under a run: retrying the run cannot help until vLLM is restarted,
 * so the workflow restarts it and continues per the study's interruption policy.
 */
export class ModelServerGoneError extends Error {
  override readonly name = ErrorTypes.ModelServerGone;
  constructor(
    message: string,
    /** Where the run stood; the workflow records it in the manifest's interruptions. */
    readonly details?: { runId: string; done: number | null; total: number | null },
  ) {
    super(message);
  }
}

/** Why a harness run ended unfinished: its process died, it failed, or its energy record is missing. */
export type RunInterruptionCause = 'harness-died' | 'harness-failed' | 'measurement-invalid';

/**
 * A harness run ended without finishing while the model server is fine. Resuming in place would stitch two
 * measurements together, so the activity does not: the workflow reruns it fresh or resumes it, per the study.
 */
export class RunInterruptedError extends Error {
  override readonly name = ErrorTypes.RunInterrupted;
  constructor(
    message: string,
    readonly details?: { runId: string; done: number | null; total: number | null; cause: RunInterruptionCause },
  ) {
    super(message);
  }
}

/** The harness refused the run's inputs (spec, dataset, template, few-shot examples): a person must fix the study. */
export class HarnessInputError extends Error {
  override readonly name = ErrorTypes.HarnessInput;
}

/** The harness wrote something that does not match the versioned contract. */
export class HarnessContractError extends Error {
  override readonly name = ErrorTypes.HarnessContract;
}

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
