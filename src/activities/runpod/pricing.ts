// Catalog prices of the GPU candidates, for the next phase's plan. Read-only.
import { cancellationSignal } from '@temporalio/activity';
import type { RunPodApi } from './client.js';
import type { RunPodActivityDeps } from './deps.js';
import type { PriceGpuCandidatesInput, PriceGpuCandidatesOutput } from './types.js';

export function createPricingActivities(deps: Pick<RunPodActivityDeps, 'runpod'>) {
  const { runpod } = deps;
  return {
    /**
     * Catalog price per hour of each GPU candidate (price of one GPU in the candidate's cloud x its count), for the
     * next phase's plan. Read-only; a type RunPod does not list, or a price it does not give, is null.
     */
    async priceGpuCandidates(input: PriceGpuCandidatesInput): Promise<PriceGpuCandidatesOutput> {
      const prices = new Map<string, Awaited<ReturnType<RunPodApi['getGpuType']>>>();
      for (const id of new Set(input.candidates.map((c) => c.gpuTypeId))) {
        prices.set(id, await runpod.getGpuType(id, { signal: cancellationSignal() }));
      }
      return {
        candidates: input.candidates.map((c) => {
          const type = prices.get(c.gpuTypeId) ?? null;
          const perGpu = type ? (c.cloud === 'SECURE' ? type.price.secure : type.price.community) : null;
          return { ...c, costPerHr: perGpu ? Math.round(perGpu * c.gpuCount * 10_000) / 10_000 : null };
        }),
        pricedAt: new Date().toISOString(),
      };
    },
  };
}
