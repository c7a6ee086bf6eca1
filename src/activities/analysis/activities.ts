import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import type {
  AnalyzePhaseInput,
  AnalyzePhaseOutput,
  DecisionPacketSummary,
  RecordGateDecisionInput,
  RecordGateDecisionOutput,
  WriteReportInput,
  WriteReportOutput,
} from './types.js';
import type { AnalysisApi } from './client.js';
import { AnalysisInputError } from './errors.js';
import { GateDecisionsFileSchema, PacketOutputSchema, ReportOutputSchema, type DecisionPacket } from './schemas.js';

export interface AnalysisActivityDeps {
  analysis: AnalysisApi;
  /** Absolute results root (`results/`). */
  resultsDir: string;
  projectRoot: string;
}

export const GATE_DECISIONS_FILE = 'gate-decisions.json';

/** What the workflow keeps of a packet: its tables and the recommendation, not every per-sample list. */
export function summarizePacket(p: DecisionPacket): DecisionPacketSummary {
  return {
    study: p.study,
    phase: p.phase,
    generatedAt: p.generatedAt,
    simulated: p.simulated,
    runs: p.runs.map((r) => ({
      model: r.model,
      prompt: r.prompt,
      n: r.n,
      accuracy: r.metrics.accuracy,
      f1: r.metrics.f1,
      mcc: r.metrics.mcc,
      unparseable: r.metrics.unparseable,
      truncated: r.metrics.truncated,
      requestErrors: r.metrics.requestErrors,
      gpuKwhPerSample: r.energy.perSample?.gpuKwh ?? null,
      totalKwhPerSample: r.energy.perSample?.totalKwh ?? null,
      tokensPerS: r.energy.tokensPerS ?? null,
      imported: r.imported,
      simulated: r.simulated,
    })),
    comparisons: p.comparisons.map((c) => ({
      id: c.id,
      kind: c.kind,
      label: c.label,
      nCommon: c.nCommon,
      leftOut: c.leftOut.onlyInA.length + c.leftOut.onlyInB.length,
      b: c.mcnemar.b,
      c: c.mcnemar.c,
      pValue: c.mcnemar.pValue,
      pAdjusted: c.mcnemar.pAdjusted,
      f1Diff: c.f1.diff,
      f1Ci: c.f1.ciCluster ?? c.f1.ciSample,
      accuracyDiff: c.accuracy.diff,
      verdict: c.verdict ?? null,
    })),
    confounds: p.consistency.confounds,
    decision: {
      rule: p.decision.rule,
      definition: p.decision.definition,
      perModel: p.decision.perModel.map((m) => ({ model: m.model, verdict: m.verdict, why: m.why })),
      recommendation: {
        action: p.decision.recommendation.action,
        basis: p.decision.recommendation.basis,
        text: p.decision.recommendation.text,
      },
    },
    warnings: p.warnings,
  };
}

export function createAnalysisActivities(deps: AnalysisActivityDeps) {
  const rel = (p: string) => relative(deps.resultsDir, isAbsolute(p) ? p : resolve(deps.resultsDir, p));
  const studyDir = (study: string) => {
    // The study name reaches a path: the schema allows only [a-z0-9-], but this input comes from a workflow.
    if (!/^[a-z0-9]+(-[a-z0-9]+)*$/.test(study)) throw new AnalysisInputError(`invalid study name ${study}`);
    return join(deps.resultsDir, study);
  };
  const report = async (study: string) =>
    deps.analysis.run({
      command: 'report',
      input: { resultsDir: deps.resultsDir, study },
      schema: ReportOutputSchema,
    });

  return {
    /**
     * The decision packet of a finished phase: metrics, paired statistics, consistency, the next phase's plan and a
     * recommendation, written to `results/<study>/<phase>/decision-packet.{json,md}`; the report is regenerated.
     * Idempotent: the same results give the same packet (apart from its timestamp).
     */
    async analyzePhase(input: AnalyzePhaseInput): Promise<AnalyzePhaseOutput> {
      studyDir(input.study);
      const out = await deps.analysis.run({
        command: 'packet',
        input: {
          resultsDir: deps.resultsDir,
          study: input.study,
          phase: input.phase,
          phaseOrder: input.phaseOrder,
          datasetPath: isAbsolute(input.datasetPath) ? input.datasetPath : resolve(deps.projectRoot, input.datasetPath),
          runDirs: input.runSubdirs,
          // The statistics' settings; the gate's own (timeout, reminders) are the workflow's.
          settings: {
            decision: input.settings.decision,
            bootstrap: input.settings.bootstrap,
            variablesUnderStudy: input.settings.variablesUnderStudy,
            crossPhase: input.settings.crossPhase,
          },
          nextPhase: input.nextPhase,
          spend: input.spend,
          simulated: input.simulated,
        },
        schema: PacketOutputSchema,
      });
      return {
        packet: summarizePacket(out.packet),
        packetSha256: out.packetSha256,
        jsonPath: rel(out.jsonPath),
        mdPath: rel(out.mdPath),
        reportPath: rel(out.reportPath),
      };
    },

    /** Appends a gate decision to `results/<study>/gate-decisions.json` (once per decision) and regenerates the report. */
    async recordGateDecision(input: RecordGateDecisionInput): Promise<RecordGateDecisionOutput> {
      const dir = studyDir(input.study);
      mkdirSync(dir, { recursive: true });
      const path = join(dir, GATE_DECISIONS_FILE);
      const file = existsSync(path)
        ? GateDecisionsFileSchema.parse(JSON.parse(readFileSync(path, 'utf8')))
        : { decisions: [] };
      const key = (d: { gate: string; at: string; by: string }) => `${d.gate}|${d.at}|${d.by}`;
      // A retried activity must not record the same decision twice.
      if (!file.decisions.some((d) => key(d) === key(input.record))) {
        file.decisions.push(input.record);
        const tmp = `${path}.tmp`;
        writeFileSync(tmp, `${JSON.stringify(file, null, 2)}\n`);
        renameSync(tmp, path);
      }
      const r = await report(input.study);
      return { path: rel(path), reportPath: rel(r.reportMd) };
    },

    /** Regenerates `results/<study>/report.{md,html}` and its figures from the results folder alone. */
    async writeReport(input: WriteReportInput): Promise<WriteReportOutput> {
      studyDir(input.study);
      const r = await report(input.study);
      return { reportMd: rel(r.reportMd), reportHtml: rel(r.reportHtml) };
    },
  };
}
