import { planPhase, type PlanPhaseDeps } from '../../plan/plan-phase.js';
import type { Plan } from '../../plan/types.js';
import type { PreflightPhaseInput, PreflightPhaseOutput, SessionTimeEstimate } from './types.js';
import { PreflightFailedError } from './errors.js';

export interface PlanActivityDeps {
  /** The plan's read-only sources on the worker: Hub, catalog (with a key), harness preflight, results folder. */
  planning: PlanPhaseDeps;
}

/** The first fitting candidate's time estimate per model: what the phase will most likely run on. */
export function sessionTimeEstimates(plan: Plan): SessionTimeEstimate[] {
  const first = plan.candidates.find((c) => !c.dropped);
  if (!first) return [];
  const gpu = `${first.gpuCount}x ${first.gpuTypeId}`;
  return first.estimates.map(({ repoId, estimate: e }) => ({
    repoId,
    gpu,
    imagePullMs: e.imagePullMs,
    downloadMs: e.downloadMs,
    loadMs: e.loadMs,
    perPromptMs: e.perPrompt.map((p) => ({ prompt: p.prompt, ms: p.baselineMs + p.inferenceMs })),
    totalMs: e.totalMs,
    complete: e.complete,
  }));
}

export function createPlanActivities(deps: PlanActivityDeps) {
  return {
    /**
     * The phase's first activity: the same plan `npm run plan` prints, made again on the worker, so a phase started
     * any other way (a script, the Web UI, a study file changed after its plan) still never reserves a pod for a
     * model that does not fit, prompts that overflow the context, an undeclared change of settings or a phase over
     * budget. A failed check is final; the harness's preflight crashing is not (it is retried).
     */
    async preflightPhase(input: PreflightPhaseInput): Promise<PreflightPhaseOutput> {
      const crashed: { error?: Error } = {};
      const plan = await planPhase(
        {
          ...deps.planning,
          preflight: (i) =>
            deps.planning.preflight(i).catch((err: unknown) => {
              crashed.error = err instanceof Error ? err : new Error(String(err));
              throw crashed.error;
            }),
        },
        { study: input.study, phaseId: input.phaseId, studySpentUsd: input.studySpentUsd },
      );
      if (crashed.error) throw crashed.error; // a worker problem (HarnessCheckFailedError), not a verdict on the study
      const failed = plan.checks.filter((c) => c.verdict === 'fail');
      if (failed.length) throw new PreflightFailedError(input.phaseId, failed);
      const first = plan.candidates.find((c) => !c.dropped);
      return {
        checks: plan.checks.map((c) => ({ id: c.id, verdict: c.verdict, summary: c.summary })),
        estimates: sessionTimeEstimates(plan),
        phaseCostUsd: first?.phaseCostUsd ?? null,
        simulated: plan.simulated,
      };
    },
  };
}
