import type { CheckStudyInputsInput, CheckStudyInputsOutput } from './types.js';
import { StudyInvalidError } from '../../study/load.js';
import type { HarnessCheckApi } from './client.js';
import { harnessInputFiles } from './inputs.js';

export interface StudyActivityDeps {
  /** Study paths are relative to it, and must stay inside it. */
  projectRoot: string;
  harnessCheck: HarnessCheckApi;
}

export function createStudyActivities(deps: StudyActivityDeps) {
  return {
    /**
     * Before anything is reserved: the study's local files are inside the project and regular files, and pass the
     * harness's own checks (label leak, few-shot overlap, dataset rows, CodeCarbon settings), so a bad input fails
     * in seconds instead of after a pod is rented, the model downloaded and vLLM started.
     */
    async checkStudyInputs(input: CheckStudyInputsInput): Promise<CheckStudyInputsOutput> {
      const { study } = input;
      const { input: files, files: named } = harnessInputFiles(study, deps.projectRoot);
      const result = await deps.harnessCheck.check(files);
      if (result.problems.length) throw new StudyInvalidError(`study ${study.study}`, result.problems);
      return { files: named, samples: result.samples ?? 0, duplicates: result.duplicates ?? 0 };
    },
  };
}
