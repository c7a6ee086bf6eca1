import {
  ActivityFailure,
  ApplicationFailure,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  sleep,
  TimeoutFailure,
  workflowInfo,
} from '@temporalio/workflow';
import { RetryState } from '@temporalio/common';
import { podName as formatPodName } from '../../shared/constants.js';
import { podCostUsd, podHours } from '../../shared/cost.js';
import { ErrorTypes } from '../../shared/errors.js';
import { describeGpuHolder } from '../../shared/gpu-lock.js';
import type { CandidateAttempt, PodRef, ReservePodOutput } from '../../activities/runpod/index.js';
import type { PodEndpoint } from '../../activities/ssh/index.js';
import type { PodSessionInput, PodSessionProgress } from '../types.js';
import type { ModelSpec, Phase, RunPodTarget, SshHostTarget, Study } from '../../study/schema.js';
import { podReservedSignal } from '../messages.js';
import { call, podStep, quick, reserveStep, teardownStep } from './options.js';
import { releaseGpuLock, sweepPodsByName, terminateHeldPod, type Compensations, type PodLedger } from './teardown.js';
import type { podSessionWorkflow, StageReporter } from './workflow.js';

export interface ReserveInput {
  /** The session's own input: a long wait for the GPU goes on in a fresh run with it. */
  session: PodSessionInput;
  study: Study;
  model: ModelSpec;
  /** The phase's target, already narrowed to the GPU type the phase is locked to. */
  target: Phase['target'];
  /** The first 8 hex digits of the run id: pod names and the GPU lock belong to this run. */
  token: string;
  /** How many pods this session lost and replaced before this reservation (0 for the first): it names the pods. */
  replacement: number;
  modelSlug: string;
  progress: PodSessionProgress;
  stage: StageReporter;
  compensations: Compensations;
  pods: PodLedger;
  /** Every candidate tried in every reserve round, and why each failed (the manifest's candidatesTried). */
  attempts: CandidateAttempt[];
  /**
   * Called once the workspace is this session's (the pod accepts SSH, or the host's GPU is locked), before anything
   * else can fail: from then on its logs and processes are the session's to collect and stop.
   */
  onWorkspace: (endpoint: PodEndpoint) => void;
}

export interface Reserved {
  endpoint: PodEndpoint;
  gpuCount: number;
  /** On the team's shared server the session owns one GPU; vLLM and the energy meters see only that one. */
  gpuIndices: number[] | null;
  /** When the GPU lock was taken and how long the wait was (the team's server only). */
  timings: Record<string, string | number>;
  /** Drops the teardown's termination of this pod: the session terminated it itself (a lost pod, replaced). */
  dropPodTermination: () => void;
}

/** The phase's same-GPU rule: only candidates of the GPU type the phase is locked to remain. */
export function withRequiredGpuType(target: Phase['target'], gpuTypeId: string | undefined): Phase['target'] {
  if (!gpuTypeId || target.kind !== 'runpod') return target;
  const candidates = target.candidates.filter((c) => c.gpuTypeId === gpuTypeId);
  if (!candidates.length) {
    throw ApplicationFailure.nonRetryable(
      `the phase runs on ${gpuTypeId}, which no candidate of this phase offers`,
      'GpuTypeMismatch',
    );
  }
  return { ...target, candidates };
}

/** A GPU for the session: a rented pod that accepts SSH, or the team server's GPU under this run's lock. */
export function reserve(input: ReserveInput): Promise<Reserved> {
  const { target } = input;
  return target.kind === 'runpod' ? reservePod(input, target) : lockHostGpu(input, target);
}

/** The reason a readiness wait gave up on its pod (ERROR, vanished, portless, sshd refusing), or null for other failures. */
function notReadyReason(err: unknown): string | null {
  if (!(err instanceof ActivityFailure) || !(err.cause instanceof ApplicationFailure)) return null;
  const type = err.cause.type;
  return type === ErrorTypes.PodNotReady || type === ErrorTypes.PodGone ? err.cause.message : null;
}

/**
 * For a reserve that ran out of its schedule-to-close time (the deadline): what its last attempt saw (the failure,
 * else the candidates its last heartbeat listed), else null for any other failure.
 */
function scheduleToCloseTimeout(err: unknown): string | null {
  if (!(err instanceof ActivityFailure)) return null;
  // The server either stops retrying because the next backoff would pass the deadline (the last attempt's failure,
  // retry state TIMEOUT) or times out a running attempt or backoff (a TimeoutFailure, maybe with a last heartbeat).
  if (err.retryState === RetryState.TIMEOUT && !(err.cause instanceof TimeoutFailure)) {
    return err.cause?.message ?? err.message;
  }
  if (!(err.cause instanceof TimeoutFailure)) return null;
  const beat = err.cause.lastHeartbeatDetails as { tried?: unknown } | undefined;
  const tried = typeof beat?.tried === 'string' && beat.tried ? `last attempt: ${beat.tried}` : null;
  return err.cause.cause?.message ?? tried ?? err.cause.message;
}

