import { defineQuery, defineSignal } from '@temporalio/workflow';
import type {
  BudgetRaise,
  GateDecision,
  PhaseProgress,
  PodReserved,
  PodSessionProgress,
  StudyProgress,
} from '../shared/types.js';

/** A person's decision at a gate: approve runs the next phase, skip passes over it, stop ends the study. */
export const gateDecisionSignal = defineSignal<[GateDecision]>('gateDecision');

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
