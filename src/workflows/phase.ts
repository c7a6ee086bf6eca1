import {
  ApplicationFailure,
  executeChild,
  isCancellation,
  log,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { modelSlug, workflowIds } from '../shared/constants.js';
import { studyAttributes } from '../shared/search-attributes.js';
import type { PhaseWorkflowInput, PhaseWorkflowOutput, PodSessionOutput } from '../shared/types.js';
import { phaseSettings } from '../study/schema.js';
import { phaseSessionsQuery } from './messages.js';
import { podSessionWorkflow } from './pod-session.js';

const { summarizePhase } = proxyActivities<Activities>({
  startToCloseTimeout: '5m',
  retry: { maximumAttempts: 5 },
});

/** Runs one pod session per model, at most `maxConcurrentSessions` at a time, then summarises the phase. */
export async function phaseWorkflow(input: PhaseWorkflowInput): Promise<PhaseWorkflowOutput> {
  const { study, phaseId } = input;
  const { phase } = phaseSettings(study, phaseId);
  const childIds = phase.models.map((m) => workflowIds.podSession(study.study, phaseId, modelSlug(m.repoId)));
  setHandler(phaseSessionsQuery, () => childIds);

  const sessions: PodSessionOutput[] = [];
  const failures: PhaseWorkflowOutput['failures'] = [];
  const queue = phase.models.map((model, i) => ({ model, workflowId: childIds[i] ?? '' }));
  const worker = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const { model, workflowId } = next;
      try {
        sessions.push(
          await executeChild(podSessionWorkflow, {
            workflowId,
            args: [{ study, phaseId, model }],
            // Cancel (not terminate) the session when this workflow closes, so its pod teardown still runs.
            parentClosePolicy: 'REQUEST_CANCEL',
            typedSearchAttributes: studyAttributes({ study: study.study, phase: phaseId, model: model.repoId }),
            staticSummary: `${model.repoId} (${phaseId})`,
          }),
        );
      } catch (err) {
        if (isCancellation(err)) throw err; // a cancelled phase stops; it does not carry on with the next model
        const message =
          err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
        log.error('pod session failed', { model: model.repoId, error: message });
        failures.push({ model: model.repoId, error: message });
      }
      setCurrentDetails(
        `${sessions.length + failures.length}/${phase.models.length} models finished, ${failures.length} failed`,
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(phase.maxConcurrentSessions, queue.length) }, worker));

  const runSubdirs = sessions.flatMap((s) => s.runs.map((r) => r.resultsSubdir));
  const summary = runSubdirs.length ? await summarizePhase({ study: study.study, phase: phaseId, runSubdirs }) : null;
  if (!sessions.length) {
    // An ApplicationFailure fails the workflow; a plain Error would only fail (and endlessly retry) the task.
    throw ApplicationFailure.nonRetryable(
      `every model of ${phaseId} failed: ${failures.map((f) => `${f.model}: ${f.error}`).join('; ')}`,
      'PhaseFailed',
    );
  }
  log.info('phase finished', { phase: phaseId, workflowId: workflowInfo().workflowId, failures: failures.length });
  return { phaseId, sessions, summary, failures };
}
