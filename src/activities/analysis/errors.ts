import { ErrorTypes } from '../../shared/errors.js';

/** The analysis refused its input (exit 2 with a message): a person must fix the results folder or the study. */
export class AnalysisInputError extends Error {
  override readonly name = ErrorTypes.AnalysisInput;
}

/** The analysis process crashed, was killed, or printed something that is not its contract. */
export class AnalysisFailedError extends Error {
  override readonly name = ErrorTypes.AnalysisFailed;
  constructor(
    message: string,
    readonly stderrTail: string,
  ) {
    super(stderrTail ? `${message}: ${stderrTail}` : message);
  }
}
