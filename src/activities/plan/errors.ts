import { ErrorTypes } from '../../shared/errors.js';
import type { PlanCheck } from '../../plan/types.js';

/** A check of the phase's plan failed (fit, context, dataset, consistency, budget): a person must change the study. */
export class PreflightFailedError extends Error {
  override readonly name = ErrorTypes.PreflightFailed;
  constructor(
    readonly phaseId: string,
    readonly failed: PlanCheck[],
  ) {
    super(
      `the preflight of ${phaseId} failed, nothing was reserved: ` +
        failed
          .map((c) => `${c.title}: ${c.summary}${c.details.length ? ` (${c.details.slice(0, 5).join('; ')})` : ''}`)
          .join(' | ') +
        ` (npm run plan -- ${phaseId} shows the whole plan)`,
    );
  }
}
