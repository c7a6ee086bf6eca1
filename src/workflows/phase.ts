import {
  ApplicationFailure,
  condition,
  executeChild,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { modelSlug, workflowIds } from '../shared/constants.js';
import { studyAttributes } from '../shared/search-attributes.js';
import type { PhaseProgress, PhaseWorkflowInput, PhaseWorkflowOutput, PodSessionOutput } from './types.js';
import type { ModelSpec } from '../study/schema.js';
import { phaseSettings } from '../study/schema.js';
import { validateWorkflowInput } from '../study/validate.js';
import { ErrorTypes } from '../shared/errors.js';
import {
  BudgetRaiseSchema,
  parseSignal,
  phaseProgressQuery,
  PodReservedSchema,
  podReservedSignal,
  raiseBudgetSignal,
} from './messages.js';
import { podSessionWorkflow } from './pod-session/index.js';

const { summarizePhase } = proxyActivities<Activities>({
  startToCloseTimeout: '5m',
  retry: { maximumAttempts: 5 },
});
// A refused input stays refused: no retry for StudyInvalidError.
const { checkStudyInputs } = proxyActivities<Activities>({
  startToCloseTimeout: '5m',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: [ErrorTypes.StudyInvalid] },
});

// The plan's checks at the start: a failed check is final (PreflightFailedError), a crashed harness is retried.
const { preflightPhase } = proxyActivities<Activities>({
  startToCloseTimeout: '10m',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: [ErrorTypes.PreflightFailed, ErrorTypes.StudyInvalid] },
});

const usd = (n: number) => `$${n.toFixed(2)}`;

const RAISE_EXAMPLE = '{"phaseUsd": N, "by": "<name>"} or {"studyUsd": N, "by": "<name>"}';
/** The query keeps the latest ignored signals only: a flood of bad ones must not grow the workflow's state. */
const MAX_IGNORED = 20;

/**
 * Runs one pod session per model, at most `maxConcurrentSessions` at a time, then summarises the phase.
 * Before each session it checks spend plus committed estimates against the phase and study budgets, and waits
 * (a gate) for a `raiseBudget` signal or cancellation when the next session would not fit.
 */
