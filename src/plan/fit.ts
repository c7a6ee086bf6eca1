// Does a model fit a GPU set at the study's context length? Pure arithmetic over the model's config and the GPU's
// memory, per GPU: tensor parallelism splits the weights and the KV heads (a KV head is replicated when there are
// more GPUs than KV heads). vLLM refuses to start when one sequence of max-model-len tokens does not fit its KV cache.
import type { FitResult, ModelArchitecture } from './types.js';

export const GIB = 2 ** 30;

/** Bytes per element of a dtype name as configs and vLLM spell it; null for one we do not know. */
export function dtypeBytes(dtype: string): number | null {
  const d = dtype.toLowerCase().replace(/^torch\./, '');
  if (['bfloat16', 'float16', 'half', 'bf16', 'fp16'].includes(d)) return 2;
  if (['float32', 'float', 'fp32'].includes(d)) return 4;
  if (['float8', 'fp8', 'float8_e4m3fn', 'int8'].includes(d)) return 1;
  return null;
}

export interface FitInput {
  weightBytes: number;
  architecture: ModelArchitecture;
  /** The study's `vllm.dtype`; `auto` follows the checkpoint. */
  dtype: string;
  gpuMemoryGib: number;
  gpuCount: number;
  gpuMemoryUtilization: number;
  runtimeOverheadGib: number;
  maxModelLen: number;
  /** The study's `vllm.tensorParallelSize`; default the GPU count (as the session starts vLLM). */
  tensorParallelSize?: number;
}

const gib = (n: number) => `${n.toFixed(1)} GiB`;
const int = (n: number) => Math.floor(n).toLocaleString('en-US');

/** KV cache bytes one token takes on one GPU of a tensor-parallel group of `tp`. */
export function kvBytesPerTokenPerGpu(architecture: ModelArchitecture, tp: number, elementBytes: number): number {
  const kvHeadsPerGpu = Math.max(1, architecture.kvHeads / tp);
  return 2 * architecture.layers * kvHeadsPerGpu * architecture.headDim * elementBytes;
}

export function fitModel(input: FitInput): FitResult {
  const { architecture: a } = input;
  const tp = input.tensorParallelSize ?? input.gpuCount;
  const elementBytes = dtypeBytes(input.dtype === 'auto' ? a.dtype : input.dtype) ?? dtypeBytes(a.dtype) ?? 2;
  const budget = input.gpuMemoryGib * input.gpuMemoryUtilization;
  const weights = input.weightBytes / tp / GIB;
  const overhead = input.runtimeOverheadGib;
  const kvPerToken = kvBytesPerTokenPerGpu(a, tp, elementBytes);
  const kvNeeded = (kvPerToken * input.maxModelLen) / GIB;
  const free = budget - weights - overhead;
  const kvTokenCapacity = free > 0 ? Math.floor((free * GIB) / kvPerToken) : 0;
  const maxModelLenCapacity = Math.min(kvTokenCapacity, a.maxPositionEmbeddings ?? Number.POSITIVE_INFINITY);
  const base = {
    tensorParallelSize: tp,
    budgetGibPerGpu: budget,
    weightsGibPerGpu: weights,
    overheadGibPerGpu: overhead,
    kvBytesPerTokenPerGpu: kvPerToken,
    kvGibNeededPerGpu: kvNeeded,
    kvTokenCapacity,
    maxModelLenCapacity,
  };
  const perGpu = tp > 1 ? ` per GPU (tensor parallel ${tp})` : '';
  const budgetText = `${gib(budget)} (${input.gpuMemoryGib} GiB x ${input.gpuMemoryUtilization} gpuMemoryUtilization)`;
  const refuse = (reason: string): FitResult => ({ ...base, fits: false, reason });

  if (tp > input.gpuCount) return refuse(`tensorParallelSize ${tp} is more than the ${input.gpuCount} GPU(s)`);
  if (a.attentionHeads % tp !== 0)
    return refuse(`vLLM needs the ${a.attentionHeads} attention heads divisible by tensor parallel size ${tp}`);
  if (tp > a.kvHeads ? tp % a.kvHeads !== 0 : a.kvHeads % tp !== 0)
    return refuse(`vLLM needs ${a.kvHeads} KV heads and tensor parallel size ${tp} to divide one another`);
  if (a.maxPositionEmbeddings !== null && input.maxModelLen > a.maxPositionEmbeddings)
    return refuse(`maxModelLen ${int(input.maxModelLen)} is beyond the model's ${int(a.maxPositionEmbeddings)}`);
  if (free <= 0)
    return refuse(`weights ${gib(weights)} + runtime ${gib(overhead)}${perGpu} exceed the ${budgetText} per GPU`);
  const sum = `weights ${gib(weights)} + runtime ${gib(overhead)} + KV ${gib(kvNeeded)} for ${int(input.maxModelLen)} tokens${perGpu}`;
  if (kvTokenCapacity < input.maxModelLen)
    return refuse(`${sum} exceed ${budgetText}: the KV cache holds ${int(kvTokenCapacity)} tokens`);
  return {
    ...base,
    fits: true,
    reason: `${sum} within ${budgetText}; KV cache for ${int(kvTokenCapacity)} tokens (${(kvTokenCapacity / input.maxModelLen).toFixed(1)} full-length sequences)`,
  };
}
