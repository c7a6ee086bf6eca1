/**
 * Input and output of preflightPhase. Pure types, safe for workflow code (which imports them with `import type`).
 * Nothing here may carry a secret: Temporal stores all of it in workflow history.
 */

import type { Study } from '../../study/schema.js';

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
