/**
 * Input and output of checkStudyInputs. Pure types, safe for workflow code (which imports them with `import type`).
 * Nothing here may carry a secret: Temporal stores all of it in workflow history.
 */

import type { Study } from '../../study/schema.js';

/** checkStudyInputs (src/activities/study): the study's local files, checked before anything is reserved. */
export interface CheckStudyInputsInput {
  study: Study;
}
export interface CheckStudyInputsOutput {
  /** The checked files, as the study names them. */
  files: string[];
  /** Unique samples in the dataset, and repeated rows (the first copy counts). */
  samples: number;
  duplicates: number;
}
