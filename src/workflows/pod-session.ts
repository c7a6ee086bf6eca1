import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  ContinueAsNew,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  TimeoutFailure,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import { RetryState } from '@temporalio/common';
import type { Activities } from '../activities/index.js';
import { modelSlug, podName as formatPodName } from '../shared/constants.js';
import { ErrorTypes, NON_RETRYABLE_ERROR_TYPES } from '../shared/errors.js';
import { describeGpuHolder } from '../shared/gpu-lock.js';
import type {
  CandidateAttempt,
  PodEndpoint,
  PodRef,
  PodSessionInput,
  PodSessionOutput,
  PodSessionProgress,
  PodSessionRun,
  ReservePodOutput,
  RunInferenceOutput,
  RunInterruption,
  RunManifest,
  SessionStage,
  SimulatedAnswers,
} from '../shared/types.js';
import { phaseSettings, type Phase, type PromptStrategy, type Study } from '../study/schema.js';
import { podReservedSignal, sessionProgressQuery } from './messages.js';
import { validateWorkflowInput } from '../study/validate.js';

const nonRetryableErrorTypes = NON_RETRYABLE_ERROR_TYPES;

/** The simulated vLLM's answer profiles for one model, with the pod's paths (sandbox studies only). */
function simulatedAnswersFor(
  study: Study,
  repoId: string,
  remote: { datasetPath: string; promptsDir: string },
): SimulatedAnswers | undefined {
  const byPrompt = study.simulated ? study.simulation?.answerProfiles[repoId] : undefined;
  if (!byPrompt || !study.simulation) return undefined;
  return {
    datasetPath: remote.datasetPath,
    profiles: study.prompts.flatMap((p) => {
      const profile = byPrompt[p.name];
      return profile ? [{ templatePath: `${remote.promptsDir}/${p.name}.txt`, ...profile }] : [];
    }),
    sharedLatent: study.simulation.sharedLatent,
  };
}

/** One proxy; each call passes its own options (timeouts, retries) and a summary the Web UI shows. */
const acts = proxyActivities<Activities>({ startToCloseTimeout: '10m' });

function call<K extends keyof Activities>(
  name: K,
  options: ActivityOptions,
  summary: string,
  input: Parameters<Activities[K]>[0],
): ReturnType<Activities[K]> {
  const fn = acts[name] as unknown as {
    executeWithOptions(o: ActivityOptions, a: [typeof input]): ReturnType<Activities[K]>;
  };
  return fn.executeWithOptions({ ...options, summary }, [input]);
}

const quick: ActivityOptions = {
  startToCloseTimeout: '2m',
  retry: { initialInterval: '2s', maximumInterval: '30s', maximumAttempts: 5, nonRetryableErrorTypes },
};
const podStep = (startToCloseMs: number, maximumAttempts: number): ActivityOptions => ({
  startToCloseTimeout: startToCloseMs,
  heartbeatTimeout: '2m',
  retry: {
    initialInterval: '5s',
    backoffCoefficient: 2,
    maximumInterval: '2m',
    maximumAttempts,
    nonRetryableErrorTypes,
  },
});
// Teardown must outlast any outage: many attempts, capped backoff.
const teardown: ActivityOptions = {
  startToCloseTimeout: '2m',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 100 },
};

/** The phase's same-GPU rule: only candidates of the GPU type the phase is locked to remain. */
function withRequiredGpuType(target: Phase['target'], gpuTypeId: string | undefined): Phase['target'] {
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
 * A runInference failure the workflow resolves by the study's interruption policy: the model server died, or the
 * harness ended unfinished (died, failed, energy record missing). Its cause, message and where the run stood; else
 * null (other failures end the session).
 */
function runInterruption(
  err: unknown,
): { cause: RunInterruption['cause']; message: string; done: number | null; total: number | null } | null {
  if (!(err instanceof ActivityFailure) || !(err.cause instanceof ApplicationFailure)) return null;
  const type = err.cause.type;
  if (type !== ErrorTypes.ModelServerGone && type !== ErrorTypes.RunInterrupted) return null;
  const at = err.cause.details?.[0] as
    { done?: number | null; total?: number | null; cause?: RunInterruption['cause'] } | undefined;
  return {
    cause: type === ErrorTypes.ModelServerGone ? 'server-gone' : (at?.cause ?? 'harness-failed'),
    message: err.cause.message,
    done: at?.done ?? null,
    total: at?.total ?? null,
  };
}

/** `20261128T120000` from the workflow's start time: sortable run ids, deterministic on replay. */
function stamp(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, '');
}

