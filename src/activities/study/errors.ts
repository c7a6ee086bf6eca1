import { ErrorTypes } from '../../shared/errors.js';

/** The harness's check crashed, timed out or printed something that is not its contract: retryable. */
export class HarnessCheckFailedError extends Error {
  override readonly name = ErrorTypes.HarnessCheckFailed;
  constructor(
    message: string,
    readonly stderrTail: string,
  ) {
    super(stderrTail ? `${message}: ${stderrTail}` : message);
  }
}
