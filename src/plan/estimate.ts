// How long one model's session takes on one GPU set, and what it costs: image pull, download, vLLM load, then per
// prompt strategy an idle baseline and the inference. Measured figures of earlier runs replace the defaults.
import type { PlanningSettings } from '../study/schema.js';
import { dtypeBytes } from './fit.js';
import type { GpuFacts, ModelFacts, RunHistory, SessionEstimate } from './types.js';

const median = (xs: number[]): number | null => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? null) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};

/** Bytes a decode step reads for the whole batch: the active weights (all of them for a dense model). */
function activeBytes(model: ModelFacts): number {
  const perParam = dtypeBytes(model.architecture.dtype) ?? 2;
  return model.activeParamsB !== null ? model.activeParamsB * 1e9 * perParam : model.weightBytes;
}

/** The memory-bound decode rate at full efficiency (tokens/s over the batch); null without a bandwidth. */
export function boundDecodeRate(input: {
  model: ModelFacts;
  gpu: GpuFacts;
  gpuCount: number;
  concurrency: number;
}): number | null {
  const bw = input.gpu.memoryBandwidthGBps;
  if (bw === null) return null;
  return (input.concurrency * bw * 1e9 * input.gpuCount) / activeBytes(input.model);
}

const measuredRate = (runs: RunHistory[]) => {
  const tokens = runs.reduce((a, r) => a + (r.completionTokens ?? 0), 0);
  const ms = runs.reduce((a, r) => a + (r.inferenceMs ?? 0), 0);
  return tokens > 0 && ms > 0 ? (tokens * 1000) / ms : null;
};
const withRate = (runs: RunHistory[]) =>
  runs.filter((r) => (r.completionTokens ?? 0) > 0 && (r.inferenceMs ?? 0) > 0 && r.gpuTypeId !== null);

export interface EstimateInput {
  model: ModelFacts;
  thinking: boolean;
  maxTokens: number;
  gpu: GpuFacts | null;
  gpuCount: number;
  /** USD per hour for the whole pod; null on the team's own server. */
  costPerHr: number | null;
  rented: boolean;
  prompts: string[];
  samples: number;
  concurrency: number;
  baselineSeconds: number;
  planning: PlanningSettings;
  history: RunHistory[];
  /** Facts of other models, to calibrate the decode efficiency from their measured runs. */
  otherModels: ModelFacts[];
  otherGpus: GpuFacts[];
}

