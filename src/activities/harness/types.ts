/**
 * The run spec the pod's harness reads, and runInference's input, output and heartbeat. Pure types, safe for
 * workflow code (which imports them with `import type`). Nothing here may carry a secret: Temporal stores all of it
 * in workflow history.
 */

import type { CodeCarbonSettings } from '../../study/schema.js';
import type { PodEndpoint } from '../ssh/index.js';

export interface RunSpec {
  schemaVersion: 1;
  runId: string;
  baseUrl: string;
  servedModelName: string;
  datasetPath: string;
  promptTemplatePath: string;
  fewShotPath: string | null;
  outputDir: string;
  sampling: { temperature: number; topP: number; topK: number; minP: number; maxTokens: number; seed: number };
  concurrency: number;
  thinking: boolean;
  codecarbon: CodeCarbonSettings;
  baselineSeconds: number;
  requestTimeoutS: number;
  limit: number | null;
  /** NVML indices of the GPUs the run owns and meters (the team's shared server); null: every GPU of the pod. */
  gpuIndices: number[] | null;
}

export interface RunInferenceInput {
  endpoint: PodEndpoint;
  spec: Omit<RunSpec, 'outputDir'>;
  /**
   * The workflow chose to resume this run after an interruption (interruptionPolicy `resume`). Without it, a run
   * found ended unfinished is reported (RunInterruptedError), never continued in place.
   */
  resume?: boolean;
}
export interface RunInferenceOutput {
  /** The harness was already running when this attempt began (a worker restart or SSH drop re-attached). */
  reattached: boolean;
  sshReconnects: number;
  remoteDir: string;
  done: number;
  total: number;
  durationMs: number;
}

/** What the CLI reads from the inference activity's heartbeats. */
export interface InferenceHeartbeat {
  stage: 'starting' | 'baseline' | 'inference' | 'finishing';
  done: number;
  total: number;
  tokensPerS: number | null;
}
