import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { z } from 'zod';
import type { GateDecision, GateRecord } from '../activities/analysis/index.js';
import type {
  BudgetRaise,
  GateStatus,
  PhaseProgress,
  PodReserved,
  PodSessionProgress,
  StudyProgress,
} from './types.js';

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

/**
 * Raises the phase's or the study's budget while the phase waits for it (send to the phase workflow). Anyone with
 * access to the namespace can send it, so the handler parses it with BudgetRaiseSchema and ignores (and reports) a
 * payload that fails.
 */
export const raiseBudgetSignal = defineSignal<[BudgetRaise]>('raiseBudget');

/** A session reports its reservation to its phase (parsed with PodReservedSchema like any other payload). */
export const podReservedSignal = defineSignal<[PodReserved]>('podReserved');

// Schemas of the signal payloads: a signal is external input, whatever its declared type says.

/** A budget in USD: a number above zero. z.number() refuses Infinity and NaN (JSON turns both into null anyway). */
export const UsdAmountSchema = z.number({ error: 'must be a number of USD' }).positive('must be above zero');

export const BudgetRaiseSchema = z
  .object({
    phaseUsd: UsdAmountSchema.optional(),
    studyUsd: UsdAmountSchema.optional(),
    by: z.string({ error: 'is required: who raises it' }).trim().min(1, 'is required: who raises it').max(200),
  })
  .strict()
  .refine((r) => r.phaseUsd !== undefined || r.studyUsd !== undefined, {
    error: 'needs phaseUsd and/or studyUsd',
  }) satisfies z.ZodType<BudgetRaise>;

export const PodReservedSchema = z
  .object({
    model: z.string().min(1),
    gpuTypeId: z.string().min(1).max(200),
    costPerHr: z.number().nonnegative(),
  })
  .strict() satisfies z.ZodType<PodReserved>;

/**
 * Parses a signal payload. On failure, one line that names each bad field and the payload to send instead, for the
 * worker log and the workflow's progress query.
 */
export function parseSignal<T>(
  signal: string,
  schema: z.ZodType<T>,
  payload: unknown,
  expected: string,
): { ok: true; value: T } | { ok: false; error: string } {
  const parsed = schema.safeParse(payload);
  if (parsed.success) return { ok: true, value: parsed.data };
  const problems = parsed.error.issues.map((i) => {
    if (i.code === 'unrecognized_keys') return `unknown field(s) ${i.keys.join(', ')}`;
    const field = i.path.join('.');
    return field ? `${field} ${i.message}` : i.message;
  });
  return { ok: false, error: `invalid ${signal} (${problems.join('; ')}); send ${expected}` };
}
