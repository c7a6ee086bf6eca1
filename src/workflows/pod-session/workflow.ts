import {
  ApplicationFailure,
  CancellationScope,
  ContinueAsNew,
  log,
  patched,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { modelSlug } from '../../shared/constants.js';
import { podCostUsd, podHours } from '../../shared/cost.js';
import { ErrorTypes } from '../../shared/errors.js';
import type { PodReplacement } from '../../activities/results/index.js';
import type { CandidateAttempt } from '../../activities/runpod/index.js';
import type { PodSessionInput, PodSessionOutput, PodSessionProgress, PodSessionRun, SessionStage } from '../types.js';
import { phaseSettings } from '../../study/schema.js';
import { validateWorkflowInput } from '../../study/validate.js';
import { sessionProgressQuery } from '../messages.js';
import { workOnPod } from './on-pod.js';
import { call, quick, teardownStep } from './options.js';
import { watched } from './pod-loss.js';
import { reserve, withRequiredGpuType } from './reserve.js';
import { collectLogs, Compensations, stopHostWork, type PodLedger } from './teardown.js';

/** The stages in which a prompt strategy is under way (running, its server restarting, being brought home). */
const RUN_STAGES: SessionStage[] = ['inference', 'starting-vllm', 'transferring'];

/** Sets the session's stage (the progress query) and the workflow's current details (the Web UI). */
export type StageReporter = (stage: SessionStage, detail?: string) => void;

/** `20261128T120000` from the workflow's start time: sortable run ids, deterministic on replay. */
function stamp(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, '');
}

/**
 * One model on one pod: reserve -> prepare -> download -> serve -> for each prompt strategy run and bring home ->
 * tear down (non-cancellable: collect logs, stop the work, release the GPU, terminate the pod).
 */
