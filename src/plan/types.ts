// The preflight's data: the facts a plan is computed from (each with where it came from), and the plan itself.
// Pure types, shared by the plan's pure core (src/plan/*.ts), its sources (I/O) and the CLI.

/** Where a figure came from, so the plan can say it (live Hub, live catalog, the study's metadata file, ...). */
export interface FactSource {
  kind: 'hub' | 'catalog' | 'metadata-file' | 'study-file' | 'measured' | 'default';
  /** One line: the URL, file or rule it came from. */
  detail: string;
  /** When the figure was taken (ISO time); null when not known. */
  takenAt: string | null;
}

/** What the fit check needs from a model's `config.json`. */
export interface ModelArchitecture {
  layers: number;
  attentionHeads: number;
  kvHeads: number;
  headDim: number;
  /** The checkpoint's dtype (`torch_dtype`), e.g. bfloat16. */
  dtype: string;
  /** The model's own context limit; null when the config does not say. */
  maxPositionEmbeddings: number | null;
}

export interface ModelFacts {
  repoId: string;
  revision: string;
  /** The commit the revision resolved to (live Hub); null from the metadata file when it records none. */
  commitSha: string | null;
  /** Sum of the `*.safetensors` files: what every GPU set must hold (MoE experts all stay resident). */
  weightBytes: number;
  architecture: ModelArchitecture;
  /** Parameters used per token, in billions (MoE: the active ones); null: dense, taken from the weights. */
  activeParamsB: number | null;
  /** A local copy of the tokenizer (verified by sha256 where the source gives one); null when none is available. */
  tokenizer: { jsonPath: string; configPath: string | null; sha256: string } | null;
  source: {
    weights: FactSource;
    config: FactSource;
    tokenizer: FactSource | null;
    /** Where `activeParamsB` came from (the Hub does not give it); null/absent when it is null. */
    activeParams?: FactSource | null;
  };
}

export interface GpuFacts {
  gpuTypeId: string;
  /** Memory of ONE GPU in GiB (the catalog's `memory` figure read as GiB: real cards report about that). */
  memoryGib: number;
  /** HBM/GDDR bandwidth of one GPU, GB/s; the decode-rate default scales with it. Null when unknown. */
  memoryBandwidthGBps: number | null;
  /** USD per hour for ONE GPU; null where that cloud does not offer it or the price is unknown. */
  pricePerGpuHr: { secure: number | null; community: number | null };
  source: { memory: FactSource; price: FactSource | null; bandwidth: FactSource | null };
}

/** What `python -m harness.preflight` (pod/harness/preflight.py) reports: the harness's rules, real token counts. */
export interface PreflightReport {
  check: { problems: string[]; samples: number | null; duplicates: number | null };
  dataset: {
    sha256: string;
    rows: number;
    unique: number;
    duplicateIds: (string | number)[];
    labels: { vulnerable: number; benign: number };
    fields: Record<string, number>;
    requiredMissing: string[];
  } | null;
  tokens: {
    /** Tokenizer key: the model repo id it was counted for. */
    key: string;
    prompt: string;
    framing: 'chat-template' | 'chatml' | 'none';
    framingNote: string;
    maxTokens: number;
    maxId: string | number;
    totalTokens: number;
    counts: [string | number, number][];
  }[];
}

/** One finished run of an earlier phase, from its manifest and metrics (src/plan/history.ts). */
export interface RunHistory {
  phase: string;
  runDir: string;
  repoId: string;
  thinking: boolean;
  prompt: string;
  gpuTypeId: string | null;
  gpuCount: number;
  samples: number | null;
  completionTokens: number | null;
  promptTokens: number | null;
  inferenceMs: number | null;
  vllmLoadMs: number | null;
  downloadMs: number | null;
  downloadBytes: number | null;
  /** The settings the cross-phase check compares (null where the manifest does not say). */
  settings: Record<ConsistencyVariable, unknown>;
}

