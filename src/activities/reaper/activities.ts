import { cancellationSignal, log } from '@temporalio/activity';
import type { ReapOrphanPodsInput, ReapOrphanPodsOutput } from './types.js';
import type { RunPodApi } from '../runpod/index.js';
import { formatDecision, reapOrphanPods, type WorkflowStatusLookup } from './reaper.js';

export interface ReaperActivityDeps {
  runpod: RunPodApi;
  workflowStatus: WorkflowStatusLookup;
}

export function createReaperActivities(deps: ReaperActivityDeps) {
  return {
    /** The scheduled reaper's one step: terminate orphaned project pods, log every decision. */
    async reapOrphanPods(input: ReapOrphanPodsInput): Promise<ReapOrphanPodsOutput> {
      const out = await reapOrphanPods({ ...deps, signal: cancellationSignal() }, input);
      for (const d of out.decisions) log.info(formatDecision(d), { podId: d.podId, action: d.action });
      return out;
    },
  };
}