export async function podSessionWorkflow(input: PodSessionInput): Promise<PodSessionOutput> {
  // Untrusted: anyone may start a workflow. Only a valid study, one of its phases and one of that phase's models.
  const { study, model } = validateWorkflowInput({ study: input.study, phaseId: input.phaseId, model: input.model });
  const { phaseId } = input;
  const { phase, vllm, harness } = phaseSettings(study, phaseId);
  const info = workflowInfo();
  const slug = modelSlug(model.repoId);
  // The run id's first 8 hex digits tie the pod name to this run: a retried reserve adopts its own pod, and no
  // other run (not even a rerun of the same study/phase/model) can.
  const token = info.runId.replace(/-/g, '').slice(0, 8);
  const runBase = `${stamp(info.startTime)}-${token}`;

  const progress: PodSessionProgress = {
    model: model.repoId,
    stage: 'queued',
    prompt: null,
    podId: null,
    gpu: null,
    costPerHr: 0,
    podCreatedAt: null,
    podTerminatedAt: null,
    hostKeySha256: null,
    runsDone: 0,
    runsTotal: study.prompts.length,
    error: null,
  };
  setHandler(sessionProgressQuery, () => progress);
  const stage: StageReporter = (s, detail = '') => {
    progress.stage = s;
    setCurrentDetails(`**${s}** ${model.repoId}${detail ? ` — ${detail}` : ''}`);
  };

  // What to undo at the end, pushed as each resource is acquired (teardown.ts).
  const compensations = new Compensations();
  const pods: PodLedger = { held: null, discarded: { costUsd: 0, hours: 0 }, keep: null };
  const attempts: CandidateAttempt[] = [];
  // Bytes brought home so far, for the worker's per-session transfer limit (TRANSFER_MAX_SESSION_BYTES).
  let sessionBytes = 0;
  const runs: PodSessionRun[] = [];
  const timings: Record<string, string | number | null> = { sessionStartedAt: info.startTime.toISOString() };
  /** Every pod of the session, each from create to termination (or now, while the held one runs). */
  const podBill = () => {
    const held = pods.held;
    if (!held) return { ...pods.discarded };
    // A kept pod stops its compute at the stop (its volume bills on, at a rate the pod's price does not show).
    const endedAt = progress.podTerminatedAt ?? progress.podKept?.at ?? new Date().toISOString();
    const billed = { costPerHr: held.costPerHr, createdAt: held.createdAt, endedAt };
    return { costUsd: pods.discarded.costUsd + podCostUsd(billed), hours: pods.discarded.hours + podHours(billed) };
  };

  try {
    const replacements: PodReplacement[] = [];
    progress.podReplacements = replacements;
    let target = withRequiredGpuType(phase.target, input.requiredGpuTypeId);
    for (;;) {
      // Reserve: a pod that accepts SSH, or the team server's GPU under this run's lock.
      const dropOnLoss: (() => void)[] = [];
      const reserved = await reserve({
        session: input,
        study,
        model,
        target,
        token,
        replacement: replacements.length,
        modelSlug: slug,
        progress,
        stage,
        compensations,
        pods,
        attempts,
        onWorkspace: (endpoint) => {
          if (target.kind === 'ssh-host') compensations.push(stopHostWork({ endpoint, host: target.host }));
          const logsDir = `${study.study}/${phaseId}/${slug}/logs/${runBase}${replacements.length ? `-p${replacements.length}` : ''}`;
          dropOnLoss.push(
            compensations.push(collectLogs({ endpoint, resultsSubdir: logsDir, sessionBytes: () => sessionBytes })),
          );
        },
      });
      const lastReplacement = replacements.at(-1);
      if (lastReplacement) lastReplacement.newPodId = pods.held?.podId ?? null;
      Object.assign(timings, reserved.timings);
      timings.podReadyAt = new Date().toISOString();
      progress.hostKeySha256 = reserved.endpoint.ssh.hostKeySha256 ?? null;

      const work = () =>
        workOnPod({
          study,
          phaseId,
          model,
          modelSlug: slug,
          vllm,
          harness,
          target,
          reserved,
          progress,
          stage,
          pods,
          attempts,
          timings,
          runBase: replacements.length ? `${runBase}-p${replacements.length}` : runBase,
          replacements,
          runs,
          sessionBytes: () => sessionBytes,
          onTransferred: (bytes) => {
            sessionBytes += bytes;
          },
          podCostUsd: () => podBill().costUsd,
        });
      // A rented pod is watched while the session works on it, and a lost one is replaced (workflows started
      // before this existed replay without it).
      const held = pods.held;
      if (target.kind !== 'runpod' || !held || !patched('pod-replacement')) {
        await work();
        break;
      }
      const outcome = await watched({ podId: held.podId, endpoint: reserved.endpoint, work });
      if (outcome.kind === 'done') break;

      // The pod is lost: terminate it (confirmed), count its cost, and carry on with the strategies still to do.
      const { maxPodReplacements } = target.reservation;
      if (replacements.length >= maxPodReplacements) {
        throw ApplicationFailure.create({
          type: ErrorTypes.PodLost,
          message:
            `${outcome.reason}; the session already replaced ${replacements.length} pod(s) ` +
            `(reservation.maxPodReplacements ${maxPodReplacements}). Runs brought home: ${runs.length} of ${study.prompts.length}`,
          nonRetryable: true,
        });
      }
      // A strategy under way when the pod went: its partial results went with it.
      const running = progress.prompt;
      const interruptedPrompt =
        running && !runs.some((r) => r.prompt === running) && RUN_STAGES.includes(progress.stage) ? running : null;
      stage('replacing-pod', outcome.reason);
      // Whatever was waiting on the lost pod went with it: nothing to keep, and no record to fetch it by.
      if (pods.keep) {
        pods.keep = null;
        await call('removeKeptResults', quick, `remove the record of pod ${held.podId}: the pod is lost`, {
          study: study.study,
          podId: held.podId,
        });
      }
      log.warn('pod lost; replacing it', { podId: held.podId, reason: outcome.reason });
      const t = await call('terminatePod', teardownStep, `terminate lost pod ${held.podId}`, { podId: held.podId });
      const billed = { costPerHr: held.costPerHr, createdAt: held.createdAt, endedAt: t.terminatedAt };
      pods.discarded.costUsd += podCostUsd(billed);
      pods.discarded.hours += podHours(billed);
      pods.held = null;
      reserved.dropPodTermination();
      for (const drop of dropOnLoss) drop();
      replacements.push({
        at: t.terminatedAt,
        lostPodId: held.podId,
        reason: outcome.reason,
        interruptedPrompt,
        lostPodCostUsd: Math.round(podCostUsd(billed) * 10_000) / 10_000,
        newPodId: null,
      });
      Object.assign(progress, { podId: null, gpu: null, costPerHr: 0, podCreatedAt: null, hostKeySha256: null });
      // A phase that keeps its runs on one GPU type gets a replacement of the lost pod's type; otherwise the candidates
      // are tried in their order again.
      if (phase.requireSameGpuType) target = withRequiredGpuType(target, held.candidate.gpuTypeId);
    }
    stage('done');
  } catch (err) {
    if (!(err instanceof ContinueAsNew))
      progress.error =
        err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
    throw err;
  } finally {
    // Tear down: runs on success, failure and cancellation (not on terminate: the reaper covers that).
    await CancellationScope.nonCancellable(async () => {
      const failed = progress.stage !== 'done';
      await compensations.runAll();
      progress.stage = failed ? 'failed' : 'done';
      setCurrentDetails(
        `**${progress.stage}** ${model.repoId}${pods.held ? `; pod ${pods.held.podId} terminated` : ''}`,
      );
    });
  }
  const bill = podBill();
  return { model: model.repoId, runs, podCostUsd: bill.costUsd, podHours: bill.hours };
}
