import { ActivityFailure, ApplicationFailure, isCancellation, log, workflowInfo } from '@temporalio/workflow';
import { ErrorTypes } from '../../shared/errors.js';
import type { CandidateAttempt } from '../../activities/runpod/index.js';
import type { PodReplacement, RunInterruption } from '../../activities/results/index.js';
import type { HarnessSettings, ModelSpec, Phase, Study, VllmSettings } from '../../study/schema.js';
import type { PodSessionProgress, PodSessionRun } from '../types.js';
import { buildRunManifest } from './manifest.js';
import { call, POD_STEP_HEARTBEAT_TIMEOUT, podStep, podStepUntil, quick } from './options.js';
import type { Reserved } from './reserve.js';
import { ensureModelServer, runStrategy, type ServeInput } from './run-strategy.js';
import type { PodLedger } from './teardown.js';
import type { StageReporter } from './workflow.js';

/** What the session's work on one pod reads and adds to (the session's own state, shared across its pods). */
export interface OnPodInput {
  study: Study;
  phaseId: string;
  model: ModelSpec;
  modelSlug: string;
  vllm: VllmSettings;
  harness: HarnessSettings;
  target: Phase['target'];
  reserved: Reserved;
  progress: PodSessionProgress;
  stage: StageReporter;
  pods: PodLedger;
  attempts: CandidateAttempt[];
  timings: Record<string, string | number | null>;
  /** `<start stamp>-<run token>`; after a replacement `-p<n>` follows, so rerun strategies get run ids of their own. */
  runBase: string;
  /** Pods lost so far: every manifest written from here on lists them. */
  replacements: PodReplacement[];
  /** The runs brought home so far (by this pod and earlier ones); each finished run is added here at once. */
  runs: PodSessionRun[];
  /** Bytes brought home so far in the session (the worker's per-session transfer limit). */
  sessionBytes: () => number;
  onTransferred: (bytes: number) => void;
  /** The session's pod cost so far (every pod). */
  podCostUsd: () => number;
}

/**
 * Prepare -> download -> serve -> for each prompt strategy not yet brought home: run it, bring it home, write its
 * manifest. On a replacement pod the strategy that the lost pod was running starts again from scratch.
 */
