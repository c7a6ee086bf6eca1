import { ErrorTypes } from '../../shared/errors.js';

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
