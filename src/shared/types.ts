/**
 * Inputs and outputs of workflows and activities: one object in, one object out. Pure types, safe for
 * workflow code. Nothing here may carry a secret: Temporal stores all of it in workflow history.
 */
import type {
  AnalysisSettings,
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
  /**
   * The host key the server must present, OpenSSH style (`SHA256:` + base64 without padding, what `ssh-keygen -lf`
   * prints). A rented pod's is pinned by waitForPodReady; the team's server's comes from the study file. Not secret.
   */
  hostKeySha256?: string;
}

/** A reached pod: SSH target plus its volume directory. */
export interface PodEndpoint {
  ssh: SshTarget;
  workspaceDir: string;
}

export type CandidateOutcome =
  | 'created'
  | 'adopted'
  | 'no-capacity'
  | 'rate-limited'
  | 'server-error'
  | 'forbidden'
  | 'unauthorized'
  | 'insufficient-balance'
  | 'invalid-request'
  | 'not-ready';

/** One try of one GPU candidate, as the Web UI (heartbeats, failure details) and the manifest show it. */
export interface CandidateAttempt {
  index: number;
  candidate: GpuCandidate;
  outcome: CandidateOutcome;
  detail: string;
  /** Reserve round of the session (a new round after a pod failed readiness). */
  round?: number;
  podId?: string;
  at?: string;
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
  /** Unique per session and reserve round: a retry within the round adopts the pod this name already has. */
  podName: string;
  target: RunPodTarget;
  /** Candidate indexes not to try in this round (their pod failed readiness, or another rule rules them out). */
  excludeCandidates?: number[];
  /** Recorded in the attempts. */
  round?: number;
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

/** Every live pod carrying one of these names is terminated (lost creates, duplicates). */
export interface TerminatePodsByNameInput {
  podNames: string[];
}
export interface TerminatePodsByNameOutput {
  terminated: { podId: string; name: string }[];
}

/** What the pod's dead-man's switch does; secrets never appear here (the key is read by the activity). */
export interface PodWatchdogInput {
  /** The pod's id (RUNPOD_POD_ID on the pod is the fallback). */
  podId: string | null;
  staleAfterMs: number;
  checkIntervalMs: number;
  selfStop: 'pod-key' | 'account-key-opt-in' | 'none';
}
export interface PodWatchdogStatus {
  state: 'started' | 'running';
  /** The credential the watchdog will stop the pod with; 'none' means it can only end the work. */
  stopWith: 'pod-key' | 'account-key' | 'none';
  note: string;
}

export interface PreparePodInput {
  endpoint: PodEndpoint;
  datasetPath: string;
  prompts: PromptStrategy[];
  /** The pinned vLLM version the pod must have (installed when missing or different). */
  vllmVersion: string;
  /** Install and start the dead-man's switch (rented pods only). */
  watchdog?: PodWatchdogInput;
}
export interface PreparePodOutput {
  datasetSha256: string;
  promptSha256: Record<string, string>;
  fewShotSha256: Record<string, string>;
  remote: { harnessDir: string; datasetPath: string; promptsDir: string };
  pythonVersion: string;
  vllmVersion: string;
  watchdog?: PodWatchdogStatus;
}

export interface FetchModelMetadataInput {
  repoId: string;
  /** Branch, tag or commit sha; resolved to a commit. */
  revision: string;
}
/** The Hub's file list for one commit: what the download must produce (sizes in bytes; sha256 for LFS files). */
export interface ModelMetadata {
  repoId: string;
  revision: string;
  commitSha: string;
  files: { path: string; bytes: number; sha256: string | null }[];
  totalBytes: number;
}

export interface DownloadModelInput {
  endpoint: PodEndpoint;
  repoId: string;
  revision: string;
  /** From fetchModelMetadata: the download is pinned to `expected.commitSha` and verified against its files. */
  expected: ModelMetadata;
  /** No byte on disk for this long: kill and resume with Xet off. Default: the worker's DOWNLOAD_STALL_TIMEOUT_MS. */
  stallTimeoutMs?: number;
  /** Also hash every LFS file against the Hub's sha256 before `.complete` (minutes for tens of GB). */
  verifySha256?: boolean;
}
export interface DownloadModelOutput {
  modelDir: string;
  commitSha: string;
  files: { path: string; bytes: number }[];
  totalBytes: number;
  durationMs: number;
  reused: boolean;
  usedXetFallback: boolean;
  /** Why the download switched to HF_HUB_DISABLE_XET=1, if it did. */
  xetFallback: { reason: 'stall' | 'xet-error'; atBytes: number; detail: string } | null;
  /** Problems verification found (and deleted files for) before a later pass fetched them again. */
  repaired: string[];
  sha256Verified: boolean;
  sshReconnects: number;
}

/** What the download activity heartbeats (the CLI and Web UI show it). */
export interface DownloadHeartbeat {
  stage: 'downloading' | 'verifying';
  bytesDone: number;
  totalBytes: number;
  disableXet: boolean;
}

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

export interface StopPodWorkInput {
  endpoint: PodEndpoint;
}
export interface StopPodWorkOutput {
  /** The pid files whose processes were ended (vLLM, harness runs, downloads). */
  stopped: string[];
}

/** Who asks for a GPU of the team's server: the session, as the workflow knows it. */
export interface GpuLockOwner {
  study: string;
  phase: string;
  model: string;
  workflowId: string;
  runId: string;
}

/** The owner record in a GPU's lock folder on the host (`owner.json`); read back untrusted (other users write it too). */
export interface GpuLockRecord extends GpuLockOwner {
  schemaVersion: 1;
  gpuIndex: number;
  /** `user@host` of the worker that took the lock (a study file names no person). */
  startedBy: string;
  acquiredAt: string;
  /** The session's `<ws>/heartbeat`, which every pod activity touches on each poll: the holder's liveness. */
  heartbeatPath: string;
}

/** Temporal's view of a lock holder's run; 'unknown' when the run is not on this server (another team member's). */
export type WorkflowRunState = 'running' | 'closed' | 'unknown';

/** The current holder of a GPU lock, as a waiting session reports it. */
export interface GpuLockHolder {
  /** Null when the owner record could not be read; `problem` says why. */
  record: GpuLockRecord | null;
  problem: string | null;
  /** Since the holder's heartbeat (else the lock folder) was last touched, by the host's clock. */
  heartbeatAgeMs: number | null;
  runState: WorkflowRunState;
}

/** One GPU of the host, as its `nvidia-smi` (or the sandbox's simulated list) names it. */
export interface HostGpu {
  index: number;
  name: string;
  memoryMiB: number | null;
}

export interface AcquireGpuLockInput {
  endpoint: PodEndpoint;
  gpuIndex: number;
  /** The lock root on the host and when a holder counts as gone (the target's `gpuLock`). */
  lock: { dir: string; staleAfterMs: number };
  owner: GpuLockOwner;
}
export type AcquireGpuLockOutput =
  | {
      acquired: true;
      lockPath: string;
      gpu: HostGpu;
      /** `already-held`: this run held it already (a retried or repeated acquire). */
      how: 'created' | 'already-held' | 'taken-over';
      /** The holder whose lock was taken over, and why (its run closed, its heartbeat stale). */
      takenOver: { holder: GpuLockHolder; reason: string } | null;
    }
  | { acquired: false; lockPath: string; gpu: HostGpu; holder: GpuLockHolder };

export interface ReleaseGpuLockInput {
  endpoint: PodEndpoint;
  gpuIndex: number;
  lock: { dir: string };
  owner: Pick<GpuLockOwner, 'workflowId' | 'runId'>;
}
export interface ReleaseGpuLockOutput {
  /** `held-by-other`: the lock is someone else's now (taken over while this session ran), and stays. */
  outcome: 'released' | 'not-held' | 'held-by-other';
  holder: GpuLockHolder | null;
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
  /** Versions and GPU from environment.json; filled in by writeRunManifest (null before). */
  hardware: ManifestHardware | null;
  /** Whether this run's energy can be compared with runs measured in one piece; filled in by writeRunManifest. */
  energy: { comparable: boolean; reasons: string[] } | null;
}

/** One run of a prompt strategy cut short: a dead model server, or a harness that ended unfinished. */
export interface RunInterruption {
  at: string;
  /** The run that was interrupted. */
  runId: string;
  /** `server-gone` (vLLM died; restarted), or the harness's own end: died, failed, energy record missing. */
  cause: 'server-gone' | 'harness-died' | 'harness-failed' | 'measurement-invalid';
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

// RunPod catalog (the next phase's plan)

export interface PriceGpuCandidatesInput {
  candidates: GpuCandidate[];
}
export interface PriceGpuCandidatesOutput {
  /** Each candidate with its catalog price per hour (one GPU's price x count); null where RunPod gives none. */
  candidates: (GpuCandidate & { costPerHr: number | null })[];
  pricedAt: string;
}

// Analysis: decision packet, gate decisions, report (the Python package `analysis/`, docs/analysis.md)

/** The next phase as the packet shows it: what approving would run and what it would cost. */
export interface NextPhasePlan {
  id: string;
  description: string;
  models: { repoId: string; thinking: boolean }[];
  target: 'runpod' | 'ssh-host';
  candidates: (GpuCandidate & { costPerHr: number | null })[];
  estimate: {
    podHoursPerSession: number | null;
    sessions: number;
    costUsdFirstCandidate: number | null;
    costUsdLow: number | null;
    costUsdHigh: number | null;
    basis: string;
  };
  budget: { phaseUsd: number | null; sessionEstimateUsd: number } | null;
}

export interface AnalyzePhaseInput {
  study: string;
  phase: string;
  phaseOrder: string[];
  /** The study's dataset (relative to the project root): sample ids, labels and commits for pairs and clusters. */
  datasetPath: string;
  /** The phase's runs, relative to the results root; runs found on disk for earlier phases are analysed too. */
  runSubdirs: string[];
  settings: AnalysisSettings;
  nextPhase: NextPhasePlan | null;
  spend: { studyUsd: number; phaseUsd: number; sessions: { model: string; podCostUsd: number }[] };
  simulated: boolean;
}

export type Verdict = 'improves' | 'degrades' | 'inconclusive';

/** The part of the decision packet the workflow keeps (the whole packet is in decision-packet.json). */
export interface DecisionPacketSummary {
  study: string;
  phase: string;
  generatedAt: string;
  simulated: boolean;
  runs: {
    model: string;
    prompt: string;
    n: number;
    accuracy: number | null;
    f1: number | null;
    mcc: number | null;
    unparseable: number;
    truncated: number;
    requestErrors: number;
    gpuKwhPerSample: number | null;
    totalKwhPerSample: number | null;
    tokensPerS: number | null;
    imported: boolean;
    simulated: boolean;
  }[];
  comparisons: {
    id: string;
    kind: string;
    label: string;
    nCommon: number;
    leftOut: number;
    b: number;
    c: number;
    pValue: number;
    pAdjusted: number | null;
    f1Diff: number | null;
    f1Ci: [number, number] | null;
    accuracyDiff: number | null;
    verdict: Verdict | null;
  }[];
  confounds: string[];
  decision: {
    rule: string;
    definition: string;
    perModel: { model: string; verdict: Verdict | null; why: string }[];
    recommendation: { action: 'approve' | 'skip' | 'none'; basis: string; text: string };
  };
  warnings: string[];
}

export interface AnalyzePhaseOutput {
  packet: DecisionPacketSummary;
  packetSha256: string;
  /** Relative to the results root. */
  jsonPath: string;
  mdPath: string;
  reportPath: string;
}

export type GateDecisionValue = 'approve' | 'skip' | 'stop';

/** A decision as sent (Update `decideGate` or signal `gateDecision`); validated before it counts. */
export interface GateDecision {
  /** The gate (the phase it opens); defaults to the open one for the signal, required by the CLI. */
  gate?: string;
  decision: GateDecisionValue;
  by: string;
  reason?: string;
  /** The packet the person looked at; a stale one is refused by the Update. */
  packetSha256?: string;
}

/** A decision as recorded: in history, gate-decisions.json and the report. */
export interface GateRecord {
  gate: string;
  afterPhase: string;
  decision: GateDecisionValue;
  by: string;
  reason: string | null;
  at: string;
  packetSha256: string | null;
  via: 'update' | 'signal' | 'timeout';
}

export interface GateStatus {
  open: boolean;
  /** The phase the gate would start, and the phase whose results it shows. */
  nextPhase: string | null;
  afterPhase: string | null;
  since: string | null;
  /** When the gate closes by itself (analysis.gate.timeoutMs), or null to wait for ever. */
  timeoutAt: string | null;
  packet: DecisionPacketSummary | null;
  packetSha256: string | null;
  packetPaths: { json: string; md: string; report: string } | null;
  decisions: GateRecord[];
  /** Signals that failed validation and were ignored (never an approval). */
  ignored: { at: string; error: string }[];
}

export interface RecordGateDecisionInput {
  study: string;
  record: GateRecord;
}
export interface RecordGateDecisionOutput {
  path: string;
  reportPath: string;
}

export interface WriteReportInput {
  study: string;
}
export interface WriteReportOutput {
  reportMd: string;
  reportHtml: string;
}

// Workflows

export interface StudyWorkflowInput {
  study: Study;
  /** The first phase to run; earlier phases are assumed done. */
  startPhase: string;
}

export interface PhaseWorkflowInput {
  study: Study;
  phaseId: string;
  /** Pod cost of the study's earlier phases, for the study budget. */
  studySpentUsd: number;
}
export interface PhaseWorkflowOutput {
  phaseId: string;
  sessions: PodSessionOutput[];
  summary: SummarizePhaseOutput | null;
  failures: { model: string; error: string }[];
  /** Pod cost of every session of the phase, failed ones included. */
  costUsd: number;
}

/** Raise a phase's or the study's limit while a phase waits for budget. */
export interface BudgetRaise {
  phaseUsd?: number;
  studyUsd?: number;
  by: string;
}

/** Sent by a pod session to its phase once a pod is reserved (cost basis, GPU type for the same-GPU rule). */
export interface PodReserved {
  model: string;
  gpuTypeId: string;
  costPerHr: number;
}

export interface PhaseProgress {
  phaseId: string;
  sessions: string[];
  /** Pod cost of finished sessions. */
  spentUsd: number;
  /** Estimates of sessions that are running, replaced by their real cost when they end. */
  committedUsd: number;
  studySpentUsd: number;
  budget: { phaseUsd: number | null; studyUsd: number | null; sessionEstimateUsd: number };
  waitingForBudget: { model: string; needUsd: number; reason: string; since: string } | null;
  lockedGpuTypeId: string | null;
  /** Signals that failed validation and changed nothing (the latest few). */
  ignored: { at: string; signal: string; error: string }[];
  maxConcurrentSessions: number;
  /** The plan's checks and time estimates from the phase's start; null until then (or in a workflow older than it). */
  preflight: PreflightPhaseOutput | null;
}

export interface PodSessionInput {
  study: Study;
  phaseId: string;
  model: ModelSpec;
  /** Only candidates of this GPU type may be reserved (the phase's same-GPU rule). */
  requiredGpuTypeId?: string;
  /** The phase workflow to tell about the reservation. */
  phaseWorkflowId?: string;
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
  /** Billed pod time of the session (every pod it had), for the next phase's estimate. */
  podHours?: number;
}

export type SessionStage =
  | 'queued'
  | 'reserving'
  | 'waiting-for-pod'
  /** The team's server: another session holds the GPU's lock (`gpuHolder` says who). */
  | 'waiting-for-gpu'
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
  /** The pod's pinned SSH host key (`SHA256:...`), once it is known. */
  hostKeySha256?: string | null;
  /** While the stage is waiting-for-gpu: who holds the GPU. */
  gpuHolder?: GpuLockHolder | null;
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
  /** The running phase's workflow id (its phaseProgress query has spend and budget). */
  phaseWorkflowId: string | null;
  /** Pod cost of the completed phases. */
  spentUsd: number;
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

/** checkStudyInputs (src/activities/study): the study's local files, checked before anything is reserved. */
export interface CheckStudyInputsInput {
  study: Study;
}
export interface CheckStudyInputsOutput {
  /** The checked files, as the study names them. */
  files: string[];
  /** Unique samples in the dataset, and repeated rows (the first copy counts). */
  samples: number;
  duplicates: number;
}

/** preflightPhase (src/activities/plan): the phase's plan checked again on the worker before anything is reserved. */
export interface PreflightPhaseInput {
  study: Study;
  phaseId: string;
  /** Pod cost of the study's completed phases (the study workflow's count). */
  studySpentUsd: number;
}
/** The time one model's session should take, by part, from the plan's estimate model (src/plan/estimate.ts). */
export interface SessionTimeEstimate {
  repoId: string;
  /** The candidate the estimate is for: the first that fits (`2x NVIDIA H200`, or the team's GPU). */
  gpu: string;
  imagePullMs: number;
  downloadMs: number;
  loadMs: number;
  /** Per prompt strategy, in the session's order: baseline + inference. */
  perPromptMs: { prompt: string; ms: number }[];
  totalMs: number;
  /** False when a figure was missing (no decode rate): the inference is left out. */
  complete: boolean;
}
export interface PreflightPhaseOutput {
  /** Every check of the plan, one line each (the failed ones stopped the phase before this returned). */
  checks: { id: string; verdict: 'pass' | 'warn' | 'fail'; summary: string }[];
  estimates: SessionTimeEstimate[];
  /** The estimated cost of the phase on the first fitting candidate; null without a price (or on ssh-host). */
  phaseCostUsd: number | null;
  /** A sandbox study: the estimates are for the real models, far longer than the simulated run. */
  simulated: boolean;
}
