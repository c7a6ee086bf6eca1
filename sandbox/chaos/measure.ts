// The chaos run's figures from what the sandbox recorded: pod overlap from the emulator's billing, samples from the
// run folders that came home.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure, TerminatedFailure } from '@temporalio/common';
import { modelSlug } from '../../src/shared/constants.js';
import type { Study } from '../../src/study/schema.js';

export { mulberry32 } from '../runpod-emulator/random.js';

/** How the session ended: 'completed', 'terminated', or the failure's type. */
export function outcomeOf(err: unknown): string {
  if (!(err instanceof WorkflowFailedError)) return `error: ${String(err)}`;
  let cause: unknown = err.cause;
  if (cause instanceof TerminatedFailure) return 'terminated';
  // An activity's or child's failure wraps the typed one that says why.
  while ((cause instanceof ActivityFailure || cause instanceof ChildWorkflowFailure) && cause.cause)
    cause = cause.cause;
  if (cause instanceof ApplicationFailure) return cause.type ?? 'ApplicationFailure';
  return cause instanceof Error ? cause.name : 'failed';
}

/** Samples of each strategy's run that came home: lost = expected and missing, duplicated = extra lines. */
export function countSamples(
  resultsDir: string,
  study: Study,
  phase: string,
  repoId: string,
  samples: number,
  prompts: string[] = study.prompts.map((p) => p.name),
) {
  let lost = 0;
  let duplicated = 0;
  for (const prompt of prompts) {
    const dir = join(resultsDir, study.study, phase, modelSlug(repoId), prompt);
    const runs = existsSync(dir) ? readdirSync(dir).filter((r) => existsSync(join(dir, r, 'manifest.json'))) : [];
    const ids = runs.flatMap((r) =>
      readFileSync(join(dir, r, 'predictions.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { id: number }).id),
    );
    const unique = new Set(ids).size;
    lost += Math.max(0, samples - unique);
    duplicated += ids.length - unique;
  }
  return { lost, duplicated };
}

/** Pods alive at the same moment, beyond one: a duplicate bills twice for one session. */
export function maxOverlap(pods: { createdAt: string; deletedAt: string | null }[]): number {
  const edges = pods.flatMap((p) => [
    { t: Date.parse(p.createdAt), d: 1 },
    { t: p.deletedAt ? Date.parse(p.deletedAt) : Number.POSITIVE_INFINITY, d: -1 },
  ]);
  edges.sort((a, b) => a.t - b.t || a.d - b.d);
  let live = 0;
  let max = 0;
  for (const e of edges) max = Math.max(max, (live += e.d));
  return max;
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.floor((s.length - 1) / 2)]! + s[Math.ceil((s.length - 1) / 2)]!) / 2 : 0;
};
