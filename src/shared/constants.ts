/** Task queue shared by the worker and every workflow start. */
export const TASK_QUEUE = 'gpu-study';

/** Prefix of every pod name this project creates; the reaper only ever touches pods carrying it. */
export const POD_NAME_PREFIX = 'gpustudy';

/** The Temporal Schedule that runs the reaper workflow. */
export const REAPER_SCHEDULE_ID = 'gpustudy-pod-reaper';

/** Readable workflow ids, so the Web UI list reads as study / phase / model. */
export const workflowIds = {
  study: (study: string) => `study-${study}`,
  phase: (study: string, phase: string) => `study-${study}--${phase}`,
  podSession: (study: string, phase: string, modelSlug: string) => `study-${study}--${phase}--${modelSlug}`,
} as const;

/**
 * Pod names carry their owner: `gpustudy--<study>--<phase>--<modelSlug>--<token>`, where the session workflow id
 * is `study-<study>--<phase>--<modelSlug>` and `token` starts with the first 8 hex digits of its run id (a
 * suffix may follow, e.g. a reserve round). The reaper reads them back with parsePodName.
 */
export function podName(o: { study: string; phase: string; modelSlug: string; token: string }): string {
  return [POD_NAME_PREFIX, o.study, o.phase, o.modelSlug, o.token].join('--');
}

export interface ParsedPodName {
  sessionWorkflowId: string;
  /** First 8 hex digits of the owning run id (without dashes). */
  runIdPrefix: string;
}

/** The owner of a pod this project created, or null for a name it cannot read (an unknown owner). */
export function parsePodName(name: string): ParsedPodName | null {
  const parts = name.split('--');
  if (parts.length !== 5 || parts[0] !== POD_NAME_PREFIX) return null;
  const [, study, phase, slug, token] = parts as [string, string, string, string, string];
  const runIdPrefix = /^[0-9a-f]{8}/.exec(token)?.[0];
  if (!study || !phase || !slug || !runIdPrefix) return null;
  return { sessionWorkflowId: workflowIds.podSession(study, phase, slug), runIdPrefix };
}

/** Search attributes registered on the server (`temporal server start-dev --search-attribute`). */
export const SEARCH_ATTRIBUTES = { Study: 'Keyword', Phase: 'Keyword', Model: 'Keyword' } as const;

/** `Qwen/Qwen3-30B-A3B-Instruct-2507` -> `Qwen3-30B-A3B-Instruct-2507`: the last path segment, filesystem safe. */
export function modelSlug(repoId: string): string {
  const last = repoId.split('/').pop() ?? repoId;
  return last.replace(/[^A-Za-z0-9._-]/g, '_');
}
