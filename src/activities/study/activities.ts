import type { CheckStudyInputsInput, CheckStudyInputsOutput } from '../../shared/types.js';
import { resolveStudyFiles } from '../../study/files.js';
import { StudyInvalidError } from '../../study/load.js';
import type { HarnessCheckApi } from './client.js';

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
      const where = `study ${study.study}`;
      const { files, problems } = resolveStudyFiles({ study, projectRoot: deps.projectRoot });
      if (problems.length) throw new StudyInvalidError(where, problems);
      const real = new Map(files.map((f) => [f.field, f.realPath]));
      const at = (field: string) => real.get(field) ?? '';
      const result = await deps.harnessCheck.check({
        datasetPath: at('datasetPath'),
        prompts: study.prompts.map((p, i) => ({
          name: p.name,
          templatePath: at(`prompts.${i}.templatePath`),
          fewShotPath: p.fewShotExamplesPath ? at(`prompts.${i}.fewShotExamplesPath`) : null,
        })),
        codecarbon: study.codecarbon,
      });
      if (result.problems.length) throw new StudyInvalidError(where, result.problems);
      return { files: files.map((f) => f.path), samples: result.samples ?? 0, duplicates: result.duplicates ?? 0 };
    },
  };
}
