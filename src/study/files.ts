import { realpathSync, statSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { Study } from './schema.js';

/** A local file a study names, resolved (symlinks followed) and found to be a regular file inside the project. */
export interface StudyFile {
  /** The study field, e.g. `prompts.1.fewShotExamplesPath`. */
  field: string;
  /** As the study writes it (relative to the project root). */
  path: string;
  /** Absolute, symlinks resolved. */
  realPath: string;
}

/** Every local file a study names, with its field. */
export function studyFilePaths(study: Pick<Study, 'datasetPath' | 'prompts'>): { field: string; path: string }[] {
  return [
    { field: 'datasetPath', path: study.datasetPath },
    ...study.prompts.flatMap((p, i) => [
      { field: `prompts.${i}.templatePath`, path: p.templatePath },
      ...(p.fewShotExamplesPath ? [{ field: `prompts.${i}.fewShotExamplesPath`, path: p.fewShotExamplesPath }] : []),
    ]),
  ];
}

const inside = (root: string, p: string) => {
  const rel = relative(root, p);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
};

/**
 * The worker uploads these files to a host the study names, so a study must not point it at anything else on the
 * worker (an SSH key, /etc/passwd): each path must stay inside the project root after symlinks are resolved, and
 * be a regular file (a directory or /dev/zero is refused unread). Returns the files, or one problem per bad path.
 */
export function resolveStudyFiles(input: { study: Pick<Study, 'datasetPath' | 'prompts'>; projectRoot: string }): {
  files: StudyFile[];
  problems: string[];
} {
  const root = realpathSync(input.projectRoot);
  const files: StudyFile[] = [];
  const problems: string[] = [];
  for (const { field, path } of studyFilePaths(input.study)) {
    if (isAbsolute(path) || !inside(root, resolve(root, path))) {
      problems.push(`${field}: ${path} is outside the project (paths are relative to its root)`);
      continue;
    }
    let realPath: string;
    try {
      realPath = realpathSync(resolve(root, path));
    } catch {
      problems.push(`${field}: file not found: ${path}`);
      continue;
    }
    if (!inside(root, realPath)) {
      problems.push(`${field}: ${path} is a link to a file outside the project`);
      continue;
    }
    if (!statSync(realPath).isFile()) {
      problems.push(`${field}: ${path} is not a regular file`);
      continue;
    }
    files.push({ field, path, realPath });
  }
  return { files, problems };
}
