/**
 * Inputs and outputs of the results activities (transfers, logs, the run manifest, per-phase summaries): one object
 * in, one object out. Pure types, safe for workflow code (which imports them with `import type`). Nothing here may
 * carry a secret: Temporal stores all of it in workflow history.
 */

import type { CodeCarbonSettings, HarnessSettings, ModelSpec, VllmSettings } from '../../study/schema.js';
import type { DownloadModelOutput } from '../hub/index.js';
import type { CandidateAttempt } from '../runpod/index.js';
import type { PodEndpoint } from '../ssh/index.js';

export interface TransferResultsInput {
  endpoint: PodEndpoint;
  remoteDir: string;
  /** Relative to the worker's results root: `<study>/<phase>/<model>/<prompt>/<runId>`. */
  resultsSubdir: string;
  /** Bytes this session has already brought home (earlier runs' files), counted against TRANSFER_MAX_SESSION_BYTES. */
  sessionBytesSoFar?: number;
}
export interface TransferResultsOutput {
  files: { name: string; bytes: number; sha256: string }[];
  skipped: string[];
}

export interface CollectLogsInput {
  endpoint: PodEndpoint;
  /** Relative to the worker's results root. */
  resultsSubdir: string;
  /** Bytes this session has already brought home, counted against TRANSFER_MAX_SESSION_BYTES. */
  sessionBytesSoFar?: number;
}
export interface CollectLogsOutput {
  /** Local names of the logs brought home (`vllm__vllm.log`, `models__<model>.download.log`). */
  collected: string[];
  /** Logs skipped or cut to their last bytes, and why. */
  notes: string[];
}

export interface RunManifest {
  schemaVersion: 1;
  simulated: boolean;
  study: string;
  phase: string;
  model: { repoId: string; revision: string; commitSha: string; thinking: boolean; reasoningParser: string | null };
  prompt: { name: string; templateSha256: string; fewShotSha256: string | null };
  datasetSha256: string;
  runId: string;
  workflowId: string;
  pod: {
    provider: 'runpod' | 'ssh-host';
    podId: string | null;
    gpuTypeId: string | null;
    gpuCount: number;
    dataCenterId: string | null;
    cloud: string | null;
    image: string | null;
    costPerHr: number;
    /** The SSH host key every connection of the session was checked against (pinned at readiness, or configured). */
    hostKeySha256?: string | null;
    /** On the team's server: the GPUs the session locked and ran on (nvidia-smi numbering); null on a rented pod. */
    gpuIndices?: number[] | null;
  };
  candidatesTried: CandidateAttempt[];
  vllm: VllmSettings & { tensorParallelSize: number; reportedVersion: string; commandLine: string; loadTimeMs: number };
  sampling: ModelSpec['sampling'];
  harness: HarnessSettings;
  codecarbon: CodeCarbonSettings;
  environment: unknown;
  timings: Record<string, string | number | null>;
  cost: { podCostSoFarUsd: number; note: string };
  /** How the weights got onto the pod (Xet fallback, repaired files, whether sha256 was checked). */
  download: Pick<
    DownloadModelOutput,
    'totalBytes' | 'reused' | 'usedXetFallback' | 'xetFallback' | 'repaired' | 'sha256Verified'
  >;
  /** Model-server deaths under this prompt strategy and what was done about each (harness.interruptionPolicy). */
  interruptions: RunInterruption[];
  /** Pods of the session lost before this run finished and what replaced them (absent in older manifests). */
  podReplacements?: PodReplacement[];
  /** Versions and GPU from environment.json; filled in by writeRunManifest (null before). */
  hardware: ManifestHardware | null;
  /** Whether this run's energy can be compared with runs measured in one piece; filled in by writeRunManifest. */
  energy: { comparable: boolean; reasons: string[] } | null;
}

/** A pod the session lost (vanished, exited, unreachable), terminated and replaced with a new one. */
export interface PodReplacement {
  at: string;
  lostPodId: string;
  reason: string;
  /** The strategy that was running on it (its partial results went with the pod), or null between strategies. */
  interruptedPrompt: string | null;
  /** What the lost pod billed, from its create to its termination. */
  lostPodCostUsd: number;
  /** The pod that took over; null until it is reserved. */
  newPodId: string | null;
}

/** One run of a prompt strategy cut short: a dead model server, or a harness that ended unfinished. */
export interface RunInterruption {
  at: string;
  /** The run that was interrupted. */
  runId: string;
  /**
   * `server-gone` (vLLM died; restarted), the harness's own end (died, failed, energy record missing), or
   * `pod-lost`: the pod went away with the partial results, so the strategy ran again from scratch on its replacement.
   */
  cause: 'server-gone' | 'harness-died' | 'harness-failed' | 'measurement-invalid' | 'pod-lost';
  reason: string;
  /** `restart`: that run was abandoned and the strategy rerun under a new run id; `resume`: the same run went on. */
  policy: 'restart' | 'resume';
  samplesDone: number | null;
  samplesTotal: number | null;
}

/** What the manifest records about the software and hardware a run measured; nulls where there is no GPU. */
export interface ManifestHardware {
  versions: {
    vllm: string | null;
    vllmPackage: string | null;
    torch: string | null;
    cudaRuntime: string | null;
    cudaDriver: string | null;
    nvidiaDriver: string | null;
    codecarbon: string | null;
    huggingfaceHub: string | null;
    hfXet: string | null;
    python: string | null;
  };
  gpu: {
    present: boolean;
    count: number;
    name: string | null;
    memoryTotalMiB: number | null;
    powerLimitW: number | null;
  };
  /** Why GPU fields are null, when they are. */
  note: string | null;
}

export interface WriteRunManifestInput {
  resultsSubdir: string;
  manifest: RunManifest;
}
export interface WriteRunManifestOutput {
  checksumFile: string;
  metrics: RunMetricsSummary | null;
}

export interface RunMetricsSummary {
  n: number;
  accuracy: number | null;
  f1: number | null;
  unparseable: number;
  gpuEnergyKwh: number | null;
}

export interface SummarizePhaseInput {
  study: string;
  phase: string;
  runSubdirs: string[];
  /** Pod cost per session (a session's runs share its pod). */
  costs: { model: string; podCostUsd: number }[];
}
export interface SummarizePhaseOutput {
  summaryPath: string;
  runs: number;
  inconsistencies: string[];
}

/** Results a transfer gave up on, left on a kept (stopped) pod's volume until `npm run fetch-results`. */
export interface KeptResults {
  schemaVersion: 1;
  study: string;
  phaseId: string;
  model: string;
  podId: string;
  /** The pod's name once kept (`gpustudy-kept--...`); null if renaming it failed. */
  keptName: string | null;
  /** Why the transfer gave up (its last failure). */
  reason: string;
  keptAt: string;
  /** The pod's workspace (the volume) for the readiness check when it is started again. */
  workspaceDir: string;
  /** Each run not brought home: where it is on the pod, where it goes, and its manifest (written once it is home). */
  runs: { prompt: string; runId: string; remoteDir: string; resultsSubdir: string; manifest: RunManifest }[];
}
export interface RecordKeptResultsOutput {
  path: string;
}
export interface RemoveKeptResultsInput {
  study: string;
  podId: string;
}
