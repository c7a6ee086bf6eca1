import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type {
  BudgetRaise,
  GateDecision,
  GateRecord,
  GateStatus,
  PhaseProgress,
  PodReserved,
  PodSessionProgress,
  StudyProgress,
} from '../shared/types.js';

/**
 * A person's decision at a gate: approve runs the next phase, skip passes over it, stop ends the study. Its validator
 * rejects, with a message to the caller, a decision when no gate is open, for another gate, with an unknown value,
 * without `by`, or for a packet that has changed since it was read.
 */
export const decideGateUpdate = defineUpdate<GateRecord, [GateDecision]>('decideGate');

/**
 * The same decision as a signal (Web UI, `temporal workflow signal`). A payload that fails the Update's validation is
 * ignored and said so (worker log, the workflow's current details, `gateStatus().ignored`); it never approves.
 */
export const gateDecisionSignal = defineSignal<[unknown]>('gateDecision');

/** The open gate (if any), its decision packet and every decision taken so far. */
export const gateStatusQuery = defineQuery<GateStatus>('gateStatus');

/** Where the study is: current phase, gate state, the pod session workflows to follow. */
export const studyProgressQuery = defineQuery<StudyProgress>('studyProgress');

/** Stage, pod, cost basis and runs of one model's pod session. */
export const sessionProgressQuery = defineQuery<PodSessionProgress>('sessionProgress');

/** The phase's sessions, spend, budget and same-GPU lock. */
export const phaseProgressQuery = defineQuery<PhaseProgress>('phaseProgress');

/** Raises the phase's or the study's budget while the phase waits for it (send to the phase workflow). */
export const raiseBudgetSignal = defineSignal<[BudgetRaise]>('raiseBudget');

/** A session reports its reservation to its phase. */
export const podReservedSignal = defineSignal<[PodReserved]>('podReserved');
