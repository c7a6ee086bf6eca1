// The plan as a person reads it in a terminal (`npm run plan`, and before `start-workflow` asks to confirm).
import type { Plan, SessionEstimate } from './types.js';

const usd = (n: number) => `$${n.toFixed(2)}`;
const int = (n: number) => Math.round(n).toLocaleString('en-US');
const dur = (ms: number) => {
  const min = ms / 60_000;
  return min < 90 ? `${min.toFixed(0)} min` : `${(min / 60).toFixed(1)} h`;
};

function session(e: SessionEstimate): string {
  const parts = [
    ...(e.imagePullMs ? [`pull ${dur(e.imagePullMs)}`] : []),
    `download ${dur(e.downloadMs)}`,
    `load ${dur(e.loadMs)}`,
    ...e.perPrompt.map((p) => `${p.prompt} ${dur(p.baselineMs + p.inferenceMs)}`),
  ];
  return `${dur(e.totalMs)}${e.costUsd !== null ? `, ${usd(e.costUsd)}` : ''}${e.complete ? '' : ' (inference not estimated)'}: ${parts.join(', ')}`;
}

export function formatPlan(plan: Plan, opts: { verbose?: boolean } = {}): string[] {
  const out: string[] = [];
  out.push(`Plan: ${plan.study} ${plan.phase}${plan.simulated ? ' (sandbox, simulated)' : ''} — ${plan.description}`);
  out.push(`Where: ${plan.target.where}`);
  out.push(
    `Runs: ${plan.models.length} model(s) x ${plan.prompts.length} prompt(s) (${plan.prompts.join(', ')}) = ${plan.runs} runs` +
      (plan.samples !== null ? ` over ${int(plan.samples)} samples each` : ''),
  );
  for (const m of plan.models)
    out.push(`  ${m.repoId}  ${m.thinking ? 'thinking' : 'instruct'}, maxTokens ${int(m.maxTokens)}`);

  out.push('', plan.target.kind === 'runpod' ? 'GPU candidates, in the order the reservation tries them:' : 'GPU:');
  for (const c of plan.candidates) {
    const where = c.cloud ? ` ${c.cloud}${c.dataCenterIds.length ? ` [${c.dataCenterIds.join(', ')}]` : ''}` : '';
    const price = c.costPerHr === null ? 'price unknown' : c.costPerHr === 0 ? 'no pod cost' : `${usd(c.costPerHr)}/h`;
    if (c.dropped) {
      out.push(`  #${c.index} ${c.gpuCount}x ${c.gpuTypeId}${where}  ${price}  DROPPED: ${c.dropped}`);
      continue;
    }
    const cost = c.phaseCostUsd !== null && c.costPerHr ? `, ${usd(c.phaseCostUsd)}` : '';
    out.push(
      `  #${c.index} ${c.gpuCount}x ${c.gpuTypeId}${where}  ${price}  fits; phase about ${c.phaseHours.toFixed(1)} h${cost}`,
    );
    for (const e of c.estimates) out.push(`      ${e.repoId}: ${session(e.estimate)}`);
  }

  const b = plan.budget;
  const budget = [
    b.studyUsd !== null
      ? `study ${usd(b.studyUsd)} (spent ${usd(b.studySpentUsd)}, left ${usd(b.studyLeftUsd ?? 0)})`
      : null,
    b.phaseUsd !== null ? `phase ${usd(b.phaseUsd)}` : null,
    b.sessionEstimateUsd !== null ? `committed per session ${usd(b.sessionEstimateUsd)}` : null,
  ].filter(Boolean);
  if (budget.length) out.push('', `Budget: ${budget.join(', ')}`);

  out.push('', 'Checks:');
  for (const c of plan.checks) {
    out.push(`  ${c.verdict.toUpperCase().padEnd(4)}  ${c.title}: ${c.summary}`);
    // Failures and warnings show their numbers; passes too with --verbose.
    if (opts.verbose || c.verdict !== 'pass') for (const d of c.details) out.push(`          ${d}`);
  }

  const first = plan.candidates.find((c) => !c.dropped);
  if (opts.verbose && first) {
    out.push('', `How the estimate for #${first.index} was made:`);
    for (const e of first.estimates) {
      out.push(`  ${e.repoId}:`);
      for (const line of e.estimate.basis) out.push(`    - ${line}`);
    }
  }
  out.push('', 'Sources:');
  for (const s of plan.sources) out.push(`  ${s}`);
  if (opts.verbose) for (const s of plan.sourceDetails) out.push(`  ${s}`);
  else if (plan.sourceDetails.length)
    out.push(`  ([1]-[${plan.sourceDetails.length}]: --verbose or --json says what they are)`);
  const failed = plan.checks.filter((c) => c.verdict === 'fail');
  out.push(
    '',
    failed.length
      ? `NOT READY: ${failed.length} check(s) failed (${failed.map((c) => c.title).join(', ')}); nothing is started.`
      : `Ready: every check passed${plan.checks.some((c) => c.verdict === 'warn') ? ' (see the warnings)' : ''}.`,
  );
  return out;
}
