// The plan of one phase: its models and runs, every GPU candidate with its fit, price and estimate, the budget, and
// every check with its verdict. Pure: the facts come in (src/plan/sources.ts, history.ts, the harness's preflight);
// candidates.ts sizes and prices the candidates, checks.ts gives the verdicts.
import { phaseSettings, type Study } from '../study/schema.js';
import { planCandidates } from './candidates.js';
import { planChecks } from './checks.js';
import type { PlannedSettings } from './consistency.js';
import type { FactSource, GpuFacts, ModelFacts, Plan, PlanCandidate, PreflightReport, RunHistory } from './types.js';

export interface PlanInput {
  study: Study;
  phaseId: string;
  facts: { models: ModelFacts[]; gpus: GpuFacts[]; notes: string[] };
  /** The harness's preflight (dataset facts, token counts); null with `preflightError` when it could not run. */
  preflight: PreflightReport | null;
  preflightError?: string;
  /** Every run of the study found in the results folder (the plan picks the earlier phases' ones). */
  history: RunHistory[];
  historyNotes?: string[];
  /** What this phase will run with beyond the study file: the pinned CodeCarbon and the templates' sha256s. */
  codecarbonVersion: string | null;
  templates: PlannedSettings['templates'];
  studySpentUsd: number;
  generatedAt: string;
}

export function buildPlan(input: PlanInput): Plan {
  const { study, phaseId } = input;
  const { phase, vllm, harness } = phaseSettings(study, phaseId);
  const target = phase.target;
  const prompts = study.prompts.map((p) => p.name);
  const samples = input.preflight?.dataset
    ? Math.min(input.preflight.dataset.unique, harness.limit ?? Number.POSITIVE_INFINITY)
    : null;
  const phaseIndex = study.phases.findIndex((p) => p.id === phaseId);
  const earlierPhases = new Set(study.phases.slice(0, phaseIndex).map((p) => p.id));
  const earlierRuns = input.history.filter((r) => earlierPhases.has(r.phase));

  const candidates = planCandidates({
    study,
    phase,
    vllm,
    harness,
    facts: input.facts,
    prompts,
    samples,
    history: input.history,
  });

  // Budget.
  const studyLeftUsd = study.budgetUsd !== undefined ? study.budgetUsd - input.studySpentUsd : null;
  const budget = {
    studyUsd: study.budgetUsd ?? null,
    studySpentUsd: input.studySpentUsd,
    studyLeftUsd,
    phaseUsd: phase.budget?.phaseUsd ?? null,
    sessionEstimateUsd: phase.budget?.sessionEstimateUsd ?? null,
  };
  const checks = planChecks({
    study,
    phaseId,
    phase,
    vllm,
    harness,
    facts: new Map(input.facts.models.map((m) => [m.repoId, m])),
    candidates,
    samples,
    preflight: input.preflight,
    preflightError: input.preflightError,
    earlierRuns,
    codecarbonVersion: input.codecarbonVersion,
    templates: input.templates,
    budget,
  });

  // One short line per model and GPU; each distinct detail (a URL, the metadata file's own note) once.
  const details: string[] = [];
  const from = (x: FactSource | null) => {
    if (!x) return 'none';
    const i = details.indexOf(x.detail);
    const n = i >= 0 ? i + 1 : details.push(x.detail);
    return `${x.kind}${x.takenAt ? ` ${x.takenAt.slice(0, 10)}` : ''} [${n}]`;
  };
  const sources: string[] = [];
  for (const m of input.facts.models)
    sources.push(
      `${m.repoId}: weights ${from(m.source.weights)}, config ${from(m.source.config)}, tokenizer ${from(m.source.tokenizer)}`,
    );
  for (const g of input.facts.gpus)
    sources.push(
      `${g.gpuTypeId}: memory ${from(g.source.memory)}, price ${from(g.source.price)}, bandwidth ${from(g.source.bandwidth)}`,
    );
  sources.push(
    `earlier runs: ${earlierRuns.length} of ${[...earlierPhases].join(', ') || 'no earlier phase'} in the results folder`,
    ...input.facts.notes.map((n) => `note: ${n}`),
    ...(input.historyNotes ?? []).map((n) => `note: ${n}`),
  );
  const sourceDetails = details.map((d, i) => `[${i + 1}] ${d}`);

  return {
    schemaVersion: 1,
    study: study.study,
    phase: phaseId,
    description: phase.description,
    generatedAt: input.generatedAt,
    simulated: study.simulated,
    target: {
      kind: target.kind,
      where:
        target.kind === 'ssh-host'
          ? `GPU ${target.gpuIndex} on ${target.host}${target.gpuTypeId ? ` (${target.gpuTypeId})` : ''}`
          : `RunPod, ${target.candidates.length} candidate(s), image ${target.image}`,
    },
    models: phase.models.map((m) => ({ repoId: m.repoId, thinking: m.thinking, maxTokens: m.sampling.maxTokens })),
    prompts,
    runs: phase.models.length * prompts.length,
    samples,
    candidates,
    budget,
    checks,
    sources,
    sourceDetails,
    ok: checks.every((c) => c.verdict !== 'fail'),
  };
}

/** The estimate of the session a phase will most likely run for each model: the first candidate that fits. */
export function firstFitEstimates(plan: Plan): Map<string, { candidate: PlanCandidate; totalMs: number }> {
  const first = plan.candidates.find((c) => !c.dropped);
  return new Map(
    (first?.estimates ?? []).map((e) => [e.repoId, { candidate: first as PlanCandidate, totalMs: e.estimate.totalMs }]),
  );
}