export function estimateSession(input: EstimateInput): SessionEstimate {
  const { model, planning, history } = input;
  const basis: string[] = [];
  const gpuTypeId = input.gpu?.gpuTypeId ?? null;
  const sameSetup = (r: RunHistory) =>
    r.repoId === model.repoId && r.gpuTypeId === gpuTypeId && r.gpuCount === input.gpuCount;
  const where = (runs: RunHistory[]) => [...new Set(runs.map((r) => r.phase))].join(', ');

  const imagePullMs = input.rented ? planning.imagePullMs : 0;
  if (input.rented) basis.push(`image pull ${(imagePullMs / 60_000).toFixed(0)} min (planning.imagePullMs)`);

  const downloads = history.filter((r) => (r.downloadBytes ?? 0) >= 1e9 && (r.downloadMs ?? 0) > 0);
  const measuredBps = median(downloads.map((r) => ((r.downloadBytes ?? 0) * 1000) / (r.downloadMs ?? 1)));
  const bps = measuredBps ?? planning.downloadMBps * 1e6;
  const downloadMs = (model.weightBytes / bps) * 1000;
  basis.push(
    measuredBps !== null
      ? `download at ${(bps / 1e6).toFixed(0)} MB/s (measured: median of ${downloads.length} download(s) in ${where(downloads)})`
      : `download at ${planning.downloadMBps} MB/s (planning.downloadMBps)`,
  );

  const loads = history.filter((r) => sameSetup(r) && (r.vllmLoadMs ?? 0) > 0);
  const measuredLoad = median(loads.map((r) => r.vllmLoadMs ?? 0));
  const loadMs = measuredLoad ?? (model.weightBytes / (planning.loadMBps * 1e6)) * 1000 + planning.loadFixedMs;
  basis.push(
    measuredLoad !== null
      ? `vLLM load ${(loadMs / 60_000).toFixed(1)} min (measured in ${where(loads)})`
      : `vLLM load: weights at ${planning.loadMBps} MB/s + ${(planning.loadFixedMs / 60_000).toFixed(0)} min (planning.loadMBps, loadFixedMs)`,
  );

  // Decode rate: this model on this GPU set as measured; else the memory-bound rate at an efficiency calibrated on
  // the study's other measured runs; else at planning.decodeEfficiency.
  const same = withRate(history.filter(sameSetup));
  let rate = measuredRate(same);
  if (rate !== null) {
    basis.push(`${rate.toFixed(0)} output tokens/s (measured in ${where(same)} on this GPU set)`);
  } else {
    const efficiencies = withRate(history).flatMap((r) => {
      const m = [model, ...input.otherModels].find((x) => x.repoId === r.repoId);
      const g = [input.gpu, ...input.otherGpus].find((x) => x?.gpuTypeId === r.gpuTypeId);
      const bound =
        m && g ? boundDecodeRate({ model: m, gpu: g, gpuCount: r.gpuCount, concurrency: input.concurrency }) : null;
      const measured = measuredRate([r]);
      return bound && measured ? [measured / bound] : [];
    });
    const calibrated = median(efficiencies);
    const efficiency = calibrated ?? planning.decodeEfficiency;
    const bound = input.gpu
      ? boundDecodeRate({ model, gpu: input.gpu, gpuCount: input.gpuCount, concurrency: input.concurrency })
      : null;
    rate = bound !== null ? bound * efficiency : null;
    basis.push(
      rate === null
        ? 'no decode rate: the GPU memory bandwidth is unknown'
        : `${rate.toFixed(0)} output tokens/s = ${(efficiency * 100).toFixed(1)}% of the memory-bound rate ` +
            `(concurrency ${input.concurrency} x ${input.gpu?.memoryBandwidthGBps} GB/s x ${input.gpuCount} / active weights); ` +
            (calibrated !== null
              ? `efficiency measured on ${efficiencies.length} earlier run(s)`
              : 'efficiency from planning.decodeEfficiency'),
    );
  }

  const perPrompt = input.prompts.map((prompt) => {
    const mine = history.filter((r) => r.repoId === model.repoId && r.prompt === prompt && (r.samples ?? 0) > 0);
    const kind = history.filter((r) => r.thinking === input.thinking && r.prompt === prompt && (r.samples ?? 0) > 0);
    const mean = (runs: RunHistory[]) =>
      runs.reduce((a, r) => a + (r.completionTokens ?? 0), 0) / runs.reduce((a, r) => a + (r.samples ?? 0), 0);
    const source = mine.length ? mine : kind.length ? kind : null;
    const fallback = input.thinking ? planning.outputTokensPerSample.thinking : planning.outputTokensPerSample.instruct;
    const perSample = Math.min(input.maxTokens, source ? mean(source) : fallback);
    basis.push(
      `${prompt}: ${perSample.toFixed(0)} output tokens per sample (${
        source === mine && mine.length
          ? `measured for this model in ${where(mine)}`
          : source
            ? `measured for ${input.thinking ? 'thinking' : 'instruct'} models in ${where(kind)}`
            : `planning.outputTokensPerSample.${input.thinking ? 'thinking' : 'instruct'}`
      }; capped at maxTokens ${input.maxTokens})`,
    );
    const inferenceMs = rate ? ((input.samples * perSample) / rate) * 1000 : 0;
    return { prompt, baselineMs: input.baselineSeconds * 1000, inferenceMs, outputTokensPerSample: perSample };
  });
  basis.push('prompt prefill and transfers are not counted (small next to decode at these output lengths)');

  const totalMs = imagePullMs + downloadMs + loadMs + perPrompt.reduce((a, p) => a + p.baselineMs + p.inferenceMs, 0);
  const podHours = totalMs / 3_600_000;
  return {
    imagePullMs,
    downloadMs,
    loadMs,
    perPrompt,
    totalMs,
    outputTokensPerSecond: rate ?? 0,
    complete: rate !== null,
    basis,
    podHours,
    costUsd: input.costPerHr === null ? null : podHours * input.costPerHr,
  };
}
