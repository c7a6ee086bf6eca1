import {
  ApplicationFailure,
  condition,
  executeChild,
  log,
  proxyActivities,
  setCurrentDetails,
  setHandler,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { modelSlug, workflowIds } from '../shared/constants.js';
import { studyAttributes } from '../shared/search-attributes.js';
import type { AnalyzePhaseOutput, GateDecision, GateRecord } from '../activities/analysis/index.js';
import type { PriceGpuCandidatesOutput } from '../activities/runpod/index.js';
import type { GateStatus, PhaseWorkflowOutput, StudyProgress, StudyWorkflowInput } from './types.js';
import { decideGateUpdate, gateDecisionSignal, gateStatusQuery, studyProgressQuery } from './messages.js';
import { nextPhasePlan, validateGateDecision } from './gate.js';
import { phaseWorkflow } from './phase.js';
import { validateWorkflowInput } from '../study/validate.js';

const { analyzePhase, recordGateDecision, writeReport } = proxyActivities<Activities>({
  startToCloseTimeout: '15m',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: ['AnalysisInputError'] },
});
const { priceGpuCandidates } = proxyActivities<Activities>({
  startToCloseTimeout: '2m',
  retry: { maximumAttempts: 3 },
});

export interface StudyWorkflowOutput {
  phases: PhaseWorkflowOutput[];
  skipped: string[];
  stoppedAt: string | null;
  /** Pod cost of every phase run by this workflow. */
  costUsd: number;
  decisions: GateRecord[];
  /** Relative to the results root; null when no report could be written. */
  reportPath: string | null;
}

const fmt = (n: number | null, digits = 3) => (n === null ? '-' : n.toFixed(digits));

/** The gate's state for the Web UI (current details, markdown). */
function gateDetails(status: GateStatus, ignoredNote: string | null): string {
  const p = status.packet;
  const lines = [`## Waiting at the **${status.nextPhase}** gate (after ${status.afterPhase})`];
  if (p) {
    const r = p.decision.recommendation;
    lines.push(`**Recommendation: ${r.action}** (${r.basis}). ${r.text}`, '');
    lines.push('| model | prompt | n | accuracy | F1 | MCC |', '|---|---|---|---|---|---|');
    for (const run of p.runs) {
      const label = run.simulated ? ' (simulated)' : run.imported ? ' (imported)' : '';
      lines.push(
        `| ${run.model}${label} | ${run.prompt} | ${run.n} | ${fmt(run.accuracy)} | ${fmt(run.f1)} | ${fmt(run.mcc)} |`,
      );
    }
    for (const m of p.decision.perModel) lines.push(`- ${m.model}: ${m.verdict ?? 'no comparison'}. ${m.why}`);
    if (p.confounds.length) lines.push(`- **Confounds:** ${p.confounds.join(', ')}`);
  } else lines.push('No decision packet: the analysis failed (see the worker log).');
  if (status.packetPaths) lines.push(`Packet: results/${status.packetPaths.md}`);
  lines.push(
    '',
    `Decide: \`npm run gate -- approve|skip|stop --by <name>\`, or signal **gateDecision** {"decision":"approve","by":"<name>"}.`,
  );
  if (status.timeoutAt)
    lines.push(`Without a decision by ${status.timeoutAt} the study stops before ${status.nextPhase}.`);
  if (ignoredNote) lines.push('', `**Ignored a gateDecision signal:** ${ignoredNote}`);
  return lines.join('\n');
}

/**
 * Runs the study's phases in order from `startPhase`. After each phase the analysis writes the decision packet and
 * the report; before each later phase the study waits at a gate for a person's decision (Update `decideGate` or
 * signal `gateDecision`): approve, skip or stop.
 */
