// Terminal view of a decision packet: the main table, the paired comparisons and the recommendation.
import type { DecisionPacketSummary } from '../activities/analysis/index.js';
import type { GateStatus } from '../workflows/types.js';

const f = (n: number | null, digits = 3) => (n === null ? '-' : n.toFixed(digits));
const pct = (n: number | null) => (n === null ? '-' : `${(100 * n).toFixed(1)}%`);
const p = (n: number | null) => (n === null ? '-' : n < 0.001 ? '<0.001' : n.toFixed(3));
const kwh = (n: number | null) => (n === null ? 'not measured' : n.toExponential(2));

/** Plain aligned table: header, a rule, rows. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
}

export function formatPacket(packet: DecisionPacketSummary): string[] {
  const runs = table(
    ['model', 'prompt', 'n', 'accuracy', 'F1', 'MCC', 'unparsed/trunc/err', 'GPU kWh/sample', 'tok/s'],
    packet.runs.map((r) => [
      `${r.model.split('/').pop() ?? r.model}${r.simulated ? ' (simulated)' : ''}${r.imported ? ' (imported)' : ''}`,
      r.prompt,
      String(r.n),
      pct(r.accuracy),
      f(r.f1),
      f(r.mcc),
      `${r.unparseable}/${r.truncated}/${r.requestErrors}`,
      kwh(r.gpuKwhPerSample),
      r.tokensPerS === null ? '-' : r.tokensPerS.toFixed(0),
    ]),
  );
  const comparisons = table(
    ['comparison (b - a)', 'n', 'b', 'c', 'McNemar p', 'p (Holm)', 'ΔF1 [95% CI]', 'Δaccuracy', 'verdict'],
    packet.comparisons.map((c) => [
      `${c.label}${c.leftOut ? ` (${c.leftOut} left out)` : ''}`,
      String(c.nCommon),
      String(c.b),
      String(c.c),
      p(c.pValue),
      p(c.pAdjusted),
      `${f(c.f1Diff)} [${c.f1Ci ? `${f(c.f1Ci[0])}, ${f(c.f1Ci[1])}` : '-'}]`,
      pct(c.accuracyDiff),
      c.verdict ?? '',
    ]),
  );
  const rec = packet.decision.recommendation;
  return [
    `Decision packet: ${packet.study} ${packet.phase}${packet.simulated ? ' (SIMULATED: sandbox numbers, not a result)' : ''}`,
    '',
    ...runs,
    '',
    ...comparisons,
    '',
    `Rule: ${packet.decision.rule}`,
    `"Clearly": ${packet.decision.definition}`,
    ...packet.decision.perModel.map((m) => `  ${m.model}: ${m.verdict ?? 'no comparison'}. ${m.why}`),
    ...(packet.confounds.length ? [`Confounds: ${packet.confounds.join(', ')}`] : []),
    ...packet.warnings.map((w) => `warning: ${w}`),
    '',
    `RECOMMENDATION: ${rec.action.toUpperCase()} (${rec.basis}). ${rec.text}`,
  ];
}

export function formatGateStatus(status: GateStatus): string[] {
  const lines: string[] = [];
  if (status.open)
    lines.push(`The gate to ${status.nextPhase} is open since ${status.since} (after ${status.afterPhase}).`);
  else lines.push('No gate is open.');
  if (status.packet) lines.push('', ...formatPacket(status.packet));
  if (status.packetPaths)
    lines.push('', `Packet: results/${status.packetPaths.md}`, `Report: results/${status.packetPaths.report}`);
  if (status.packetSha256) lines.push(`Packet sha256: ${status.packetSha256}`);
  if (status.timeoutAt) lines.push(`Without a decision by ${status.timeoutAt} the study stops.`);
  for (const d of status.decisions)
    lines.push(`decided: ${d.decision} ${d.gate} by ${d.by} at ${d.at} via ${d.via}${d.reason ? `: ${d.reason}` : ''}`);
  for (const i of status.ignored) lines.push(`ignored signal at ${i.at}: ${i.error}`);
  return lines;
}
