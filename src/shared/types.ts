/**
 * Inputs and outputs of workflows and activities: one object in, one object out. Pure types, safe for
 * workflow code. Nothing here may carry a secret: Temporal stores all of it in workflow history.
 */
import type {
  CodeCarbonSettings,
  GpuCandidate,
  HarnessSettings,
  ModelSpec,
  PromptStrategy,
  RunPodTarget,
  Study,
  VllmSettings,
} from '../study/schema.js';

/** How to reach a pod over SSH; the private key stays in the worker. */
export interface SshTarget {
  host: string;
  port: number;
  username: string;
}

/** A reached pod: SSH target plus its volume directory. */
export interface PodEndpoint {
  ssh: SshTarget;
  workspaceDir: string;
}

export type CandidateOutcome =
  'created' | 'adopted' | 'no-capacity' | 'rate-limited' | 'server-error' | 'forbidden' | 'not-ready';

export interface CandidateAttempt {
  index: number;
  candidate: GpuCandidate;
  outcome: CandidateOutcome;
  detail: string;
}

export interface PodRef {
  podId: string;
  name: string;
  candidateIndex: number;
  candidate: GpuCandidate;
  dataCenterId: string | null;
  cloud: string;
  costPerHr: number;
  createdAt: string;
}

export interface ReservePodInput {
  podName: string;
  target: RunPodTarget;
}
export interface ReservePodOutput {
  pod: PodRef;
  attempts: CandidateAttempt[];
}

export interface WaitForPodReadyInput {
  podId: string;
  timeoutMs: number;
  /** Used when the pod's session does not say where its volume is. */
  defaultWorkspaceDir: string;
}

export interface TerminatePodInput {
  podId: string;
}
export interface TerminatePodOutput {
  alreadyGone: boolean;
  terminatedAt: string;
}

export interface PreparePodInput {
  endpoint: PodEndpoint;
  datasetPath: string;
  prompts: PromptStrategy[];
  /** The pinned vLLM version the pod must have (installed when missing or different). */
  vllmVersion: string;
}
export interface PreparePodOutput {
  datasetSha256: string;
  promptSha256: Record<string, string>;
  fewShotSha256: Record<string, string>;
  remote: { harnessDir: string; datasetPath: string; promptsDir: string };
  pythonVersion: string;
  vllmVersion: string;
}

export interface DownloadModelInput {
  endpoint: PodEndpoint;
  repoId: string;
  revision: string;
}
export interface DownloadModelOutput {
  modelDir: string;
  commitSha: string;
  files: { path: string; bytes: number }[];
  totalBytes: number;
  durationMs: number;
  reused: boolean;
  usedXetFallback: boolean;
}

export interface StartVllmInput {
  endpoint: PodEndpoint;
  modelDir: string;
  servedModelName: string;
  vllm: VllmSettings;
  tensorParallelSize: number;
  reasoningParser?: string;
}
export interface StartVllmOutput {
  baseUrl: string;
  version: string;
  commandLine: string;
  loadTimeMs: number;
  reused: boolean;
}

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
}

export interface RunInferenceInput {
  endpoint: PodEndpoint;
  spec: Omit<RunSpec, 'outputDir'>;
}
export interface RunInferenceOutput {
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

export interface TransferResultsInput {
  endpoint: PodEndpoint;
  remoteDir: string;
  /** Relative to the worker's results root: `<study>/<phase>/<model>/<prompt>/<runId>`. */
  resultsSubdir: string;
}
export interface TransferResultsOutput {
  files: { name: string; bytes: number; sha256: string }[];
  skipped: string[];
}

export interface CollectLogsInput {
  endpoint: PodEndpoint;
  /** Relative to the worker's results root. */
  resultsSubdir: string;
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
  };
  candidatesTried: CandidateAttempt[];
  vllm: VllmSettings & { tensorParallelSize: number; reportedVersion: string; commandLine: string; loadTimeMs: number };
  sampling: ModelSpec['sampling'];
  harness: HarnessSettings;
  codecarbon: CodeCarbonSettings;
  environment: unknown;
  timings: Record<string, string | number | null>;
  cost: { podCostSoFarUsd: number; note: string };
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
}
export interface SummarizePhaseOutput {
  summaryPath: string;
  runs: number;
  inconsistencies: string[];
}

// Workflows

export interface StudyWorkflowInput {
  study: Study;
  /** The first phase to run; earlier phases are assumed done. */
  startPhase: string;
}

export type GateDecision = { decision: 'approve' | 'skip' | 'stop'; by: string; note?: string };

export interface PhaseWorkflowInput {
  study: Study;
  phaseId: string;
}
export interface PhaseWorkflowOutput {
  phaseId: string;
  sessions: PodSessionOutput[];
  summary: SummarizePhaseOutput | null;
  failures: { model: string; error: string }[];
}

export interface PodSessionInput {
  study: Study;
  phaseId: string;
  model: ModelSpec;
}
export interface PodSessionRun {
  prompt: string;
  runId: string;
  resultsSubdir: string;
  metrics: RunMetricsSummary | null;
}
export interface PodSessionOutput {
  model: string;
  runs: PodSessionRun[];
  podCostUsd: number;
}

export type SessionStage =
  | 'queued'
  | 'reserving'
  | 'waiting-for-pod'
  | 'preparing'
  | 'downloading'
  | 'starting-vllm'
  | 'inference'
  | 'transferring'
  | 'terminating'
  | 'done'
  | 'failed';

export interface PodSessionProgress {
  model: string;
  stage: SessionStage;
  prompt: string | null;
  podId: string | null;
  gpu: string | null;
  costPerHr: number;
  podCreatedAt: string | null;
  podTerminatedAt: string | null;
  runsDone: number;
  runsTotal: number;
  error: string | null;
}

export interface StudyProgress {
  study: string;
  phase: string | null;
  phaseState: 'running' | 'waiting-at-gate' | 'done' | 'stopped' | 'failed';
  gate: { nextPhase: string; since: string } | null;
  completedPhases: string[];
  sessionWorkflowIds: string[];
}

// Reaper

export interface ReapOrphanPodsInput {
  /** Pods younger than this are kept even without a running owner (their workflow may be starting). */
  graceMs: number;
  dryRun: boolean;
}
export interface ReapDecision {
  podId: string;
  name: string;
  ownerWorkflowId: string | null;
  ageMs: number | null;
  costPerHr: number;
  action: 'kept' | 'terminated' | 'would-terminate';
  reason: string;
}
export interface ReapOrphanPodsOutput {
  checkedAt: string;
  dryRun: boolean;
  decisions: ReapDecision[];
}
