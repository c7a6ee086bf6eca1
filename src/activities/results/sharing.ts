// Which part of the results folder each activity reads and writes, and the wrapper that keeps it in step with the
// shared store: pull the part before the activity runs, push what the activity changed (and remove what it removed)
// before it completes. With several workers on one task queue, an activity that completed on one worker has left its
// files where the next activity, on whichever worker, finds them; one that died mid-way left nothing half-shared,
// and its retry starts again from the store (a transfer from the pod, which still has the files).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { keepHeartbeating } from '../heartbeat.js';
import type { ResultsStore } from './store.js';
import { KEPT_DIR } from './kept.js';

/** The part of the results folder (relative, '/'-separated) an activity works in. */
export interface ResultsScope {
  prefix: string;
  /** Whether the store's copy is the whole truth below the prefix (records deleted elsewhere go here too). */
  prune?: boolean;
  /** Reads only: nothing to push afterwards. */
  readOnly?: boolean;
}

type ScopeOf = (input: never) => ResultsScope;

/**
 * Every activity that touches the results folder, by the part it touches. An activity missing here would read a
 * stale folder or write files only its worker sees: test/unit/results-sharing.test.ts checks the list against the
 * activities that take the results folder.
 */
export const RESULTS_SCOPES = {
  transferResults: (i: { resultsSubdir: string }) => ({ prefix: i.resultsSubdir }),
  collectLogs: (i: { resultsSubdir: string }) => ({ prefix: i.resultsSubdir }),
  writeRunManifest: (i: { resultsSubdir: string }) => ({ prefix: i.resultsSubdir }),
  summarizePhase: (i: { study: string; phase: string }) => ({ prefix: `${i.study}/${i.phase}` }),
  recordKeptResults: (i: { study: string }) => ({ prefix: `${i.study}/${KEPT_DIR}`, prune: true }),
  removeKeptResults: (i: { study: string }) => ({ prefix: `${i.study}/${KEPT_DIR}`, prune: true }),
  analyzePhase: (i: { study: string }) => ({ prefix: i.study }),
  recordGateDecision: (i: { study: string }) => ({ prefix: i.study }),
  writeReport: (i: { study: string }) => ({ prefix: i.study }),
  // The plan's history and spend come from earlier runs' files.
  preflightPhase: (i: { study: { study: string } }) => ({ prefix: i.study.study, readOnly: true }),
} satisfies Record<string, ScopeOf>;

/** Scratch names that are never shared: atomic-write temps and partial downloads. */
const SCRATCH = /\.(tmp|partial|pull-tmp)$/;

/** `path -> size:mtime` of every file below `prefix`, for telling what an activity wrote. */
function snapshot(resultsDir: string, prefix: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    let entries;
    try {
      entries = readdirSync(join(resultsDir, rel), { withFileTypes: true });
    } catch {
      return; // not there (yet): nothing below it
    }
    for (const e of entries) {
      const child = `${rel}/${e.name}`;
      if (e.isDirectory()) walk(child);
      else if (e.isFile() && !SCRATCH.test(e.name)) {
        const st = statSync(join(resultsDir, child));
        out.set(child, `${st.size}:${st.mtimeMs}`);
      }
    }
  };
  walk(prefix);
  return out;
}

/** Runs `work` with its part of the results folder pulled before and what it changed pushed after. */
export async function withSharedResults<T>(
  deps: { store: ResultsStore; resultsDir: string },
  scope: ResultsScope,
  work: () => Promise<T>,
): Promise<T> {
  const { store } = deps;
  if (store.url === null) return work();
  // A large pull or push can outlast the pod steps' heartbeat timeout: the ticker covers it.
  const sharing = (step: string, fn: () => Promise<unknown>) =>
    keepHeartbeating(() => ({ sharing: step, prefix: scope.prefix, store: store.url }), fn);
  await sharing('pull', () => store.pull({ prefix: scope.prefix, ...(scope.prune ? { prune: true } : {}) }));
  if (scope.readOnly) return work();
  const before = snapshot(deps.resultsDir, scope.prefix);
  const out = await work();
  const after = snapshot(deps.resultsDir, scope.prefix);
  const changed = [...after].filter(([path, stamp]) => before.get(path) !== stamp).map(([path]) => path);
  const removed = [...before.keys()].filter((path) => !after.has(path));
  if (changed.length) await sharing('push', () => store.push({ paths: changed }));
  if (removed.length) await sharing('remove', () => store.remove({ paths: removed }));
  return out;
}

type AnyFn = (input: never) => Promise<unknown>;

/** Wraps the activities named in RESULTS_SCOPES so each works on the shared results; the rest pass through. */
export function shareResults<T extends Record<string, AnyFn>>(
  activities: T,
  deps: { store: ResultsStore; resultsDir: string },
): T {
  if (deps.store.url === null) return activities;
  const scopes: Record<string, ScopeOf> = RESULTS_SCOPES;
  const wrapped: Record<string, AnyFn> = { ...activities };
  for (const [name, scopeOf] of Object.entries(scopes)) {
    const fn = activities[name];
    if (!fn) continue;
    const wrapper = (input: never) => withSharedResults(deps, scopeOf(input), () => fn(input));
    Object.defineProperty(wrapper, 'name', { value: name });
    wrapped[name] = wrapper;
  }
  return wrapped as T;
}
