/** Task queue shared by the worker and every workflow start. */
export const TASK_QUEUE = 'gpu-study';

/** Prefix of every pod name this project creates; the reaper only ever touches pods carrying it. */
export const POD_NAME_PREFIX = 'gpustudy';

/** Readable workflow ids, so the Web UI list reads as study / phase / model. */
export const workflowIds = {
  study: (study: string) => `study-${study}`,
  phase: (study: string, phase: string) => `study-${study}--${phase}`,
  podSession: (study: string, phase: string, modelSlug: string) => `study-${study}--${phase}--${modelSlug}`,
} as const;

/** Search attributes registered on the server (`temporal server start-dev --search-attribute`). */
export const SEARCH_ATTRIBUTES = { Study: 'Keyword', Phase: 'Keyword', Model: 'Keyword' } as const;

/** `Qwen/Qwen3-30B-A3B-Instruct-2507` -> `Qwen3-30B-A3B-Instruct-2507`: the last path segment, filesystem safe. */
export function modelSlug(repoId: string): string {
  const last = repoId.split('/').pop() ?? repoId;
  return last.replace(/[^A-Za-z0-9._-]/g, '_');
}
