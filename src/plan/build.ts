// The plan of one phase: its models and runs, every GPU candidate with its fit, price and estimate, the budget, and
// every check with its verdict. Pure: the facts come in (src/plan/sources.ts, history.ts, the harness's preflight).
import { phaseSettings, type Study } from '../study/schema.js';
import { compareWithEarlierPhases, type PlannedSettings } from './consistency.js';
import { checkContext, roundUpMaxModelLen } from './context.js';
import { estimateSession } from './estimate.js';
import { fitModel } from './fit.js';
import type {
  FactSource,
  GpuFacts,
  ModelFacts,
  Plan,
  PlanCandidate,
  PlanCheck,
  PreflightReport,
  RunHistory,
} from './types.js';

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

const usd = (n: number) => `$${n.toFixed(2)}`;
const int = (n: number) => Math.round(n).toLocaleString('en-US');
const list = (ids: (string | number)[], max = 10) =>
  ids.slice(0, max).join(', ') + (ids.length > max ? ` and ${ids.length - max} more` : '');

export function buildPlan(input: PlanInput): Plan {
  const { study, phaseId } = input;
  const { phase, vllm, harness } = phaseSettings(study, phaseId);
  const target = phase.target;
  const facts = new Map(input.facts.models.map((m) => [m.repoId, m]));
  const gpus = new Map(input.facts.gpus.map((g) => [g.gpuTypeId, g]));
  const prompts = study.prompts.map((p) => p.name);
  const samples = input.preflight?.dataset
    ? Math.min(input.preflight.dataset.unique, harness.limit ?? Number.POSITIVE_INFINITY)
    : null;
  const phaseIndex = study.phases.findIndex((p) => p.id === phaseId);
  const earlierPhases = new Set(study.phases.slice(0, phaseIndex).map((p) => p.id));
  const earlierRuns = input.history.filter((r) => earlierPhases.has(r.phase));

  // Candidates: RunPod's ordered list, or the one GPU of the team's server.
  const rawCandidates =
    target.kind === 'runpod'
      ? target.candidates.map((c, index) => ({ index, ...c, cloud: c.cloud }))
      : [{ index: 0, gpuTypeId: target.gpuTypeId ?? 'unknown', gpuCount: 1, cloud: null, dataCenterIds: [] }];

  const candidates: PlanCandidate[] = rawCandidates.map((c) => {
    const gpu = gpus.get(c.gpuTypeId) ?? null;
    const perGpu = gpu ? (c.cloud === 'COMMUNITY' ? gpu.pricePerGpuHr.community : gpu.pricePerGpuHr.secure) : null;
    const costPerHr = target.kind === 'ssh-host' ? 0 : perGpu !== null ? perGpu * c.gpuCount : null;
    const fit = phase.models.map((m) => {
      const f = facts.get(m.repoId);
      if (!f) return { repoId: m.repoId, result: null, why: 'no Hub or metadata-file facts for this model' };
      if (!gpu)
        return {
          repoId: m.repoId,
          result: null,
          why: `GPU type ${c.gpuTypeId} is not in the catalog or the metadata file`,
        };
      return {
        repoId: m.repoId,
        why: null,
        result: fitModel({
          weightBytes: f.weightBytes,
          architecture: f.architecture,
          dtype: vllm.dtype,
          gpuMemoryGib: gpu.memoryGib,
          gpuCount: c.gpuCount,
          gpuMemoryUtilization: vllm.gpuMemoryUtilization,
          runtimeOverheadGib: study.planning.runtimeOverheadGib,
          maxModelLen: vllm.maxModelLen,
          ...(vllm.tensorParallelSize ? { tensorParallelSize: vllm.tensorParallelSize } : {}),
        }),
      };
    });
    const misfit = fit.find((f) => f.result && !f.result.fits);
    const unknown = fit.find((f) => !f.result);
    // The team's server is given: an unknown GPU there is a warning, not a reason to drop it.
    const dropped = misfit
      ? `${misfit.repoId}: ${misfit.result?.reason ?? ''}`
      : unknown && target.kind === 'runpod'
        ? `${unknown.repoId}: ${unknown.why ?? ''}`
        : null;
    const estimates = dropped
      ? []
      : phase.models.flatMap((m) => {
          const f = facts.get(m.repoId);
          if (!f) return [];
          return [
            {
              repoId: m.repoId,
              estimate: estimateSession({
                model: f,
                thinking: m.thinking,
                maxTokens: m.sampling.maxTokens,
                gpu,
                gpuCount: c.gpuCount,
                costPerHr,
                rented: target.kind === 'runpod',
                prompts,
                samples: samples ?? 0,
                concurrency: harness.concurrency,
                baselineSeconds: harness.baselineSeconds,
                planning: study.planning,
                history: input.history,
                otherModels: input.facts.models,
                otherGpus: input.facts.gpus,
              }),
            },
          ];
        });
    const costs = estimates.map((e) => e.estimate.costUsd);
    return {
      index: c.index,
      gpuTypeId: c.gpuTypeId,
      gpuCount: c.gpuCount,
      cloud: c.cloud,
      dataCenterIds: c.dataCenterIds,
      costPerHr,
      fit,
      dropped,
      estimates,
      phaseCostUsd: dropped || costs.some((x) => x === null) ? null : costs.reduce<number>((a, x) => a + (x ?? 0), 0),
      phaseHours: estimates.reduce((a, e) => a + e.estimate.podHours, 0),
    };
  });

  const checks: PlanCheck[] = [];
  const usable = candidates.filter((c) => !c.dropped);

  // Fit.
  {
    const details = candidates.flatMap((c) => [
      `#${c.index} ${c.gpuCount}x ${c.gpuTypeId}${c.dropped ? ' — dropped' : ''}`,
      ...c.fit.map(
        (f) =>
          `    ${f.repoId}: ${f.result ? `${f.result.fits ? 'fits' : 'does not fit'}: ${f.result.reason}` : f.why}`,
      ),
    ]);
    const missing = phase.models.filter((m) => !facts.has(m.repoId)).map((m) => m.repoId);
    const unknownHostGpu = target.kind === 'ssh-host' && candidates[0]?.fit.some((f) => !f.result);
    const verdict =
      missing.length || !usable.length ? 'fail' : usable.length < candidates.length || unknownHostGpu ? 'warn' : 'pass';
    const summary = missing.length
      ? `no model facts for ${missing.join(', ')}: the fit cannot be checked`
      : !usable.length
        ? `no GPU candidate fits every model at maxModelLen ${int(vllm.maxModelLen)}: the phase cannot start`
        : unknownHostGpu
          ? `the server's GPU is not known (set target.gpuTypeId to a type in the metadata file): fit not checked`
          : `${usable.length} of ${candidates.length} candidate(s) fit every model at maxModelLen ${int(vllm.maxModelLen)}`;
    checks.push({ id: 'fit', title: 'Memory fit', verdict, summary, details });
  }

  // Context.
  {
    const details: string[] = [];
    const failures: string[] = [];
    for (const m of phase.models) {
      const f = facts.get(m.repoId);
      const tokens = input.preflight?.tokens.filter((t) => t.key === m.repoId) ?? [];
      if (!f?.tokenizer || !tokens.length) {
        failures.push(
          `${m.repoId}: no tokenizer to count its prompts with (no Hub access and none in the metadata file)`,
        );
        continue;
      }
      // The largest context the fitting GPU sets allow for this model.
      const capacities = usable.flatMap((c) => {
        const r = c.fit.find((x) => x.repoId === m.repoId)?.result;
        return r ? [{ c, cap: r.maxModelLenCapacity }] : [];
      });
      for (const r of checkContext({
        repoId: m.repoId,
        maxTokens: m.sampling.maxTokens,
        maxModelLen: vllm.maxModelLen,
        tokens,
      })) {
        const line = `${m.repoId} ${r.prompt}: longest prompt ${int(r.longestPromptTokens)} tokens (id ${r.longestId}) + maxTokens ${int(m.sampling.maxTokens)} = ${int(r.neededMaxModelLen)}`;
        if (!r.overIds.length) {
          details.push(`${line} <= maxModelLen ${int(vllm.maxModelLen)}`);
          continue;
        }
        const allow = capacities.length
          ? `; the fit check allows up to ${capacities.map(({ c, cap }) => `${int(cap)} on #${c.index} ${c.gpuCount}x ${c.gpuTypeId}`).join(', ')}`
          : '';
        failures.push(
          `${line} > maxModelLen ${int(vllm.maxModelLen)}: ${r.overIds.length} sample(s) would get HTTP 400 and score as wrong (ids ${list(r.overIds)}). ` +
            `Smallest maxModelLen that fits: ${int(r.neededMaxModelLen)} (e.g. ${int(roundUpMaxModelLen(r.neededMaxModelLen))})${allow}`,
        );
      }
      const note = tokens[0]?.framingNote;
      if (note) details.push(`${m.repoId}: ${note}`);
    }
    checks.push({
      id: 'context',
      title: 'Context length',
      verdict: failures.length ? 'fail' : 'pass',
      summary: failures.length
        ? `${failures.length} model/prompt pair(s) do not fit maxModelLen ${int(vllm.maxModelLen)}`
        : `every prompt plus maxTokens fits maxModelLen ${int(vllm.maxModelLen)}`,
      details: [...failures, ...details],
    });
  }

  // Dataset and prompts (the harness's own rules, before money).
  {
    const p = input.preflight;
    if (!p) {
      checks.push({
        id: 'dataset',
        title: 'Dataset and prompts',
        verdict: 'fail',
        summary: `the harness's preflight could not run: ${input.preflightError ?? 'unknown error'}`,
        details: [],
      });
    } else {
      const d = p.dataset;
      const problems = [...p.check.problems, ...(d?.requiredMissing ?? []).map((f) => `datasetPath: ${f}`)];
      const details = d
        ? [
            `${study.datasetPath}: sha256 ${d.sha256}`,
            `${d.rows} rows, ${d.unique} unique samples${samples !== null && samples < d.unique ? ` (harness.limit: the first ${samples})` : ''}`,
            `labels: ${d.labels.vulnerable} vulnerable, ${d.labels.benign} benign (${((100 * d.labels.vulnerable) / Math.max(1, d.unique)).toFixed(1)}% vulnerable)`,
            `fields: ${Object.entries(d.fields)
              .map(([k, n]) => (n === d.rows ? k : `${k} (${n}/${d.rows})`))
              .join(', ')}`,
            ...(d.duplicateIds.length ? [`duplicate ids (counted once): ${list(d.duplicateIds)}`] : []),
          ]
        : [];
      checks.push({
        id: 'dataset',
        title: 'Dataset and prompts',
        verdict: problems.length ? 'fail' : d?.duplicateIds.length ? 'warn' : 'pass',
        summary: problems.length
          ? `${problems.length} problem(s): ${problems[0] ?? ''}`
          : d?.duplicateIds.length
            ? `${d.unique} unique samples; ${d.duplicateIds.length} duplicate id(s) are deduplicated`
            : `${d?.unique ?? 0} unique samples, no duplicates, no label-revealing fields in the prompts`,
        details: [...problems, ...details],
      });
    }
  }

  // Consistency with earlier phases.
  {
    const kind = (thinking: boolean) => phase.models.find((m) => m.thinking === thinking)?.sampling;
    const planned: PlannedSettings = {
      vllmVersion: vllm.version,
      codecarbonVersion: input.codecarbonVersion,
      dtype: vllm.dtype,
      sampling: { instruct: kind(false), thinking: kind(true) },
      concurrency: harness.concurrency,
      dataset: input.preflight?.dataset?.sha256 ?? null,
      templates: input.templates,
      prefixCaching: vllm.enablePrefixCaching,
      maxModelLen: vllm.maxModelLen,
      maxNumSeqs: vllm.maxNumSeqs,
      maxNumBatchedTokens: vllm.maxNumBatchedTokens,
    };
    const diffs = compareWithEarlierPhases({ planned, earlierRuns, declared: phase.differsFromEarlierPhases });
    const undeclared = diffs.filter((d) => d.declared === null);
    const line = (d: (typeof diffs)[number]) =>
      `${d.variable}: ${phaseId} plans ${d.planned}; ${d.earlier.map((e) => `${e.phases.join(', ')} ran ${e.value} (${e.runs} run(s))`).join('; ')}` +
      (d.declared ? ` — declared: ${d.declared}` : '');
    checks.push({
      id: 'consistency',
      title: 'Consistency with earlier phases',
      verdict: undeclared.length ? 'fail' : 'pass',
      summary: !earlierRuns.length
        ? 'no earlier phase has results to compare with'
        : undeclared.length
          ? `${undeclared.length} setting(s) differ from earlier phases and are not declared (phases[].differsFromEarlierPhases): ${undeclared.map((d) => d.variable).join(', ')}`
          : `same settings as ${earlierRuns.length} run(s) of ${[...new Set(earlierRuns.map((r) => r.phase))].join(', ')}${diffs.length ? ` (${diffs.length} declared difference(s))` : ''}`,
      details: diffs.map(line),
    });
  }

  // Budget.
  const studyLeftUsd = study.budgetUsd !== undefined ? study.budgetUsd - input.studySpentUsd : null;
  const budget = {
    studyUsd: study.budgetUsd ?? null,
    studySpentUsd: input.studySpentUsd,
    studyLeftUsd,
    phaseUsd: phase.budget?.phaseUsd ?? null,
    sessionEstimateUsd: phase.budget?.sessionEstimateUsd ?? null,
  };
  {
    const details: string[] = [];
    let verdict: PlanCheck['verdict'] = 'pass';
    let summary: string;
    if (target.kind === 'ssh-host') {
      const h = usable[0]?.phaseHours ?? 0;
      summary = `the team's own server: no pod cost (about ${h.toFixed(1)} GPU hours)`;
    } else {
      const priced = usable.filter((c) => c.phaseCostUsd !== null);
      const limit = Math.min(budget.phaseUsd ?? Infinity, studyLeftUsd ?? Infinity);
      const limitText = [
        budget.phaseUsd !== null ? `phase budget ${usd(budget.phaseUsd)}` : null,
        studyLeftUsd !== null ? `study budget left ${usd(studyLeftUsd)}` : null,
      ]
        .filter(Boolean)
        .join(', ');
      for (const c of priced)
        details.push(
          `#${c.index} ${c.gpuCount}x ${c.gpuTypeId}: ${usd(c.phaseCostUsd ?? 0)} for ${c.phaseHours.toFixed(1)} pod hours`,
        );
      const costs = priced.map((c) => c.phaseCostUsd ?? 0);
      const first = priced[0];
      if (!usable.length) {
        verdict = 'fail';
        summary = 'no candidate fits: nothing to estimate';
      } else if (!priced.length) {
        verdict = 'warn';
        summary = 'no price for any fitting candidate (catalog unreachable and none in the metadata file)';
      } else if (Math.min(...costs) > limit) {
        verdict = 'fail';
        summary = `even the cheapest fitting candidate (${usd(Math.min(...costs))}) is over the ${limitText}`;
      } else {
        const over = priced.filter((c) => (c.phaseCostUsd ?? 0) > limit);
        if (over.length) verdict = 'warn';
        summary =
          `${usd(Math.min(...costs))}-${usd(Math.max(...costs))} for the phase (first fitting candidate #${first?.index}: ${usd(first?.phaseCostUsd ?? 0)})` +
          (limitText ? `; ${limitText}` : '') +
          (over.length ? `; over it on ${over.map((c) => `#${c.index}`).join(', ')}` : '');
      }
      const session = Math.max(0, ...usable.flatMap((c) => c.estimates.map((e) => e.estimate.costUsd ?? 0)));
      if (budget.sessionEstimateUsd !== null && session > budget.sessionEstimateUsd) {
        if (verdict === 'pass') verdict = 'warn';
        details.push(
          `a session may cost up to ${usd(session)}, more than budget.sessionEstimateUsd ${usd(budget.sessionEstimateUsd)} that the budget gate commits per session`,
        );
      }
      if (usable.some((c) => c.estimates.some((e) => !e.estimate.complete))) {
        if (verdict === 'pass') verdict = 'warn';
        details.push('some estimates leave the inference out (no GPU bandwidth known)');
      }
    }
    checks.push({ id: 'budget', title: 'Estimate and budget', verdict, summary, details });
  }

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
