/**
 * Inputs and outputs of the analysis activities: one object in, one object out. Pure types, safe for workflow code
 * (which imports them with `import type`). Nothing here may carry a secret: Temporal stores all of it in workflow
 * history.
 */

import type { AnalysisSettings, GpuCandidate } from '../../study/schema.js';

// Analysis: decision packet, gate decisions, report (the Python package `analysis/`, docs/analysis.md)

/** The next phase as the packet shows it: what approving would run and what it would cost. */
export interface NextPhasePlan {
  id: string;
  description: string;
  models: { repoId: string; thinking: boolean }[];
  target: 'runpod' | 'ssh-host';
  candidates: (GpuCandidate & { costPerHr: number | null })[];
  estimate: {
    podHoursPerSession: number | null;
    sessions: number;
    costUsdFirstCandidate: number | null;
    costUsdLow: number | null;
    costUsdHigh: number | null;
    basis: string;
  };
  budget: { phaseUsd: number | null; sessionEstimateUsd: number } | null;
}

export interface AnalyzePhaseInput {
  study: string;
  phase: string;
  phaseOrder: string[];
  /** The study's dataset (relative to the project root): sample ids, labels and commits for pairs and clusters. */
  datasetPath: string;
  /** The phase's runs, relative to the results root; runs found on disk for earlier phases are analysed too. */
  runSubdirs: string[];
  settings: AnalysisSettings;
  nextPhase: NextPhasePlan | null;
  spend: { studyUsd: number; phaseUsd: number; sessions: { model: string; podCostUsd: number }[] };
  simulated: boolean;
}

export type Verdict = 'improves' | 'degrades' | 'inconclusive';

/** The part of the decision packet the workflow keeps (the whole packet is in decision-packet.json). */
export interface DecisionPacketSummary {
  study: string;
  phase: string;
  generatedAt: string;
  simulated: boolean;
  runs: {
    model: string;
    prompt: string;
    n: number;
    accuracy: number | null;
    f1: number | null;
    mcc: number | null;
    unparseable: number;
    truncated: number;
    requestErrors: number;
    gpuKwhPerSample: number | null;
    totalKwhPerSample: number | null;
    tokensPerS: number | null;
    imported: boolean;
    simulated: boolean;
  }[];
  comparisons: {
    id: string;
    kind: string;
    label: string;
    nCommon: number;
    leftOut: number;
    b: number;
    c: number;
    pValue: number;
    pAdjusted: number | null;
    f1Diff: number | null;
    f1Ci: [number, number] | null;
    accuracyDiff: number | null;
    verdict: Verdict | null;
  }[];
  confounds: string[];
  decision: {
    rule: string;
    definition: string;
    perModel: { model: string; verdict: Verdict | null; why: string }[];
    recommendation: { action: 'approve' | 'skip' | 'none'; basis: string; text: string };
  };
  warnings: string[];
}

export interface AnalyzePhaseOutput {
  packet: DecisionPacketSummary;
  packetSha256: string;
  /** Relative to the results root. */
  jsonPath: string;
  mdPath: string;
  reportPath: string;
}

export type GateDecisionValue = 'approve' | 'skip' | 'stop';

/** A decision as sent (Update `decideGate` or signal `gateDecision`); validated before it counts. */
export interface GateDecision {
  /** The gate (the phase it opens); defaults to the open one for the signal, required by the CLI. */
  gate?: string;
  decision: GateDecisionValue;
  by: string;
  reason?: string;
  /** The packet the person looked at; a stale one is refused by the Update. */
  packetSha256?: string;
}

/** A decision as recorded: in history, gate-decisions.json and the report. */
export interface GateRecord {
  gate: string;
  afterPhase: string;
  decision: GateDecisionValue;
  by: string;
  reason: string | null;
  at: string;
  packetSha256: string | null;
  via: 'update' | 'signal' | 'timeout';
}

export interface RecordGateDecisionInput {
  study: string;
  record: GateRecord;
}
export interface RecordGateDecisionOutput {
  path: string;
  reportPath: string;
}

export interface WriteReportInput {
  study: string;
}
export interface WriteReportOutput {
  reportMd: string;
  reportHtml: string;
}
