import {
  CancellationScope,
  log,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { modelSlug, podName as formatPodName } from '../shared/constants.js';
import { NON_RETRYABLE_ERROR_TYPES } from '../shared/errors.js';
import type {
  CandidateAttempt,
  PodEndpoint,
  PodRef,
  PodSessionInput,
  PodSessionOutput,
  PodSessionProgress,
  PodSessionRun,
  RunManifest,
  SessionStage,
} from '../shared/types.js';
import { phaseSettings } from '../study/schema.js';
import { sessionProgressQuery } from './messages.js';

const nonRetryableErrorTypes = NON_RETRYABLE_ERROR_TYPES;

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
  const { study, phaseId, model } = input;
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
  let attempts: CandidateAttempt[] = [];
  let endpoint: PodEndpoint | null = null;
  const runs: PodSessionRun[] = [];
  const timings: Record<string, string | number | null> = { sessionStartedAt: info.startTime.toISOString() };
  const podCostUsd = () =>
    pod
      ? (pod.costPerHr *
          (Date.parse(progress.podTerminatedAt ?? new Date().toISOString()) - Date.parse(pod.createdAt))) /
        3_600_000
      : 0;

  try {
    const target = phase.target;
    let gpuCount = 1;
    if (target.kind === 'runpod') {
      stage('reserving');
      const podName = formatPodName({ study: study.study, phase: phaseId, modelSlug: slug, token });
      const reserved = await call(
        'reservePod',
        {
          startToCloseTimeout: '10m',
          retry: {
            initialInterval: '30s',
            backoffCoefficient: 2,
            maximumInterval: '10m',
            maximumAttempts: 30,
            nonRetryableErrorTypes,
          },
        },
        `reserve a pod for ${model.repoId} (${target.candidates.length} GPU candidates)`,
        { podName, target },
      );
      pod = reserved.pod;
      attempts = reserved.attempts;
      gpuCount = pod.candidate.gpuCount;
      Object.assign(progress, {
        podId: pod.podId,
        gpu: `${pod.candidate.gpuCount}x ${pod.candidate.gpuTypeId} (${pod.dataCenterId ?? 'any DC'}, ${pod.cloud})`,
        costPerHr: pod.costPerHr,
        podCreatedAt: pod.createdAt,
      });
      stage('waiting-for-pod', pod.podId);
      endpoint = await call(
        'waitForPodReady',
        { ...podStep(target.podReadyTimeoutMs + 120_000, 3) },
        `wait for pod ${pod.podId} to accept SSH`,
        { podId: pod.podId, timeoutMs: target.podReadyTimeoutMs, defaultWorkspaceDir: target.volumeMountPath },
      );
    } else {
      progress.gpu = `GPU ${target.gpuIndex} on ${target.host}`;
      endpoint = {
        ssh: { host: target.host, port: target.port, username: target.username },
        workspaceDir: target.workspaceDir,
      };
    }
    timings.podReadyAt = new Date().toISOString();
    const ep = endpoint;

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
      },
    );

    stage('downloading', `${model.repoId}@${model.revision}`);
    const download = await call(
      'downloadModel',
      podStep(6 * 3_600_000, 5),
      `download ${model.repoId}@${model.revision}`,
      {
        endpoint: ep,
        repoId: model.repoId,
        revision: model.revision,
      },
    );
    timings.downloadMs = download.durationMs;

    stage('starting-vllm');
    const tensorParallelSize = vllm.tensorParallelSize ?? gpuCount;
    const server = await call(
      'startVllm',
      podStep(vllm.startupTimeoutMs + 300_000, 4),
      `start vLLM ${vllm.version} for ${model.repoId}`,
      {
        endpoint: ep,
        modelDir: download.modelDir,
        servedModelName: model.repoId,
        vllm,
        tensorParallelSize,
        ...(model.reasoningParser ? { reasoningParser: model.reasoningParser } : {}),
      },
    );
    timings.vllmLoadMs = server.loadTimeMs;

    for (const prompt of study.prompts) {
      progress.prompt = prompt.name;
      const runId = `${runBase}-${prompt.name}`;
      const resultsSubdir = `${study.study}/${phaseId}/${slug}/${prompt.name}/${runId}`;
      stage('inference', prompt.name);
      const inference = await call(
        'runInference',
        podStep(48 * 3_600_000, 5),
        `metered inference: ${model.repoId}, ${prompt.name}`,
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
          },
        },
      );

      stage('transferring', prompt.name);
      await call('transferResults', podStep(2 * 3_600_000, 10), `bring ${prompt.name} results home over SFTP`, {
        endpoint: ep,
        remoteDir: inference.remoteDir,
        resultsSubdir,
      });
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
          finishedAt: new Date().toISOString(),
        },
        cost: {
          podCostSoFarUsd: Math.round(podCostUsd() * 10_000) / 10_000,
          note: 'pod cost per hour x time since the pod was created; the whole session, not only this run',
        },
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
    progress.error =
      err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
    throw err;
  } finally {
    // Runs on success, failure and cancellation (not on terminate: the reaper covers that).
    await CancellationScope.nonCancellable(async () => {
      const failed = progress.stage !== 'done';
      if (endpoint) {
        await call('collectLogs', { startToCloseTimeout: '5m', retry: { maximumAttempts: 2 } }, 'collect pod logs', {
          endpoint,
          resultsSubdir: `${study.study}/${phaseId}/${slug}/logs/${runBase}`,
        }).catch((e: unknown) => log.warn('log collection failed', { error: String(e) }));
      }
      if (pod) {
        progress.stage = 'terminating';
        const t = await call('terminatePod', teardown, `terminate pod ${pod.podId}`, { podId: pod.podId });
        progress.podTerminatedAt = t.terminatedAt;
      }
      progress.stage = failed ? 'failed' : 'done';
      setCurrentDetails(`**${progress.stage}** ${model.repoId}${pod ? `; pod ${pod.podId} terminated` : ''}`);
    });
  }
  return { model: model.repoId, runs, podCostUsd: podCostUsd() };
}