/**
 * Reserve -> ready, in rounds: a pod that never becomes reachable is terminated (confirmed) and the next candidate
 * gets a round of its own. The deadline covers every reserve attempt and every readiness wait.
 */
async function reservePod(input: ReserveInput, target: RunPodTarget): Promise<Reserved> {
  const { study, model, progress, stage, compensations, pods, attempts } = input;
  const { reservation } = target;
  const reservationFailed = (message: string) =>
    ApplicationFailure.create({
      type: ErrorTypes.ReservationFailed,
      message: `${message}. Candidates tried: ${attempts.map((a) => `#${a.index} ${a.outcome} (${a.detail})`).join('; ') || 'none'}`,
      nonRetryable: true,
      details: [attempts],
    });
  const deadlineAt = Date.now() + reservation.deadlineMs;
  const notReady = new Set<number>();
  // Pod names of every reserve round, for the by-name sweep at teardown.
  const podNames: string[] = [];
  let ready: { pod: PodRef; endpoint: PodEndpoint; dropTermination: () => void } | null = null;
  for (let round = 0; !ready; round++) {
    // Once every candidate has had a pod fail readiness, all of them are eligible again (a new host each time).
    if (notReady.size >= target.candidates.length) notReady.clear();
    const remainingMs = deadlineAt - Date.now();
    if (remainingMs <= 0) {
      throw reservationFailed(`no usable pod within the reservation deadline of ${reservation.deadlineMs} ms`);
    }
    // A fresh name per round: a retry within the round adopts its own pod; a later round never adopts the
    // pod it just gave up on.
    const podName = formatPodName({
      study: study.study,
      phase: input.session.phaseId,
      modelSlug: input.modelSlug,
      // A replacement's pods get names of their own: its reserve must never adopt the pod that was lost.
      token: input.replacement ? `${input.token}-p${input.replacement}-r${round}` : `${input.token}-r${round}`,
    });
    if (!podNames.length) compensations.push(sweepPodsByName({ podNames, pods, attempts }));
    podNames.push(podName);
    const skipped = [...notReady].map((i) => `#${i}`).join(', ');
    stage('reserving', round ? `round ${round + 1}${skipped ? `, skipping ${skipped} (not ready)` : ''}` : '');
    let reserved: ReservePodOutput;
    try {
      reserved = await call(
        'reservePod',
        reserveStep(reservation, remainingMs),
        `reserve a pod for ${model.repoId}: round ${round + 1}, ${target.candidates.length - notReady.size} of ` +
          `${target.candidates.length} GPU candidates${skipped ? ` (${skipped} skipped: pod not ready)` : ''}`,
        { podName, target, excludeCandidates: [...notReady], round },
      );
    } catch (err) {
      const timedOut = scheduleToCloseTimeout(err);
      if (timedOut !== null) {
        throw reservationFailed(`no GPU pod reserved within the reservation deadline: ${timedOut}`);
      }
      throw err;
    }
    const current = reserved.pod;
    pods.held = current;
    const dropTermination = compensations.push(terminateHeldPod({ pods, progress }));
    attempts.push(...reserved.attempts);
    Object.assign(progress, {
      podId: current.podId,
      gpu: `${current.candidate.gpuCount}x ${current.candidate.gpuTypeId} (${current.dataCenterId ?? 'any DC'}, ${current.cloud})`,
      costPerHr: current.costPerHr,
      podCreatedAt: current.createdAt,
    });
    stage('waiting-for-pod', current.podId);
    try {
      const ep = await call(
        'waitForPodReady',
        { ...podStep(target.podReadyTimeoutMs + 120_000, 3) },
        `wait for pod ${current.podId} (candidate #${current.candidateIndex}) to accept SSH`,
        { podId: current.podId, timeoutMs: target.podReadyTimeoutMs, defaultWorkspaceDir: target.volumeMountPath },
      );
      ready = { pod: current, endpoint: ep, dropTermination };
    } catch (err) {
      const reason = notReadyReason(err);
      if (reason === null) throw err;
      attempts.push({
        index: current.candidateIndex,
        candidate: current.candidate,
        outcome: 'not-ready',
        detail: `${reason}; pod terminated`,
        round,
        podId: current.podId,
        at: new Date().toISOString(),
      });
      log.warn('pod not ready; terminating it and trying the next candidate', { podId: current.podId, reason });
      stage('reserving', `pod ${current.podId} not ready (${reason}); terminating it`);
      const t = await call('terminatePod', teardownStep, `terminate unready pod ${current.podId}`, {
        podId: current.podId,
      });
      // It billed from create to termination too.
      const billed = { costPerHr: current.costPerHr, createdAt: current.createdAt, endedAt: t.terminatedAt };
      pods.discarded.costUsd += podCostUsd(billed);
      pods.discarded.hours += podHours(billed);
      pods.held = null;
      dropTermination();
      Object.assign(progress, { podId: null, gpu: null, costPerHr: 0, podCreatedAt: null });
      notReady.add(current.candidateIndex);
      if (attempts.filter((a) => a.outcome === 'not-ready').length >= reservation.maxUnreadyPods) {
        throw reservationFailed(`${reservation.maxUnreadyPods} pods failed readiness; giving up`);
      }
    }
  }
  input.onWorkspace(ready.endpoint);
  const { pod } = ready;
  pods.held = pod;
  if (input.session.phaseWorkflowId) {
    await getExternalWorkflowHandle(input.session.phaseWorkflowId).signal(podReservedSignal, {
      model: model.repoId,
      gpuTypeId: pod.candidate.gpuTypeId,
      costPerHr: pod.costPerHr,
    });
  }
  return {
    endpoint: ready.endpoint,
    gpuCount: pod.candidate.gpuCount,
    gpuIndices: null,
    timings: {},
    dropPodTermination: ready.dropTermination,
  };
}