export async function studyWorkflow(input: StudyWorkflowInput): Promise<StudyWorkflowOutput> {
  const { study } = validateWorkflowInput({ study: input.study }); // untrusted: anyone may start a workflow
  const start = study.phases.findIndex((p) => p.id === input.startPhase);
  if (start < 0) throw ApplicationFailure.nonRetryable(`unknown phase ${input.startPhase}`, 'StudyInvalidError');
  const gateSettings = study.analysis.gate;

  const progress: StudyProgress = {
    study: study.study,
    phase: null,
    phaseState: 'running',
    gate: null,
    completedPhases: [],
    sessionWorkflowIds: [],
    phaseWorkflowId: null,
    spentUsd: 0,
  };
  const gate: GateStatus = {
    open: false,
    nextPhase: null,
    afterPhase: null,
    since: null,
    timeoutAt: null,
    packet: null,
    packetSha256: null,
    packetPaths: null,
    decisions: [],
    ignored: [],
  };
  const out: StudyWorkflowOutput = {
    phases: [],
    skipped: [],
    stoppedAt: null,
    costUsd: 0,
    decisions: gate.decisions,
    reportPath: null,
  };
  let pending: { decision: GateDecision; via: GateRecord['via'] } | undefined;
  const openGate = () =>
    gate.open && gate.nextPhase && pending === undefined
      ? { nextPhase: gate.nextPhase, packetSha256: gate.packetSha256 }
      : null;
  const stateWord = () =>
    pending !== undefined ? 'applying a decision already' : `${progress.phaseState} ${progress.phase ?? ''}`.trim();

  setHandler(studyProgressQuery, () => progress);
  setHandler(gateStatusQuery, () => gate);
  setHandler(
    decideGateUpdate,
    async (payload) => {
      const checked = validateGateDecision(payload, openGate(), stateWord());
      if (!checked.ok) throw new Error(checked.error); // unreachable after the validator; keeps types honest
      pending = { decision: checked.value, via: 'update' };
      // Answer once the main loop has recorded it, so the caller sees exactly what was decided.
      await condition(() => pending === undefined);
      const last = gate.decisions[gate.decisions.length - 1];
      if (!last) throw new Error('decision was not recorded');
      return last;
    },
    {
      validator: (payload) => {
        const checked = validateGateDecision(payload, openGate(), stateWord());
        if (!checked.ok) throw new Error(checked.error);
      },
    },
  );
  setHandler(gateDecisionSignal, (payload) => {
    const checked = validateGateDecision(payload, openGate(), stateWord());
    if (!checked.ok) {
      // Never an approval: say so where the sender and the person at the gate will look.
      const at = new Date().toISOString();
      gate.ignored.push({ at, error: checked.error });
      log.warn('ignored an invalid gateDecision signal', { error: checked.error });
      if (gate.open) setCurrentDetails(gateDetails(gate, checked.error));
      return;
    }
    pending = { decision: checked.value, via: 'signal' };
  });

  /** Waits for a valid decision, with reminders; a configured timeout stops the study (it spends nothing). */
  const awaitDecision = async (): Promise<{ decision: GateDecision; via: GateRecord['via'] }> => {
    const deadline = gateSettings.timeoutMs === null ? null : Date.now() + gateSettings.timeoutMs;
    gate.timeoutAt = deadline === null ? null : new Date(deadline).toISOString();
    setCurrentDetails(gateDetails(gate, null));
    for (;;) {
      const waitMs =
        deadline === null
          ? gateSettings.reminderEveryMs
          : Math.min(gateSettings.reminderEveryMs, deadline - Date.now());
      if (waitMs > 0 && (await condition(() => pending !== undefined, waitMs)) && pending) return pending;
      if (pending) return pending;
      if (deadline !== null && Date.now() >= deadline) {
        return { decision: { gate: gate.nextPhase ?? '', decision: 'stop', by: 'gate-timeout' }, via: 'timeout' };
      }
      log.info('the study is still waiting at a gate', {
        gate: gate.nextPhase,
        since: gate.since,
        recommendation: gate.packet?.decision.recommendation.action ?? null,
      });
      setCurrentDetails(gateDetails(gate, null));
    }
  };

  /** The packet and report after a phase; a failed analysis leaves the gate without a packet rather than stuck. */
  const analyse = async (
    phaseId: string,
    result: PhaseWorkflowOutput,
    nextId: string | null,
  ): Promise<AnalyzePhaseOutput | null> => {
    let priced: PriceGpuCandidatesOutput | null = null;
    const next = nextId ? study.phases.find((p) => p.id === nextId) : undefined;
    if (next?.target.kind === 'runpod') {
      try {
        priced = await priceGpuCandidates({ candidates: next.target.candidates });
      } catch (err) {
        log.warn('no catalog prices for the next phase plan', { error: (err as Error).message });
      }
    }
    try {
      return await analyzePhase({
        study: study.study,
        phase: phaseId,
        phaseOrder: study.phases.map((p) => p.id),
        datasetPath: study.datasetPath,
        runSubdirs: result.sessions.flatMap((s) => s.runs.map((r) => r.resultsSubdir)),
        settings: study.analysis,
        nextPhase: nextId ? nextPhasePlan(study, nextId, result, priced) : null,
        spend: {
          studyUsd: out.costUsd,
          phaseUsd: result.costUsd,
          sessions: result.sessions.map((s) => ({ model: s.model, podCostUsd: s.podCostUsd })),
        },
        simulated: study.simulated,
      });
    } catch (err) {
      log.error('the analysis of the phase failed; the gate opens without a packet', {
        phase: phaseId,
        error: (err as Error).message,
      });
      return null;
    }
  };

  const report = async () => {
    try {
      out.reportPath = (await writeReport({ study: study.study })).reportMd;
    } catch (err) {
      log.error('the final report could not be written', { error: (err as Error).message });
    }
  };

  let lastPhase: string | null = null;
  for (let i = start; i < study.phases.length; i++) {
    const phase = study.phases[i];
    if (!phase) break;
    if (i > start) {
      progress.phaseState = 'waiting-at-gate';
      const since = new Date().toISOString();
      progress.gate = { nextPhase: phase.id, since };
      Object.assign(gate, { open: true, nextPhase: phase.id, afterPhase: lastPhase, since });
      const { decision: d, via } = await awaitDecision();
      const record: GateRecord = {
        gate: phase.id,
        afterPhase: lastPhase ?? '',
        decision: d.decision,
        by: d.by,
        reason: d.reason ?? (via === 'timeout' ? `no decision within ${gateSettings.timeoutMs} ms` : null),
        at: new Date().toISOString(),
        packetSha256: d.packetSha256 ?? gate.packetSha256,
        via,
      };
      gate.decisions.push(record);
      Object.assign(gate, { open: false, timeoutAt: null });
      progress.gate = null;
      pending = undefined;
      log.info('gate decision', { ...record });
      try {
        const written = await recordGateDecision({ study: study.study, record });
        out.reportPath = written.reportPath;
      } catch (err) {
        log.error('the gate decision could not be written to the results folder', { error: (err as Error).message });
      }
      if (d.decision === 'stop') {
        out.stoppedAt = phase.id;
        progress.phaseState = 'stopped';
        setCurrentDetails(`stopped before ${phase.id} by ${d.by}${via === 'timeout' ? ' (gate timeout)' : ''}`);
        return out;
      }
      if (d.decision === 'skip') {
        out.skipped.push(phase.id);
        continue;
      }
    }
    progress.phase = phase.id;
    progress.phaseState = 'running';
    progress.sessionWorkflowIds = phase.models.map((m) =>
      workflowIds.podSession(study.study, phase.id, modelSlug(m.repoId)),
    );
    progress.phaseWorkflowId = workflowIds.phase(study.study, phase.id);
    setCurrentDetails(`running **${phase.id}** (${phase.models.length} models)`);
    const result = await executeChild(phaseWorkflow, {
      workflowId: progress.phaseWorkflowId,
      args: [{ study, phaseId: phase.id, studySpentUsd: out.costUsd }],
      parentClosePolicy: 'REQUEST_CANCEL',
      typedSearchAttributes: studyAttributes({ study: study.study, phase: phase.id }),
      staticSummary: `${study.study} ${phase.id}`,
    });
    out.phases.push(result);
    out.costUsd += result.costUsd;
    progress.spentUsd = out.costUsd;
    progress.completedPhases.push(phase.id);
    lastPhase = phase.id;

    setCurrentDetails(`analysing **${phase.id}**: metrics, paired statistics, decision packet, report`);
    const analysis = await analyse(phase.id, result, study.phases[i + 1]?.id ?? null);
    Object.assign(gate, {
      packet: analysis?.packet ?? null,
      packetSha256: analysis?.packetSha256 ?? null,
      packetPaths: analysis ? { json: analysis.jsonPath, md: analysis.mdPath, report: analysis.reportPath } : null,
    });
    if (analysis) out.reportPath = analysis.reportPath;
  }
  await report();
  progress.phaseState = 'done';
  setCurrentDetails(`all phases done${out.reportPath ? `; report: results/${out.reportPath}` : ''}`);
  return out;
}