export async function workOnPod(a: OnPodInput): Promise<void> {
  const { study, model, vllm, harness, target, reserved, progress, stage, pods, timings } = a;
  const { endpoint: ep, gpuCount, gpuIndices } = reserved;
  const info = workflowInfo();

  // Prepare: harness, dataset and prompts on the pod, vLLM installed, the watchdog armed.
  stage('preparing');
  const prepared = await call(
    'preparePod',
    { ...quick, startToCloseTimeout: '60m', heartbeatTimeout: POD_STEP_HEARTBEAT_TIMEOUT },
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
              podId: pods.held?.podId ?? null,
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

  // Download: the Hub's file list, fetched once; the download is pinned to its commit and verified against it.
  stage('downloading', `${model.repoId}@${model.revision}`);
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

  // Serve: vLLM on the downloaded weights.
  stage('starting-vllm');
  const serve: ServeInput = {
    endpoint: ep,
    study,
    model,
    vllm,
    modelDir: download.modelDir,
    weightBytes: download.totalBytes,
    tensorParallelSize: vllm.tensorParallelSize ?? gpuCount,
    gpuIndices,
    remote: prepared.remote,
  };
  let server = await ensureModelServer(serve, 'start');
  timings.vllmLoadMs = server.loadTimeMs;

  // For each prompt strategy still to do: run it (interruption policy in run-strategy.ts), bring it home, write its
  // manifest.
  for (const prompt of study.prompts.filter((p) => !a.runs.some((r) => r.prompt === p.name))) {
    progress.prompt = prompt.name;
    const run = await runStrategy({ prompt, runBase: a.runBase, harness, serve, server, stage });
    server = run.server;
    const { runId, inference } = run;
    const resultsSubdir = `${study.study}/${a.phaseId}/${a.modelSlug}/${prompt.name}/${runId}`;

    // A strategy the lost pod was running started again here, from scratch.
    const lostWith: RunInterruption[] = a.replacements
      .filter((r) => r.interruptedPrompt === prompt.name)
      .map((r) => ({
        at: r.at,
        runId: `pod ${r.lostPodId}`,
        cause: 'pod-lost',
        reason: r.reason,
        policy: 'restart',
        samplesDone: null,
        samplesTotal: null,
      }));
    // Built before the transfer: a run kept on its pod takes its manifest along for when it comes home.
    const manifest = buildRunManifest({
      study,
      phaseId: a.phaseId,
      model,
      prompt,
      vllm,
      harness,
      target,
      runId,
      workflowId: info.workflowId,
      pod: pods.held,
      gpuCount,
      gpuIndices,
      hostKeySha256: ep.ssh.hostKeySha256 ?? null,
      candidatesTried: a.attempts,
      prepared,
      download,
      server,
      tensorParallelSize: serve.tensorParallelSize,
      inference,
      interruptions: [...lostWith, ...run.interruptions],
      podReplacements: a.replacements,
      timings,
      finishedAt: new Date().toISOString(),
      podCostSoFarUsd: a.podCostUsd(),
    });

    stage('transferring', prompt.name);
    let transferred;
    try {
      transferred = await call(
        'transferResults',
        // Retried until the study's give-up time, however many attempts that takes.
        podStepUntil(2 * 3_600_000, study.transfer.giveUpAfterMs),
        `bring ${prompt.name} results home over SFTP`,
        { endpoint: ep, remoteDir: inference.remoteDir, resultsSubdir, sessionBytesSoFar: a.sessionBytes() },
      );
    } catch (err) {
      const held = pods.held;
      if (!resultsStayOnPod(err) || target.kind !== 'runpod' || !held) throw err;
      // The results exist only on the pod: keep it (teardown stops it instead of terminating) and say how to fetch.
      const reason = failureText(err);
      pods.keep = { reason };
      const record = await call('recordKeptResults', quick, `record the results left on pod ${held.podId}`, {
        schemaVersion: 1,
        study: study.study,
        phaseId: a.phaseId,
        model: model.repoId,
        podId: held.podId,
        keptName: null,
        reason,
        keptAt: new Date().toISOString(),
        workspaceDir: ep.workspaceDir,
        runs: [{ prompt: prompt.name, runId, remoteDir: inference.remoteDir, resultsSubdir, manifest }],
      });
      throw ApplicationFailure.create({
        type: ErrorTypes.ResultsNotHome,
        nonRetryable: true,
        message:
          `the results of ${prompt.name} (run ${runId}) did not come home within ${study.transfer.giveUpAfterMs} ms: ` +
          `${reason}. Pod ${held.podId} is kept: stopped, not terminated, and renamed so the reaper leaves it alone; ` +
          `its volume holds ${inference.remoteDir}. Not brought home: ${prompt.name}` +
          `${a.runs.length < study.prompts.length - 1 ? ' and the strategies after it (not run)' : ''}. ` +
          `Fetch them with: npm run fetch-results -- --pod ${held.podId}${study.simulated ? ' --sandbox' : ''} ` +
          `(record: ${record.path})`,
        details: [{ podId: held.podId, recordPath: record.path }],
      });
    }
    a.onTransferred(transferred.files.reduce((n, f) => n + f.bytes, 0));
    const written = await call('writeRunManifest', quick, `write manifest and checksums for ${prompt.name}`, {
      resultsSubdir,
      manifest,
    });
    a.runs.push({ prompt: prompt.name, runId, resultsSubdir, metrics: written.metrics });
    progress.runsDone = a.runs.length;
  }
}

/** A transfer that gave up with the results still only on the pod (not refused by the rules, not cancelled). */
function resultsStayOnPod(err: unknown): boolean {
  if (isCancellation(err) || !(err instanceof ActivityFailure)) return false;
  const type = err.cause instanceof ApplicationFailure ? err.cause.type : null;
  // A hostile or runaway pod's files are refused on purpose: the same listing comes back on every try.
  return type !== ErrorTypes.UnsafePodFile && type !== ErrorTypes.TransferLimit;
}

/** The innermost message of an activity failure (the last attempt's error, or the timeout). */
function failureText(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}