/**
 * The team's server: the GPU is the session's alone before anything runs on the host. A held GPU: wait on a timer and
 * ask again; a wait of days goes on in a fresh run.
 */
async function lockHostGpu(input: ReserveInput, target: SshHostTarget): Promise<Reserved> {
  const { study, model, progress, stage, compensations } = input;
  const info = workflowInfo();
  progress.gpu = `GPU ${target.gpuIndex} on ${target.host}`;
  const endpoint: PodEndpoint = {
    // The team's server has a configured key, checked from the first connection (no trust on first use).
    ssh: { host: target.host, port: target.port, username: target.username, hostKeySha256: target.hostKeySha256 },
    workspaceDir: target.workspaceDir,
  };
  const waitFrom = Date.now();
  for (;;) {
    // From here until the holder is known, a lock may be this run's (an acquire in flight, or its answer lost):
    // teardown releases it.
    const dropRelease = compensations.push(
      releaseGpuLock({
        endpoint,
        host: target.host,
        gpuIndex: target.gpuIndex,
        lockDir: target.gpuLock.dir,
        owner: { workflowId: info.workflowId, runId: info.runId },
      }),
    );
    const lock = await call(
      'acquireGpuLock',
      quick,
      `lock GPU ${target.gpuIndex} on ${target.host} for ${model.repoId}`,
      {
        endpoint,
        gpuIndex: target.gpuIndex,
        lock: { dir: target.gpuLock.dir, staleAfterMs: target.gpuLock.staleAfterMs },
        owner: {
          study: study.study,
          phase: input.session.phaseId,
          model: model.repoId,
          workflowId: info.workflowId,
          runId: info.runId,
        },
      },
    );
    if (lock.acquired) {
      progress.gpuHolder = null;
      progress.gpu = `GPU ${lock.gpu.index} (${lock.gpu.name}) on ${target.host}`;
      if (lock.takenOver) {
        log.warn('took over the GPU lock of a holder that is gone', {
          reason: lock.takenOver.reason,
          previousOwner: describeGpuHolder(lock.takenOver.holder),
        });
      }
      break;
    }
    // Someone else's: nothing of this run to release while it waits.
    dropRelease();
    progress.gpuHolder = lock.holder;
    stage(
      'waiting-for-gpu',
      `GPU ${target.gpuIndex} on ${target.host} is held by ${describeGpuHolder(lock.holder)}; ` +
        `asking again every ${Math.round(target.gpuLock.pollIntervalMs / 1000)} s`,
    );
    await sleep(target.gpuLock.pollIntervalMs);
    // A wait of days must not outgrow the history: go on in a fresh run (nothing is held or created yet).
    if (workflowInfo().continueAsNewSuggested) await continueAsNew<typeof podSessionWorkflow>(input.session);
  }
  // The GPU is held: the workspace's logs and processes are this session's now (not while it only waited).
  input.onWorkspace(endpoint);
  return {
    endpoint,
    gpuCount: 1,
    gpuIndices: [target.gpuIndex],
    timings: { gpuLockAcquiredAt: new Date().toISOString(), gpuLockWaitMs: Date.now() - waitFrom },
    dropPodTermination: () => undefined,
  };
}