/** Settings meant to stay equal across a study's phases; a phase declares any it changes on purpose. */
export const CONSISTENCY_VARIABLES = [
  'vllmVersion',
  'codecarbonVersion',
  'dtype',
  'sampling',
  'concurrency',
  'dataset',
  'templates',
  'prefixCaching',
  'maxModelLen',
  'maxNumSeqs',
  'maxNumBatchedTokens',
] as const;
export type ConsistencyVariable = (typeof CONSISTENCY_VARIABLES)[number];

export type Verdict = 'pass' | 'warn' | 'fail';

export interface PlanCheck {
  id: 'fit' | 'context' | 'dataset' | 'consistency' | 'budget' | 'inputs';
  title: string;
  verdict: Verdict;
  /** One line. */
  summary: string;
  /** Lines with the numbers behind the verdict. */
  details: string[];
}

/** Memory of one model on one GPU set, per GPU (tensor parallelism splits weights and KV heads). */
export interface FitResult {
  fits: boolean;
  /** One line naming the numbers, e.g. "57.0 GiB weights + 4.0 GiB runtime + 6.0 GiB KV (65,536 tokens) > 72.0 GiB". */
  reason: string;
  tensorParallelSize: number;
  budgetGibPerGpu: number;
  weightsGibPerGpu: number;
  overheadGibPerGpu: number;
  kvBytesPerTokenPerGpu: number;
  /** KV needed for one sequence of `maxModelLen` tokens, per GPU. */
  kvGibNeededPerGpu: number;
  /** Tokens of KV cache the left-over memory holds (over the whole GPU set); 0 when the weights do not fit. */
  kvTokenCapacity: number;
  /** The largest maxModelLen this GPU set could serve (capped by the model's own limit); 0 when nothing fits. */
  maxModelLenCapacity: number;
}

export interface SessionEstimate {
  imagePullMs: number;
  downloadMs: number;
  loadMs: number;
  /** Per prompt strategy: baseline + inference. */
  perPrompt: { prompt: string; baselineMs: number; inferenceMs: number; outputTokensPerSample: number }[];
  totalMs: number;
  outputTokensPerSecond: number;
  /** False when a figure was missing (no decode rate): the time and cost leave the inference out. */
  complete: boolean;
  /** How each figure was obtained ("measured in phase1 on NVIDIA RTX A5000", "default: ...") */
  basis: string[];
  podHours: number;
  /** Null when there is no price (ssh-host costs 0). */
  costUsd: number | null;
}

export interface PlanCandidate {
  index: number;
  gpuTypeId: string;
  gpuCount: number;
  cloud: 'SECURE' | 'COMMUNITY' | null;
  dataCenterIds: string[];
  costPerHr: number | null;
  /** Per model. */
  fit: { repoId: string; result: FitResult | null; why: string | null }[];
  /** Set when the candidate is dropped (a model does not fit, or its GPU is unknown). */
  dropped: string | null;
  /** Per model, on this candidate; empty when dropped. */
  estimates: { repoId: string; estimate: SessionEstimate }[];
  phaseCostUsd: number | null;
  phaseHours: number;
}

export interface Plan {
  schemaVersion: 1;
  study: string;
  phase: string;
  description: string;
  generatedAt: string;
  simulated: boolean;
  target: { kind: 'runpod' | 'ssh-host'; where: string };
  models: { repoId: string; thinking: boolean; maxTokens: number }[];
  prompts: string[];
  /** models x prompts. */
  runs: number;
  samples: number | null;
  candidates: PlanCandidate[];
  budget: {
    studyUsd: number | null;
    studySpentUsd: number;
    studyLeftUsd: number | null;
    phaseUsd: number | null;
    sessionEstimateUsd: number | null;
  };
  checks: PlanCheck[];
  /** Every source the plan used, one line each ("Qwen/Qwen3-30B-A3B-Instruct-2507 weights: hub (...)"). */
  sources: string[];
  /** The `[n]` references of `sources`: where each figure came from, in full. */
  sourceDetails: string[];
  /** True when no check failed: the phase may start. */
  ok: boolean;
}
