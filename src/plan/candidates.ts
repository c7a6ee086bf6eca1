// A phase's GPU candidates as the plan sees them: each one's price, every model's memory fit on it, and, for a
// candidate that fits, each model's session estimate. Pure.
import type { HarnessSettings, Phase, Study, VllmSettings } from '../study/schema.js';
import { estimateSession } from './estimate.js';
import { fitModel } from './fit.js';
import type { GpuFacts, ModelFacts, PlanCandidate, RunHistory } from './types.js';

export interface PlanCandidatesInput {
  study: Study;
  phase: Phase;
  vllm: VllmSettings;
  harness: HarnessSettings;
  facts: { models: ModelFacts[]; gpus: GpuFacts[] };
  /** The study's prompt strategy names. */
  prompts: string[];
  /** Unique samples the phase will evaluate; null when the preflight gave no dataset. */
  samples: number | null;
  /** Every run of the study found in the results folder (measured rates for the estimates). */
  history: RunHistory[];
}

export function planCandidates(input: PlanCandidatesInput): PlanCandidate[] {
  const { study, phase, vllm, harness, prompts, samples } = input;
  const target = phase.target;
  const facts = new Map(input.facts.models.map((m) => [m.repoId, m]));
  const gpus = new Map(input.facts.gpus.map((g) => [g.gpuTypeId, g]));

  // Candidates: RunPod's ordered list, or the one GPU of the team's server.
  const rawCandidates =
    target.kind === 'runpod'
      ? target.candidates.map((c, index) => ({ index, ...c, cloud: c.cloud }))
      : [{ index: 0, gpuTypeId: target.gpuTypeId ?? 'unknown', gpuCount: 1, cloud: null, dataCenterIds: [] }];

  return rawCandidates.map((c) => {
    const gpu = gpus.get(c.gpuTypeId) ?? null;
    const perGpu = gpu ? (c.cloud === 'COMMUNITY' ? gpu.pricePerGpuHr.community : gpu.pricePerGpuHr.secure) : null;
    const costPerHr = target.kind === 'ssh-host' ? 0 : perGpu !== null ? perGpu * c.gpuCount : null;
    const fit = phase.models.map((m) => {
      const f = facts.get(m.repoId);
      if (!f) return { repoId: m.repoId, result: null, why: 'no Hub or metadata-file facts for this model' };
      if (!gpu)
        return {
          repoId: m.repoId,
          result: null,
          why: `GPU type ${c.gpuTypeId} is not in the catalog or the metadata file`,
        };
      return {
        repoId: m.repoId,
        why: null,
        result: fitModel({
          weightBytes: f.weightBytes,
          architecture: f.architecture,
          dtype: vllm.dtype,
          gpuMemoryGib: gpu.memoryGib,
          gpuCount: c.gpuCount,
          gpuMemoryUtilization: vllm.gpuMemoryUtilization,
          runtimeOverheadGib: study.planning.runtimeOverheadGib,
          maxModelLen: vllm.maxModelLen,
          ...(vllm.tensorParallelSize ? { tensorParallelSize: vllm.tensorParallelSize } : {}),
        }),
      };
    });
    const misfit = fit.find((f) => f.result && !f.result.fits);
    const unknown = fit.find((f) => !f.result);
    // The team's server is given: an unknown GPU there is a warning, not a reason to drop it.
    const dropped = misfit
      ? `${misfit.repoId}: ${misfit.result?.reason ?? ''}`
      : unknown && target.kind === 'runpod'
        ? `${unknown.repoId}: ${unknown.why ?? ''}`
        : null;
    const estimates = dropped
      ? []
      : phase.models.flatMap((m) => {
          const f = facts.get(m.repoId);
          if (!f) return [];
          return [
            {
              repoId: m.repoId,
              estimate: estimateSession({
                model: f,
                thinking: m.thinking,
                maxTokens: m.sampling.maxTokens,
                gpu,
                gpuCount: c.gpuCount,
                costPerHr,
                rented: target.kind === 'runpod',
                prompts,
                samples: samples ?? 0,
                concurrency: harness.concurrency,
                baselineSeconds: harness.baselineSeconds,
                planning: study.planning,
                history: input.history,
                otherModels: input.facts.models,
                otherGpus: input.facts.gpus,
              }),
            },
          ];
        });
    const costs = estimates.map((e) => e.estimate.costUsd);
    return {
      index: c.index,
      gpuTypeId: c.gpuTypeId,
      gpuCount: c.gpuCount,
      cloud: c.cloud,
      dataCenterIds: c.dataCenterIds,
      costPerHr,
      fit,
      dropped,
      estimates,
      phaseCostUsd: dropped || costs.some((x) => x === null) ? null : costs.reduce<number>((a, x) => a + (x ?? 0), 0),
      phaseHours: estimates.reduce((a, e) => a + e.estimate.podHours, 0),
    };
  });
}
