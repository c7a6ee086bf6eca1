// The plan's checks, each with its verdict and the lines behind it: memory fit, context length, dataset and prompts,
// consistency with earlier phases, estimate and budget. Pure: build.ts gives them the candidates and the facts.
import type { HarnessSettings, Phase, Study, VllmSettings } from '../study/schema.js';
import { compareWithEarlierPhases, type PlannedSettings } from './consistency.js';
import { checkContext, roundUpMaxModelLen } from './context.js';
import type { ModelFacts, Plan, PlanCandidate, PlanCheck, PreflightReport, RunHistory } from './types.js';

export interface PlanChecksInput {
  study: Study;
  phaseId: string;
  phase: Phase;
  vllm: VllmSettings;
  harness: HarnessSettings;
  /** Model facts by repo id. */
  facts: Map<string, ModelFacts>;
  candidates: PlanCandidate[];
  /** Unique samples the phase will evaluate; null when the preflight gave no dataset. */
  samples: number | null;
  preflight: PreflightReport | null;
  preflightError?: string | undefined;
  /** The earlier phases' runs found in the results folder. */
  earlierRuns: RunHistory[];
  codecarbonVersion: string | null;
  templates: PlannedSettings['templates'];
  budget: Plan['budget'];
}

/** Every check of the plan, in the order the plan shows them. */
export function planChecks(input: PlanChecksInput): PlanCheck[] {
  const a = { ...input, usable: input.candidates.filter((c) => !c.dropped) };
  return [fitCheck(a), contextCheck(a), datasetCheck(a), consistencyCheck(a), budgetCheck(a)];
}

type CheckArgs = PlanChecksInput & { usable: PlanCandidate[] };

const usd = (n: number) => `$${n.toFixed(2)}`;
const int = (n: number) => Math.round(n).toLocaleString('en-US');
const list = (ids: (string | number)[], max = 10) =>
  ids.slice(0, max).join(', ') + (ids.length > max ? ` and ${ids.length - max} more` : '');

function fitCheck({ phase, vllm, facts, candidates, usable }: CheckArgs): PlanCheck {
  const target = phase.target;
  const details = candidates.flatMap((c) => [
    `#${c.index} ${c.gpuCount}x ${c.gpuTypeId}${c.dropped ? ' — dropped' : ''}`,
    ...c.fit.map(
      (f) => `    ${f.repoId}: ${f.result ? `${f.result.fits ? 'fits' : 'does not fit'}: ${f.result.reason}` : f.why}`,
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
  return { id: 'fit', title: 'Memory fit', verdict, summary, details };
}

function contextCheck({ phase, vllm, facts, preflight, usable }: CheckArgs): PlanCheck {
  const details: string[] = [];
  const failures: string[] = [];
  for (const m of phase.models) {
    const f = facts.get(m.repoId);
    const tokens = preflight?.tokens.filter((t) => t.key === m.repoId) ?? [];
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
  return {
    id: 'context',
    title: 'Context length',
    verdict: failures.length ? 'fail' : 'pass',
    summary: failures.length
      ? `${failures.length} model/prompt pair(s) do not fit maxModelLen ${int(vllm.maxModelLen)}`
      : `every prompt plus maxTokens fits maxModelLen ${int(vllm.maxModelLen)}`,
    details: [...failures, ...details],
  };
}

/** The harness's own rules on the dataset and prompts, before money. */
function datasetCheck({ study, preflight, preflightError, samples }: CheckArgs): PlanCheck {
  const p = preflight;
  if (!p) {
    return {
      id: 'dataset',
      title: 'Dataset and prompts',
      verdict: 'fail',
      summary: `the harness's preflight could not run: ${preflightError ?? 'unknown error'}`,
      details: [],
    };
  }
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
  return {
    id: 'dataset',
    title: 'Dataset and prompts',
    verdict: problems.length ? 'fail' : d?.duplicateIds.length ? 'warn' : 'pass',
    summary: problems.length
      ? `${problems.length} problem(s): ${problems[0] ?? ''}`
      : d?.duplicateIds.length
        ? `${d.unique} unique samples; ${d.duplicateIds.length} duplicate id(s) are deduplicated`
        : `${d?.unique ?? 0} unique samples, no duplicates, no label-revealing fields in the prompts`,
    details: [...problems, ...details],
  };
}

function consistencyCheck(a: CheckArgs): PlanCheck {
  const { phase, phaseId, vllm, harness, earlierRuns } = a;
  const kind = (thinking: boolean) => phase.models.find((m) => m.thinking === thinking)?.sampling;
  const planned: PlannedSettings = {
    vllmVersion: vllm.version,
    codecarbonVersion: a.codecarbonVersion,
    dtype: vllm.dtype,
    sampling: { instruct: kind(false), thinking: kind(true) },
    concurrency: harness.concurrency,
    dataset: a.preflight?.dataset?.sha256 ?? null,
    templates: a.templates,
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
  return {
    id: 'consistency',
    title: 'Consistency with earlier phases',
    verdict: undeclared.length ? 'fail' : 'pass',
    summary: !earlierRuns.length
      ? 'no earlier phase has results to compare with'
      : undeclared.length
        ? `${undeclared.length} setting(s) differ from earlier phases and are not declared (phases[].differsFromEarlierPhases): ${undeclared.map((d) => d.variable).join(', ')}`
        : `same settings as ${earlierRuns.length} run(s) of ${[...new Set(earlierRuns.map((r) => r.phase))].join(', ')}${diffs.length ? ` (${diffs.length} declared difference(s))` : ''}`,
    details: diffs.map(line),
  };
}

function budgetCheck({ phase, budget, usable }: CheckArgs): PlanCheck {
  const studyLeftUsd = budget.studyLeftUsd;
  const details: string[] = [];
  let verdict: PlanCheck['verdict'] = 'pass';
  let summary: string;
  if (phase.target.kind === 'ssh-host') {
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
  return { id: 'budget', title: 'Estimate and budget', verdict, summary, details };
}
