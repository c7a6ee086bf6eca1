// The study's local files as the harness's own checks read them: resolved inside the project, or refused.
import { resolveStudyFiles } from '../../study/files.js';
import { StudyInvalidError } from '../../study/load.js';
import type { Study } from '../../study/schema.js';
import type { HarnessCheckInput } from './schemas.js';

export interface HarnessInputFiles {
  /** What `harness.check` / `harness.preflight` read: the real paths of the dataset, templates and examples. */
  input: HarnessCheckInput;
  /** The files as the study names them. */
  files: string[];
}

/** Resolves the study's files (inside the project after symlinks, regular files) into the harness's input. */
export function harnessInputFiles(study: Study, projectRoot: string): HarnessInputFiles {
  const { files, problems } = resolveStudyFiles({ study, projectRoot });
  if (problems.length) throw new StudyInvalidError(`study ${study.study}`, problems);
  const real = new Map(files.map((f) => [f.field, f.realPath]));
  const at = (field: string) => real.get(field) ?? '';
  return {
    input: {
      datasetPath: at('datasetPath'),
      prompts: study.prompts.map((p, i) => ({
        name: p.name,
        templatePath: at(`prompts.${i}.templatePath`),
        fewShotPath: p.fewShotExamplesPath ? at(`prompts.${i}.fewShotExamplesPath`) : null,
      })),
      codecarbon: study.codecarbon,
    },
    files: files.map((f) => f.path),
  };
}
