import { ErrorTypes } from '../../shared/errors.js';

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
