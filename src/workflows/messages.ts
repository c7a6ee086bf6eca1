import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { GateDecision, PodSessionProgress, StudyProgress } from '../shared/types.js';

/** A person's decision at a gate: approve runs the next phase, skip passes over it, stop ends the study. */
export const gateDecisionSignal = defineSignal<[GateDecision]>('gateDecision');

/** Where the study is: current phase, gate state, the pod session workflows to follow. */
export const studyProgressQuery = defineQuery<StudyProgress>('studyProgress');

/** Stage, pod, cost basis and runs of one model's pod session. */
export const sessionProgressQuery = defineQuery<PodSessionProgress>('sessionProgress');

/** The phase workflow's children, so the CLI can follow them. */
export const phaseSessionsQuery = defineQuery<string[]>('phaseSessions');