export async function phaseWorkflow(input: PhaseWorkflowInput): Promise<PhaseWorkflowOutput> {
  const { study } = validateWorkflowInput({ study: input.study, phaseId: input.phaseId }); // untrusted input
  const { phaseId } = input;
  const { phase } = phaseSettings(study, phaseId);
  const info = workflowInfo();
  const childIds = phase.models.map((m) => workflowIds.podSession(study.study, phaseId, modelSlug(m.repoId)));
  const progress: PhaseProgress = {
    phaseId,
    sessions: childIds,
    spentUsd: 0,
    committedUsd: 0,
    studySpentUsd: input.studySpentUsd,
    budget: {
      phaseUsd: phase.budget?.phaseUsd ?? null,
      studyUsd: study.budgetUsd ?? null,
      sessionEstimateUsd: phase.budget?.sessionEstimateUsd ?? 0,
    },
    waitingForBudget: null,
    lockedGpuTypeId: null,
    ignored: [],
    maxConcurrentSessions: phase.maxConcurrentSessions,
    preflight: null,
  };
  let details = '';
  const showDetails = (text: string) => {
    details = text;
    setCurrentDetails(text);
  };
  /** A signal that fails its schema changes nothing: say so in the log, the query and the current details. */
  const ignore = (signal: string, error: string) => {
    progress.ignored.push({ at: new Date().toISOString(), signal, error });
    if (progress.ignored.length > MAX_IGNORED) progress.ignored.shift();
    log.warn(`ignored an invalid ${signal} signal`, { error });
    setCurrentDetails(`${details}\n\n**ignored ${signal}**: ${error}`);
  };
  setHandler(phaseProgressQuery, () => progress);
  // Typed `unknown`: anyone with access to the namespace can send these, with any payload.
  setHandler(raiseBudgetSignal, (payload: unknown) => {
    const raise = parseSignal('raiseBudget', BudgetRaiseSchema, payload, RAISE_EXAMPLE);
    if (!raise.ok) return ignore('raiseBudget', raise.error);
    if (raise.value.phaseUsd !== undefined) progress.budget.phaseUsd = raise.value.phaseUsd;
    if (raise.value.studyUsd !== undefined) progress.budget.studyUsd = raise.value.studyUsd;
    log.info('budget raised', { ...raise.value });
  });
  setHandler(podReservedSignal, (payload: unknown) => {
    const r = parseSignal('podReserved', PodReservedSchema, payload, '{"model","gpuTypeId","costPerHr"}');
    if (!r.ok) return ignore('podReserved', r.error);
    // Only this phase's own sessions reserve pods for it.
    if (!phase.models.some((m) => m.repoId === r.value.model))
      return ignore('podReserved', `invalid podReserved (model ${r.value.model} is not in ${phaseId})`);
    progress.lockedGpuTypeId ??= r.value.gpuTypeId;
  });

  /** Why the next session does not fit, or null when it does. */
  const overBudget = (): string | null => {
    const need = progress.budget.sessionEstimateUsd;
    const phaseTotal = progress.spentUsd + progress.committedUsd + need;
    if (progress.budget.phaseUsd !== null && phaseTotal > progress.budget.phaseUsd) {
      return `phase: spent ${usd(progress.spentUsd)} + committed ${usd(progress.committedUsd)} + next session ${usd(need)} > phase budget ${usd(progress.budget.phaseUsd)}`;
    }
    const studyTotal = progress.studySpentUsd + phaseTotal;
    if (progress.budget.studyUsd !== null && studyTotal > progress.budget.studyUsd) {
      return `study: spent ${usd(progress.studySpentUsd + progress.spentUsd)} + committed ${usd(progress.committedUsd)} + next session ${usd(need)} > study budget ${usd(progress.budget.studyUsd)}`;
    }
    return null;
  };

  const waitForBudget = async (model: ModelSpec) => {
    for (let reason = overBudget(); reason; reason = overBudget()) {
      progress.waitingForBudget = {
        model: model.repoId,
        needUsd: progress.budget.sessionEstimateUsd,
        reason,
        since: new Date().toISOString(),
      };
      showDetails(
        `**waiting for budget** before ${model.repoId}: ${reason}. Send raiseBudget ${RAISE_EXAMPLE}, or cancel.`,
      );
      // Wakes on a raise (or on a session ending, which turns an estimate into a smaller real cost).
      const seen = JSON.stringify([progress.budget, progress.spentUsd, progress.committedUsd]);
      await condition(() => JSON.stringify([progress.budget, progress.spentUsd, progress.committedUsd]) !== seen);
    }
    progress.waitingForBudget = null;
  };

  // Before any session reserves a pod: the study's files, with the harness's own rules.
  await checkStudyInputs({ study });
  // Then the plan's checks (fit, context, dataset, consistency, budget); its estimates give the progress an ETA.
  // Workflows started before the preflight existed replay without it.
  if (patched('phase-preflight')) {
    progress.preflight = await preflightPhase({ study, phaseId, studySpentUsd: input.studySpentUsd });
    for (const c of progress.preflight.checks.filter((x) => x.verdict === 'warn'))
      log.warn('preflight warning', { check: c.id, summary: c.summary });
  }
  const sessions: PodSessionOutput[] = [];
  const failures: PhaseWorkflowOutput['failures'] = [];
  let costUsd = 0;
  const queue = phase.models.map((model, i) => ({ model, workflowId: childIds[i] ?? '' }));
  let firstSessionStarted = false;
  let firstSessionOver = false;

  const runSession = async (model: ModelSpec, workflowId: string, isFirst: boolean) => {
    await waitForBudget(model);
    const estimate = progress.budget.sessionEstimateUsd;
    progress.committedUsd += estimate;
    showDetails(`running ${model.repoId}; ${sessions.length + failures.length}/${phase.models.length} models finished`);
    try {
      const out = await executeChild(podSessionWorkflow, {
        workflowId,
        args: [
          {
            study,
            phaseId,
            model,
            phaseWorkflowId: info.workflowId,
            ...(progress.lockedGpuTypeId ? { requiredGpuTypeId: progress.lockedGpuTypeId } : {}),
          },
        ],
        // Cancel (not terminate) the session when this workflow closes, so its pod teardown still runs.
        parentClosePolicy: 'REQUEST_CANCEL',
        typedSearchAttributes: studyAttributes({ study: study.study, phase: phaseId, model: model.repoId }),
        staticSummary: `${model.repoId} (${phaseId})`,
      });
      sessions.push(out);
      costUsd += out.podCostUsd;
      progress.spentUsd += out.podCostUsd;
    } catch (err) {
      if (isCancellation(err)) throw err; // a cancelled phase stops; it does not carry on with the next model
      const message =
        err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
      log.error('pod session failed', { model: model.repoId, error: message });
      failures.push({ model: model.repoId, error: message });
      // A failed session's pod cost is not known here; its estimate stays counted as spent, to be safe.
      progress.spentUsd += estimate;
      costUsd += estimate;
    } finally {
      progress.committedUsd -= estimate;
      if (isFirst) firstSessionOver = true;
    }
  };

  const worker = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const isFirst = !firstSessionStarted;
      firstSessionStarted = true;
      // Same-GPU rule: later sessions start once the first one has a GPU type (or has ended without one).
      if (phase.requireSameGpuType && !isFirst)
        await condition(() => progress.lockedGpuTypeId !== null || firstSessionOver);
      await runSession(next.model, next.workflowId, isFirst);
    }
  };
  await Promise.all(Array.from({ length: Math.min(phase.maxConcurrentSessions, queue.length) }, worker));

  const runSubdirs = sessions.flatMap((s) => s.runs.map((r) => r.resultsSubdir));
  const summary = runSubdirs.length
    ? await summarizePhase({
        study: study.study,
        phase: phaseId,
        runSubdirs,
        costs: sessions.map((s) => ({ model: s.model, podCostUsd: s.podCostUsd })),
      })
    : null;
  if (!sessions.length) {
    // An ApplicationFailure fails the workflow; a plain Error would only fail (and endlessly retry) the task.
    throw ApplicationFailure.nonRetryable(
      `every model of ${phaseId} failed: ${failures.map((f) => `${f.model}: ${f.error}`).join('; ')}`,
      'PhaseFailed',
    );
  }
  log.info('phase finished', { phase: phaseId, costUsd, failures: failures.length });
  return { phaseId, sessions, summary, failures, costUsd };
}
