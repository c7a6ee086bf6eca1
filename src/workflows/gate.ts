// Pure helpers of the study's decision gate: validation of decisions and the next phase's plan. Deterministic and
// free of I/O, so the workflow and the tests share them.
import { z } from 'zod';
import type { GateDecision, NextPhasePlan } from '../activities/analysis/index.js';
import type { PriceGpuCandidatesOutput } from '../activities/runpod/index.js';
import type { PhaseWorkflowOutput } from './types.js';
import type { Study } from '../study/schema.js';

const GateDecisionSchema = z
  .object({
    gate: z.string().min(1).optional(),
    decision: z.enum(['approve', 'skip', 'stop'], { error: 'must be approve, skip or stop' }),
    by: z.string({ error: 'is required: who decides' }).trim().min(1, 'is required: who decides').max(200),
    reason: z.string().max(4_000).optional(),
    /** Accepted as another name for `reason` (older CLI, hand-written signals). */
    note: z.string().max(4_000).optional(),
    packetSha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/, 'must be the sha256 of the decision packet')
      .optional(),
  })
  .strict();

export interface OpenGate {
  nextPhase: string;
  packetSha256: string | null;
}

/**
 * Checks a decision against the gate that is open now. Returns the decision or a message for the person who sent it.
 * Nothing here ever defaults to approve: an empty or unknown payload is an error.
 */
export function validateGateDecision(
  payload: unknown,
  open: OpenGate | null,
  state: string,
): { ok: true; value: GateDecision } | { ok: false; error: string } {
  if (!open) return { ok: false, error: `no gate is open (the study is ${state})` };
  const parsed = GateDecisionSchema.safeParse(payload);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const field = i.path.join('.');
      if (i.code === 'unrecognized_keys') return `unknown field(s) ${i.keys.join(', ')}`;
      return field ? `${field} ${i.message}` : i.message;
    });
    return {
      ok: false,
      error: `invalid gate decision (${problems.join('; ')}); send {"decision":"approve|skip|stop","by":"<name>"}`,
    };
  }
  const d = parsed.data;
  if (d.gate !== undefined && d.gate !== open.nextPhase)
    return { ok: false, error: `the open gate is ${open.nextPhase}, not ${d.gate}` };
  if (d.packetSha256 !== undefined && open.packetSha256 !== null && d.packetSha256 !== open.packetSha256)
    return {
      ok: false,
      error: `the decision packet changed since it was read (yours ${d.packetSha256.slice(0, 12)}, current ${open.packetSha256.slice(0, 12)}); read it again: npm run gate -- status`,
    };
  const reason = d.reason ?? d.note;
  return {
    ok: true,
    value: {
      gate: open.nextPhase,
      decision: d.decision,
      by: d.by,
      ...(reason !== undefined ? { reason } : {}),
      ...(d.packetSha256 !== undefined ? { packetSha256: d.packetSha256 } : {}),
    },
  };
}

const round = (n: number) => Math.round(n * 10_000) / 10_000;

/**
 * What approving the next phase would run and roughly cost: catalog price per candidate x the finished phase's mean
 * billed pod hours per session x the next phase's sessions. A first estimate; larger models run longer.
 */
export function nextPhasePlan(
  study: Study,
  nextPhaseId: string,
  finished: PhaseWorkflowOutput,
  priced: PriceGpuCandidatesOutput | null,
): NextPhasePlan {
  const next = study.phases.find((p) => p.id === nextPhaseId);
  if (!next) throw new Error(`unknown phase ${nextPhaseId}`);
  const hours = finished.sessions.map((s) => s.podHours).filter((h): h is number => typeof h === 'number');
  const podHoursPerSession = hours.length ? hours.reduce((a, h) => a + h, 0) / hours.length : null;
  const sessions = next.models.length;
  const candidates =
    next.target.kind === 'runpod'
      ? (priced?.candidates ?? next.target.candidates.map((c) => ({ ...c, costPerHr: null })))
      : [];
  const costs = candidates
    .map((c) => c.costPerHr)
    .filter((c): c is number => c !== null)
    .map((perHr) => (podHoursPerSession === null ? null : perHr * podHoursPerSession * sessions))
    .filter((c): c is number => c !== null);
  const first = candidates[0]?.costPerHr ?? null;
  const basis =
    next.target.kind === 'ssh-host'
      ? `the team's own server (${next.target.host}): no pod cost`
      : [
          podHoursPerSession === null
            ? `no billed hours from ${finished.phaseId} to scale from`
            : `${sessions} session(s) x ${podHoursPerSession.toFixed(3)} billed pod hours each (the mean of ${finished.phaseId}'s sessions; larger models take longer, so this is a lower bound)`,
          priced ? `RunPod catalog prices at ${priced.pricedAt}` : 'catalog prices unavailable',
          next.budget ? `the study file's estimate is $${next.budget.sessionEstimateUsd} per session` : '',
        ]
          .filter(Boolean)
          .join('; ');
  return {
    id: next.id,
    description: next.description,
    models: next.models.map((m) => ({ repoId: m.repoId, thinking: m.thinking })),
    target: next.target.kind,
    candidates,
    estimate: {
      podHoursPerSession,
      sessions,
      costUsdFirstCandidate:
        next.target.kind === 'ssh-host'
          ? 0
          : first !== null && podHoursPerSession !== null
            ? round(first * podHoursPerSession * sessions)
            : null,
      costUsdLow: next.target.kind === 'ssh-host' ? 0 : costs.length ? round(Math.min(...costs)) : null,
      costUsdHigh: next.target.kind === 'ssh-host' ? 0 : costs.length ? round(Math.max(...costs)) : null,
      basis,
    },
    budget: next.budget
      ? { phaseUsd: next.budget.phaseUsd ?? null, sessionEstimateUsd: next.budget.sessionEstimateUsd }
      : null,
  };
}
