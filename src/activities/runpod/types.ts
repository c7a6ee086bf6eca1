/**
 * Inputs and outputs of the RunPod activities (reserve, readiness, terminate, catalog prices): one object in, one
 * object out. Pure types, safe for workflow code (which imports them with `import type`). Nothing here may carry a
 * secret: Temporal stores all of it in workflow history.
 */

import type { GpuCandidate, RunPodTarget } from '../../study/schema.js';
import type { PodEndpoint } from '../ssh/index.js';

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
  /** A 400 that is neither a capacity shortage nor a field error: the next candidate is tried. */
  | 'rejected'
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
  /** Pods never to terminate even under one of the names (one kept for its results). */
  exceptPodIds?: string[];
}
export interface TerminatePodsByNameOutput {
  terminated: { podId: string; name: string }[];
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

/** Watches one pod until it is lost; `pollIntervalMs` defaults to the worker's POD_POLL_INTERVAL_MS. */
export interface WatchPodInput {
  podId: string;
  pollIntervalMs?: number;
}
export interface CheckPodInput {
  podId: string;
  /** Where the session logs in (with the host key pinned at readiness). */
  endpoint: PodEndpoint;
}
/** Whether the pod can still do the session's work; `reason` says why not (vanished, EXITED, unreachable). */
export interface PodHealth {
  healthy: boolean;
  reason: string | null;
}

export interface KeepPodInput {
  podId: string;
  /** Why the pod is kept (what was not brought home); logged. */
  reason: string;
}
export interface KeepPodOutput {
  kept: boolean;
  /** The pod's kept name (`gpustudy-kept--...`); null when the pod was already gone. */
  name: string | null;
  note: string | null;
}
export interface ResumeKeptPodInput {
  podId: string;
}
export interface ResumeKeptPodOutput {
  /** False when RunPod no longer has the pod (a stopped pod can disappear after about a day). */
  found: boolean;
  status: string | null;
}
