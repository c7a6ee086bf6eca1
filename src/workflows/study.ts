import { ApplicationFailure, condition, executeChild, setCurrentDetails, setHandler } from '@temporalio/workflow';
import { modelSlug, workflowIds } from '../shared/constants.js';
import { studyAttributes } from '../shared/search-attributes.js';
import type { GateDecision, PhaseWorkflowOutput, StudyProgress, StudyWorkflowInput } from '../shared/types.js';
import { gateDecisionSignal, studyProgressQuery } from './messages.js';
import { phaseWorkflow } from './phase.js';

export interface StudyWorkflowOutput {
  phases: PhaseWorkflowOutput[];
  skipped: string[];
  stoppedAt: string | null;
  /** Pod cost of every phase run by this workflow. */
  costUsd: number;
}

/**
 * Runs the study's phases in order from `startPhase`. Before each later phase it waits at a gate for a
 * person's `gateDecision` signal (approve, skip, stop), for as long as it takes.
 */
export async function studyWorkflow(input: StudyWorkflowInput): Promise<StudyWorkflowOutput> {
  const { study } = input;
  const start = study.phases.findIndex((p) => p.id === input.startPhase);
  if (start < 0) throw ApplicationFailure.nonRetryable(`unknown phase ${input.startPhase}`, 'StudyInvalidError');

  let decision: GateDecision | undefined;
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
  setHandler(gateDecisionSignal, (d) => {
    // Only a waiting gate takes a decision; a stray signal while a phase runs must not pre-approve the next.
    if (progress.gate) decision = d;
  });
  setHandler(studyProgressQuery, () => progress);

  const out: StudyWorkflowOutput = { phases: [], skipped: [], stoppedAt: null, costUsd: 0 };
  for (let i = start; i < study.phases.length; i++) {
    const phase = study.phases[i];
    if (!phase) break;
    if (i > start) {
      progress.phaseState = 'waiting-at-gate';
      progress.gate = { nextPhase: phase.id, since: new Date().toISOString() };
      setCurrentDetails(`waiting at the **${phase.id}** gate: send a gateDecision signal (approve, skip or stop)`);
      await condition(() => decision !== undefined);
      const d = decision;
      decision = undefined;
      progress.gate = null;
      if (d?.decision === 'stop') {
        out.stoppedAt = phase.id;
        progress.phaseState = 'stopped';
        setCurrentDetails(`stopped before ${phase.id} by ${d.by}`);
        return out;
      }
      if (d?.decision === 'skip') {
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
  }
  progress.phaseState = 'done';
  setCurrentDetails('all phases done');
  return out;
}
