/** Prefix of every pod name this project creates; the reaper only ever touches pods carrying it. */
export const POD_NAME_PREFIX = 'gpustudy';

/**
 * Prefix of a pod the project stopped instead of terminating because its results are not home yet: the reaper lists
 * it but never terminates it; `npm run fetch-results -- --pod <id>` brings the results home and then terminates it.
 */
export const KEPT_POD_NAME_PREFIX = `${POD_NAME_PREFIX}-kept`;

/** `gpustudy--a--b` -> `gpustudy-kept--a--b`: the same owner, marked as holding results. Idempotent. */
export function keptPodName(name: string): string {
  if (name.startsWith(`${KEPT_POD_NAME_PREFIX}--`)) return name;
  const rest = name.startsWith(`${POD_NAME_PREFIX}--`) ? name.slice(POD_NAME_PREFIX.length + 2) : name;
  return `${KEPT_POD_NAME_PREFIX}--${rest}`;
}

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

/**
 * How often a long pod-side step that has nothing else to poll (model verification) touches the watchdog's heartbeat
 * file. The other steps touch on every poll (POD_POLL_INTERVAL_MS, 5 s by default), so this is the longest gap
 * between touches while a step runs; a watchdog `staleAfterMs` must be longer.
 */
export const WATCHDOG_TOUCH_INTERVAL_MS = 10_000;

/** The pod harness refuses a CodeCarbon `measurePowerSecs` below this (`MIN_MEASURE_POWER_SECS` in pod/harness/spec.py). */
export const MIN_MEASURE_POWER_SECS = 0.1;

/** Largest study file (and each file it `extends`): a workflow input must stay far below gRPC's 4 MB message limit. */
export const MAX_STUDY_FILE_BYTES = 1024 * 1024;

/**
 * Characters a pod workspace path may hold: `workspaceProbe` (src/activities/ssh/remote.ts) keeps only these, so a
 * path with any other character would silently name another directory.
 */
export const WORKSPACE_PATH_RE = /^\/[A-Za-z0-9/._-]*$/;
