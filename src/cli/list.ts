// `npm run list`: the studies Temporal knows (the study workflows, by their Study search attribute), each with its
// workflow state and, for a running one, its phase, its state in the phase, the completed phases and the spend so far.
import type { Client } from '@temporalio/client';
import { StudyKey } from '../shared/search-attributes.js';
import { studyProgressQuery } from '../workflows/messages.js';
import type { StudyProgress } from '../workflows/types.js';

export interface StudyListing {
  study: string;
  workflowId: string;
  /** Temporal's execution status: RUNNING, COMPLETED, FAILED, TERMINATED, ... */
  status: string;
  startedAt: string;
  closedAt: string | null;
  /** From the running study's progress query; null when closed or when no worker answered in time. */
  progress: Pick<StudyProgress, 'phase' | 'phaseState' | 'completedPhases' | 'spentUsd' | 'gate'> | null;
}

/** How long one study's progress query may take before the row says no worker answered. */
const QUERY_DEADLINE_MS = 3_000;

export async function listStudies(a: { client: Client; all: boolean; limit: number }): Promise<StudyListing[]> {
  const query = `WorkflowType = 'studyWorkflow'${a.all ? '' : ` AND ExecutionStatus = 'Running'`}`;
  const rows: StudyListing[] = [];
  for await (const wf of a.client.workflow.list({ query, pageSize: 100 })) {
    if (rows.length >= a.limit) break;
    const running = wf.status.name === 'RUNNING';
    let progress: StudyListing['progress'] = null;
    if (running) {
      progress = await a.client.connection
        .withDeadline(Date.now() + QUERY_DEADLINE_MS, () =>
          a.client.workflow.getHandle(wf.workflowId, wf.runId).query(studyProgressQuery),
        )
        .then(
          (p) => ({
            phase: p.phase,
            phaseState: p.phaseState,
            completedPhases: p.completedPhases,
            spentUsd: p.spentUsd,
            gate: p.gate,
          }),
          () => null,
        );
    }
    rows.push({
      study: wf.typedSearchAttributes.get(StudyKey) ?? wf.workflowId.replace(/^study-/, ''),
      workflowId: wf.workflowId,
      status: wf.status.name,
      startedAt: wf.startTime.toISOString(),
      closedAt: wf.closeTime?.toISOString() ?? null,
      progress,
    });
  }
  return rows;
}

/** One line per study, newest first (Temporal's order). */
export function formatStudyList(rows: StudyListing[], opts: { all: boolean }): string {
  if (!rows.length) return opts.all ? 'no studies' : 'no running studies (--all lists finished ones too)';
  const lines = rows.map((r) => {
    const p = r.progress;
    const state =
      r.status !== 'RUNNING'
        ? `${r.status.toLowerCase()} ${r.closedAt ?? ''}`.trim()
        : p === null
          ? 'running (no worker answered: is one polling the task queue?)'
          : p.phaseState === 'waiting-at-gate' && p.gate
            ? `${p.phase ?? '?'} done, waiting at the ${p.gate.nextPhase} gate since ${p.gate.since}`
            : `${p.phase ?? '?'} ${p.phaseState}`;
    const spend = p ? `  $${p.spentUsd.toFixed(2)} spent` : '';
    const done = p?.completedPhases.length ? `  done: ${p.completedPhases.join(', ')}` : '';
    return `${r.study.padEnd(20)} ${state}${spend}${done}\n${' '.repeat(21)}${r.workflowId}, started ${r.startedAt}`;
  });
  return lines.join('\n');
}