/**
 * One model on one pod: reserve -> ready -> prepare -> download -> vLLM -> per prompt (metered inference,
 * transfer, manifest) -> finally (non-cancellable) collect logs and terminate the pod.
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
  const stage = (s: SessionStage, detail = '') => {
    progress.stage = s;
    setCurrentDetails(`**${s}** ${model.repoId}${detail ? ` — ${detail}` : ''}`);
  };

  let pod: PodRef | null = null;
  // Every candidate tried in every reserve round, and why each failed (the manifest's candidatesTried).
  const attempts: CandidateAttempt[] = [];
  // Pod names of every reserve round, for the by-name sweep in `finally`.
  const podNames: string[] = [];
  // Cost of pods that failed readiness and were terminated (they bill from create to termination too).
  let discardedPodsUsd = 0;
  let discardedPodHours = 0;
  let endpoint: PodEndpoint | null = null;
  // The team's server: whether this session may hold its GPU's lock. 'pending' while an acquire is (or may have been)
  // in flight, so `finally` releases a lock whose acquire the session never saw complete.
  let gpuLock: 'none' | 'pending' | 'held' = 'none';
  // Bytes brought home so far, for the worker's per-session transfer limit (TRANSFER_MAX_SESSION_BYTES).
  let sessionBytes = 0;
  const runs: PodSessionRun[] = [];
  const timings: Record<string, string | number | null> = { sessionStartedAt: info.startTime.toISOString() };
  const reservationFailed = (message: string) =>
    ApplicationFailure.create({
      type: ErrorTypes.ReservationFailed,
      message: `${message}. Candidates tried: ${attempts.map((a) => `#${a.index} ${a.outcome} (${a.detail})`).join('; ') || 'none'}`,
      nonRetryable: true,
      details: [attempts],
    });
  const podCostUsd = () =>
    discardedPodsUsd +
    (pod
      ? (pod.costPerHr *
          (Date.parse(progress.podTerminatedAt ?? new Date().toISOString()) - Date.parse(pod.createdAt))) /
        3_600_000
      : 0);

  try {
    const target = withRequiredGpuType(phase.target, input.requiredGpuTypeId);
    let gpuCount = 1;
    // On the team's shared server the session owns one GPU; vLLM and the energy meters see only that one.
    let gpuIndices: number[] | null = null;
    if (target.kind === 'runpod') {
      // Reserve -> ready, in rounds: a pod that never becomes reachable is terminated (confirmed) and the next
      // candidate gets a round of its own. The deadline covers every reserve attempt and every readiness wait.
      const reservation = target.reservation;
      const deadlineAt = Date.now() + reservation.deadlineMs;
      const notReady = new Set<number>();
      let ready: { pod: PodRef; endpoint: PodEndpoint } | null = null;
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
          phase: phaseId,
          modelSlug: slug,
          token: `${token}-r${round}`,
        });
        podNames.push(podName);
        const skipped = [...notReady].map((i) => `#${i}`).join(', ');
        stage('reserving', round ? `round ${round + 1}${skipped ? `, skipping ${skipped} (not ready)` : ''}` : '');
        let reserved: ReservePodOutput;
        try {
          reserved = await call(
            'reservePod',
            {
              startToCloseTimeout: '10m',
              heartbeatTimeout: '2m',
              scheduleToCloseTimeout: remainingMs,
              retry: {
                initialInterval: reservation.initialIntervalMs,
                backoffCoefficient: 2,
                maximumInterval: reservation.maximumIntervalMs,
                // No attempt limit: the schedule-to-close deadline ends the retries.
                nonRetryableErrorTypes,
              },
            },
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
        pod = current;
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
          ready = { pod: current, endpoint: ep };
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
          const t = await call('terminatePod', teardown, `terminate unready pod ${current.podId}`, {
            podId: current.podId,
          });
          const hours = (Date.parse(t.terminatedAt) - Date.parse(current.createdAt)) / 3_600_000;
          discardedPodsUsd += current.costPerHr * hours;
          discardedPodHours += hours;
          pod = null;
          Object.assign(progress, { podId: null, gpu: null, costPerHr: 0, podCreatedAt: null });
          notReady.add(current.candidateIndex);
          if (attempts.filter((a) => a.outcome === 'not-ready').length >= reservation.maxUnreadyPods) {
            throw reservationFailed(`${reservation.maxUnreadyPods} pods failed readiness; giving up`);
          }
        }
      }
      endpoint = ready.endpoint;
      pod = ready.pod;
      if (input.phaseWorkflowId) {
        await getExternalWorkflowHandle(input.phaseWorkflowId).signal(podReservedSignal, {
          model: model.repoId,
          gpuTypeId: pod.candidate.gpuTypeId,
          costPerHr: pod.costPerHr,
        });
      }
      gpuCount = pod.candidate.gpuCount;
    } else {
      progress.gpu = `GPU ${target.gpuIndex} on ${target.host}`;
      gpuIndices = [target.gpuIndex];
      const hostEndpoint: PodEndpoint = {
        // The team's server has a configured key, checked from the first connection (no trust on first use).
        ssh: { host: target.host, port: target.port, username: target.username, hostKeySha256: target.hostKeySha256 },
        workspaceDir: target.workspaceDir,
      };
      endpoint = hostEndpoint;
      // The GPU is the session's alone before anything runs on the host. A held GPU: wait on a timer and ask again.
      const waitFrom = Date.now();
      for (;;) {
        gpuLock = 'pending';
        const lock = await call(
          'acquireGpuLock',
          quick,
          `lock GPU ${target.gpuIndex} on ${target.host} for ${model.repoId}`,
          {
            endpoint: hostEndpoint,
            gpuIndex: target.gpuIndex,
            lock: { dir: target.gpuLock.dir, staleAfterMs: target.gpuLock.staleAfterMs },
            owner: {
              study: study.study,
              phase: phaseId,
              model: model.repoId,
              workflowId: info.workflowId,
              runId: info.runId,
            },
          },
        );
        if (lock.acquired) {
          gpuLock = 'held';
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
        gpuLock = 'none';
        progress.gpuHolder = lock.holder;
        stage(
          'waiting-for-gpu',
          `GPU ${target.gpuIndex} on ${target.host} is held by ${describeGpuHolder(lock.holder)}; ` +
            `asking again every ${Math.round(target.gpuLock.pollIntervalMs / 1000)} s`,
        );
        await sleep(target.gpuLock.pollIntervalMs);
        // A wait of days must not outgrow the history: go on in a fresh run (nothing is held or created yet).
        if (workflowInfo().continueAsNewSuggested) await continueAsNew<typeof podSessionWorkflow>(input);
      }
      timings.gpuLockAcquiredAt = new Date().toISOString();
      timings.gpuLockWaitMs = Date.now() - waitFrom;
    }
    timings.podReadyAt = new Date().toISOString();
    const ep = endpoint;
    progress.hostKeySha256 = ep.ssh.hostKeySha256 ?? null;

    stage('preparing');
    const prepared = await call(
      'preparePod',
      { ...quick, startToCloseTimeout: '60m' },
      `upload harness, dataset and prompts; ensure vLLM ${vllm.version}`,
      {
        endpoint: ep,
        datasetPath: study.datasetPath,
        prompts: study.prompts,
        vllmVersion: vllm.version,
        // The dead-man's switch: a rented pod stops itself when this workflow stops touching its heartbeat file.
        ...(target.kind === 'runpod' && target.watchdog.enabled
          ? {
              watchdog: {
                podId: pod?.podId ?? null,
                staleAfterMs: target.watchdog.staleAfterMs,
                checkIntervalMs: target.watchdog.checkIntervalMs,
                selfStop: target.watchdog.selfStop,
              },
            }
          : {}),
      },
    );
    if (prepared.watchdog?.stopWith === 'none' && target.kind === 'runpod' && target.watchdog.selfStop !== 'none') {
      log.warn('the pod watchdog can end the work but not stop the pod', { note: prepared.watchdog.note });
    }

    stage('downloading', `${model.repoId}@${model.revision}`);
    // The Hub's file list, fetched once: the download is pinned to its commit and verified against it.
    const expected = await call(
      'fetchModelMetadata',
      quick,
      `fetch the Hub's file list of ${model.repoId}@${model.revision}`,
      { repoId: model.repoId, revision: model.revision },
    );
    const download = await call(
      'downloadModel',
      podStep(6 * 3_600_000, 5),
      `download ${model.repoId}@${expected.commitSha.slice(0, 12)} (${(expected.totalBytes / 2 ** 30).toFixed(1)} GiB)`,
      {
        endpoint: ep,
        repoId: model.repoId,
        revision: model.revision,
        expected,
        ...(study.download.stallTimeoutMs ? { stallTimeoutMs: study.download.stallTimeoutMs } : {}),
        verifySha256: study.download.verifySha256,
      },
    );
    timings.downloadMs = download.durationMs;

    stage('starting-vllm');
    const tensorParallelSize = vllm.tensorParallelSize ?? gpuCount;
    const simulatedAnswers = simulatedAnswersFor(study, model.repoId, prepared.remote);
    // An ensure step: a healthy server is reused, a dead one is started again.
    const startServer = (why: string) =>
      call(
        'startVllm',
        podStep(vllm.startupTimeoutMs + 300_000, 4),
        `${why} vLLM ${vllm.version} for ${model.repoId}`,
        {
          endpoint: ep,
          modelDir: download.modelDir,
          servedModelName: model.repoId,
          vllm,
          tensorParallelSize,
          weightBytes: download.totalBytes,
          ...(model.reasoningParser ? { reasoningParser: model.reasoningParser } : {}),
          ...(gpuIndices ? { gpuIndices } : {}),
          ...(simulatedAnswers ? { simulatedAnswers } : {}),
        },
      );
    let server = await startServer('start');
    timings.vllmLoadMs = server.loadTimeMs;
    /** Runs a prompt strategy under `runId` (the activity re-attaches to a harness already running it). */
    const runInference = (runId: string, prompt: PromptStrategy, resume: boolean) =>
      call(
        'runInference',
        podStep(48 * 3_600_000, 5),
        `metered inference: ${model.repoId}, ${prompt.name} (${runId})`,
        {
          endpoint: ep,
          spec: {
            schemaVersion: 1,
            runId,
            baseUrl: server.baseUrl,
            servedModelName: model.repoId,
            datasetPath: prepared.remote.datasetPath,
            promptTemplatePath: `${prepared.remote.promptsDir}/${prompt.name}.txt`,
            fewShotPath: prompt.fewShotExamplesPath
              ? `${prepared.remote.promptsDir}/${prompt.name}.examples.jsonl`
              : null,
            sampling: model.sampling,
            concurrency: harness.concurrency,
            thinking: model.thinking,
            codecarbon: study.codecarbon,
            baselineSeconds: harness.baselineSeconds,
            requestTimeoutS: harness.requestTimeoutS,
            limit: harness.limit,
            gpuIndices,
          },
          ...(resume ? { resume } : {}),
        },
      );

    for (const prompt of study.prompts) {
      progress.prompt = prompt.name;
      const interruptions: RunInterruption[] = [];
      let runId = `${runBase}-${prompt.name}`;
      let inference: RunInferenceOutput | null = null;
      let resume = false;
      while (!inference) {
        stage(
          'inference',
          interruptions.length ? `${prompt.name} (after ${interruptions.length} interruption(s))` : prompt.name,
        );
        try {
          inference = await runInference(runId, prompt, resume);
        } catch (err) {
          // A dead server or an unfinished harness: follow the study's policy. Other failures end the session.
          const cut = runInterruption(err);
          if (!cut || interruptions.length >= harness.maxInterruptions) throw err;
          interruptions.push({
            at: new Date().toISOString(),
            runId,
            cause: cut.cause,
            reason: cut.message,
            policy: harness.interruptionPolicy,
            samplesDone: cut.done,
            samplesTotal: cut.total,
          });
          log.warn('run interrupted', { runId, cause: cut.cause, policy: harness.interruptionPolicy });
          // An ensure step: a dead server is started again, a healthy one reused.
          stage('starting-vllm', `after ${cut.cause} under ${runId}`);
          server = await startServer(cut.cause === 'server-gone' ? 'restart' : 'check');
          // `restart`: a fresh run in a new directory, measured from scratch; `resume`: the same run goes on.
          if (harness.interruptionPolicy === 'restart') runId = `${runBase}-${prompt.name}-r${interruptions.length}`;
          else resume = true;
        }
      }
      const resultsSubdir = `${study.study}/${phaseId}/${slug}/${prompt.name}/${runId}`;

      stage('transferring', prompt.name);
      const transferred = await call(
        'transferResults',
        podStep(2 * 3_600_000, 10),
        `bring ${prompt.name} results home over SFTP`,
        { endpoint: ep, remoteDir: inference.remoteDir, resultsSubdir, sessionBytesSoFar: sessionBytes },
      );
      sessionBytes += transferred.files.reduce((a, f) => a + f.bytes, 0);
      const manifest: RunManifest = {
        schemaVersion: 1,
        simulated: study.simulated,
        study: study.study,
        phase: phaseId,
        model: {
          repoId: model.repoId,
          revision: model.revision,
          commitSha: download.commitSha,
          thinking: model.thinking,
          reasoningParser: model.reasoningParser ?? null,
        },
        prompt: {
          name: prompt.name,
          templateSha256: prepared.promptSha256[prompt.name] ?? '',
          fewShotSha256: prepared.fewShotSha256[prompt.name] ?? null,
        },
        datasetSha256: prepared.datasetSha256,
        runId,
        workflowId: info.workflowId,
        pod: {
          provider: target.kind === 'runpod' ? 'runpod' : 'ssh-host',
          podId: pod?.podId ?? null,
          gpuTypeId: pod?.candidate.gpuTypeId ?? null,
          gpuCount,
          dataCenterId: pod?.dataCenterId ?? null,
          cloud: pod?.cloud ?? null,
          image: target.kind === 'runpod' ? target.image : null,
          costPerHr: pod?.costPerHr ?? 0,
          hostKeySha256: ep.ssh.hostKeySha256 ?? null,
          gpuIndices,
        },
        candidatesTried: attempts,
        vllm: {
          ...vllm,
          tensorParallelSize,
          reportedVersion: server.version,
          commandLine: server.commandLine,
          loadTimeMs: server.loadTimeMs,
        },
        sampling: model.sampling,
        harness,
        codecarbon: study.codecarbon,
        environment: null,
        timings: {
          ...timings,
          inferenceMs: inference.durationMs,
          samples: inference.total,
          // SSH connections the activities replaced (network drops survived without a retry).
          downloadSshReconnects: download.sshReconnects,
          inferenceSshReconnects: inference.sshReconnects,
          finishedAt: new Date().toISOString(),
        },
        cost: {
          podCostSoFarUsd: Math.round(podCostUsd() * 10_000) / 10_000,
          note: 'pod cost per hour x time since the pod was created; the whole session, not only this run',
        },
        download: {
          totalBytes: download.totalBytes,
          reused: download.reused,
          usedXetFallback: download.usedXetFallback,
          xetFallback: download.xetFallback,
          repaired: download.repaired,
          sha256Verified: download.sha256Verified,
        },
        interruptions,
        hardware: null,
        energy: null,
      };
      const written = await call('writeRunManifest', quick, `write manifest and checksums for ${prompt.name}`, {
        resultsSubdir,
        manifest,
      });
      runs.push({ prompt: prompt.name, runId, resultsSubdir, metrics: written.metrics });
      progress.runsDone = runs.length;
    }
    stage('done');
  } catch (err) {
    if (!(err instanceof ContinueAsNew))
      progress.error =
        err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
    throw err;
  } finally {
    // Runs on success, failure and cancellation (not on terminate: the reaper covers that).
    await CancellationScope.nonCancellable(async () => {
      const failed = progress.stage !== 'done';
      // On the team's server the workspace is shared: its logs and processes are this session's only while it held
      // the GPU (a session that only waited must not touch the holder's work).
      const ours = phase.target.kind === 'runpod' || gpuLock === 'held';
      if (endpoint && ours) {
        await call('collectLogs', { startToCloseTimeout: '5m', retry: { maximumAttempts: 2 } }, 'collect pod logs', {
          endpoint,
          resultsSubdir: `${study.study}/${phaseId}/${slug}/logs/${runBase}`,
          sessionBytesSoFar: sessionBytes,
        }).catch((e: unknown) => log.warn('log collection failed', { error: String(e) }));
      }
      if (endpoint && phase.target.kind === 'ssh-host' && ours) {
        // A server that outlives the session: free its GPU (vLLM, a harness left by a failure) for its other users.
        await call('stopPodWork', quick, `stop vLLM and the session's processes on ${phase.target.host}`, { endpoint })
          .then((r) => r.stopped.length && log.info('stopped on the host', { stopped: r.stopped }))
          .catch((e: unknown) => log.warn("could not stop the session's processes on the host", { error: String(e) }));
      }
      if (endpoint && phase.target.kind === 'ssh-host' && gpuLock !== 'none') {
        // After stopPodWork, so the next holder finds the GPU free. Only this run's lock is removed.
        const { gpuIndex, gpuLock: settings, host } = phase.target;
        const release = { ...teardown, retry: { ...teardown.retry, maximumAttempts: 10 } };
        await call('releaseGpuLock', release, `release the lock of GPU ${gpuIndex} on ${host}`, {
          endpoint,
          gpuIndex,
          lock: { dir: settings.dir },
          owner: { workflowId: info.workflowId, runId: info.runId },
        })
          .then((r) => {
            if (r.outcome === 'held-by-other' && r.holder)
              log.warn('the GPU lock was taken over while this session ran', { holder: describeGpuHolder(r.holder) });
          })
          .catch((e: unknown) =>
            log.warn('could not release the GPU lock; it is taken over once this run is closed', { error: String(e) }),
          );
      }
      if (pod) {
        progress.stage = 'terminating';
        const t = await call('terminatePod', teardown, `terminate pod ${pod.podId}`, { podId: pod.podId });
        progress.podTerminatedAt = t.terminatedAt;
      }
      // A reserve cancelled or failed before it returned, or a create whose answer was lost, may have left a pod
      // this workflow holds no id for: find it by name. (The reaper is the backstop when even this cannot run.)
      if (podNames.length > 0 && (!pod || attempts.some((a) => a.outcome === 'server-error'))) {
        const sweep = { ...teardown, retry: { ...teardown.retry, maximumAttempts: 10 } };
        await call('terminatePodsByName', sweep, `terminate pods named ${podNames.join(', ')}`, { podNames })
          .then((r) => r.terminated.length && log.warn('terminated pods found by name', { pods: r.terminated }))
          .catch((e: unknown) => log.warn('by-name pod sweep failed; the reaper will find them', { error: String(e) }));
      }
      progress.stage = failed ? 'failed' : 'done';
      setCurrentDetails(`**${progress.stage}** ${model.repoId}${pod ? `; pod ${pod.podId} terminated` : ''}`);
    });
  }
  const podHours =
    discardedPodHours +
    (pod
      ? (Date.parse(progress.podTerminatedAt ?? new Date().toISOString()) - Date.parse(pod.createdAt)) / 3_600_000
      : 0);
  return { model: model.repoId, runs, podCostUsd: podCostUsd(), podHours };
}
