// A pod whose results could not be brought home is kept, not terminated: renamed so the reaper leaves it alone,
// then stopped (compute released, the volume with the results kept). Later it is started again to fetch them.
import { log } from '@temporalio/activity';
import { keptPodName } from '../../shared/constants.js';
import type { RunPodActivityDeps } from './deps.js';
import { RunPodApiError } from './errors.js';
import { toPhase } from './schemas.js';
import type { KeepPodInput, KeepPodOutput, ResumeKeptPodInput, ResumeKeptPodOutput } from './types.js';

export function createKeepActivities(deps: RunPodActivityDeps) {
  const { runpod } = deps;
  return {
    /**
     * Renames the pod to its kept name first (a stopped pod under its usual name would look like an orphan to the
     * reaper), then stops it. Idempotent: a pod already renamed or already stopped is fine. A pod that is gone is
     * reported, never an error: there is nothing left to keep.
     */
    async keepPod(input: KeepPodInput): Promise<KeepPodOutput> {
      const pod = await runpod.getPod(input.podId);
      if (!pod) return { kept: false, name: null, note: `pod ${input.podId} is gone; its results went with it` };
      const name = keptPodName(pod.name);
      if (pod.name !== name) await runpod.renamePod(input.podId, name);
      if (toPhase(pod.status) === 'running' || toPhase(pod.status) === 'starting') {
        try {
          await runpod.podAction(input.podId, 'stop');
        } catch (err) {
          // 409: not stoppable in its status now (it stopped on its own meanwhile): what we wanted.
          if (!(err instanceof RunPodApiError && err.status === 409)) throw err;
        }
      }
      log.warn('pod kept for its results', { podId: input.podId, name, reason: input.reason });
      return { kept: true, name, note: null };
    },

    /** Starts a kept pod again (it resumes on the same host, with its volume); a running one is left as it is. */
    async resumeKeptPod(input: ResumeKeptPodInput): Promise<ResumeKeptPodOutput> {
      const pod = await runpod.getPod(input.podId);
      if (!pod) return { found: false, status: null };
      const phase = toPhase(pod.status);
      if (phase === 'exited' || phase === 'failed') await runpod.podAction(input.podId, 'start');
      return { found: true, status: pod.status };
    },
  };
}
