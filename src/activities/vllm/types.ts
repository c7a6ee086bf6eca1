/**
 * Input and output of startVllm: one object in, one object out. Pure types, safe for workflow code (which imports
 * them with `import type`). Nothing here may carry a secret: Temporal stores all of it in workflow history.
 */

import type { VllmSettings } from '../../study/schema.js';
import type { PodEndpoint } from '../ssh/index.js';

export interface StartVllmInput {
  endpoint: PodEndpoint;
  modelDir: string;
  servedModelName: string;
  vllm: VllmSettings;
  tensorParallelSize: number;
  reasoningParser?: string;
  /** Size of the downloaded weights, for the numbers in a does-not-fit failure. */
  weightBytes?: number;
  /** The GPUs vLLM may use (NVML / nvidia-smi numbering), on a shared server; absent: every GPU of the pod. */
  gpuIndices?: number[];
  /** Simulated studies only: the simulated vLLM's answer profiles for this model (paths on the pod). */
  simulatedAnswers?: SimulatedAnswers;
}

/** What the sandbox's simulated vLLM reads from VLLM_SIM_ANSWERS (sandbox/vllm-sim/vllm_sim.py). */
export interface SimulatedAnswers {
  datasetPath: string;
  profiles: { templatePath: string; accuracy: number; yesBias: number; unparseable: number }[];
  sharedLatent: number;
}
export interface StartVllmOutput {
  baseUrl: string;
  version: string;
  commandLine: string;
  loadTimeMs: number;
  reused: boolean;
  /** Stale vLLM processes of this workspace killed because they held the GPU's memory. */
  cleanedUpPids: number[];
}
