/**
 * Inputs, outputs, messages and query shapes of the workflows: one object in, one object out. Pure types. Nothing
 * here may carry a secret: Temporal stores all of it in workflow history.
 */

import type { DecisionPacketSummary, GateRecord } from '../activities/analysis/index.js';
import type { PreflightPhaseOutput } from '../activities/plan/index.js';
import type { PodReplacement, RunMetricsSummary, SummarizePhaseOutput } from '../activities/results/index.js';
import type { GpuLockHolder } from '../activities/workspace/index.js';
import type { ModelSpec, Study } from '../study/schema.js';

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
  /** The pod was lost: terminating it and reserving another (`podReplacements` says which and why). */
  | 'replacing-pod'
  /** Results could not be brought home: the pod is stopped and kept for `npm run fetch-results`. */
  | 'keeping-pod'
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
  /** Pods lost and replaced so far in this session. */
  podReplacements?: PodReplacement[];
  /** The pod was stopped and kept (not terminated) because results on it could not be brought home. */
  podKept?: { name: string | null; at: string } | null;
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

/** The open or last gate, as the study workflow's `gateStatus` query returns it. */
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
