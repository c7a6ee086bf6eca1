import {
  CancellationScope,
  ContinueAsNew,
  log,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { modelSlug } from '../../shared/constants.js';
import { podCostUsd, podHours } from '../../shared/cost.js';
import type { CandidateAttempt } from '../../activities/runpod/index.js';
import type { PodSessionInput, PodSessionOutput, PodSessionProgress, PodSessionRun, SessionStage } from '../types.js';
import { phaseSettings } from '../../study/schema.js';
import { validateWorkflowInput } from '../../study/validate.js';
import { sessionProgressQuery } from '../messages.js';
import { buildRunManifest } from './manifest.js';
import { call, podStep, quick } from './options.js';
import { reserve, withRequiredGpuType } from './reserve.js';
import { ensureModelServer, runStrategy, type ServeInput } from './run-strategy.js';
import { collectLogs, Compensations, stopHostWork, type PodLedger } from './teardown.js';

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
  const pods: PodLedger = { held: null, discarded: { costUsd: 0, hours: 0 } };
  const attempts: CandidateAttempt[] = [];
  // Bytes brought home so far, for the worker's per-session transfer limit (TRANSFER_MAX_SESSION_BYTES).
  let sessionBytes = 0;
  const runs: PodSessionRun[] = [];
  const timings: Record<string, string | number | null> = { sessionStartedAt: info.startTime.toISOString() };
  /** Every pod of the session, each from create to termination (or now, while the held one runs). */
  const podBill = () => {
    const held = pods.held;
    if (!held) return { ...pods.discarded };
    const endedAt = progress.podTerminatedAt ?? new Date().toISOString();
    const billed = { costPerHr: held.costPerHr, createdAt: held.createdAt, endedAt };
    return { costUsd: pods.discarded.costUsd + podCostUsd(billed), hours: pods.discarded.hours + podHours(billed) };
  };

  try {
    // Reserve: a pod that accepts SSH, or the team server's GPU under this run's lock.
    const target = withRequiredGpuType(phase.target, input.requiredGpuTypeId);
    const reserved = await reserve({
      session: input,
      study,
      model,
      target,
      token,
      modelSlug: slug,
      progress,
      stage,
      compensations,
      pods,
      attempts,
      onWorkspace: (endpoint) => {
        if (target.kind === 'ssh-host') compensations.push(stopHostWork({ endpoint, host: target.host }));
        compensations.push(
          collectLogs({
            endpoint,
            resultsSubdir: `${study.study}/${phaseId}/${slug}/logs/${runBase}`,
            sessionBytes: () => sessionBytes,
          }),
        );
      },
    });
    const { endpoint: ep, gpuCount, gpuIndices } = reserved;
    Object.assign(timings, reserved.timings);
    timings.podReadyAt = new Date().toISOString();
    progress.hostKeySha256 = ep.ssh.hostKeySha256 ?? null;

    // Prepare: harness, dataset and prompts on the pod, vLLM installed, the watchdog armed.
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

    // For each prompt strategy: run it (interruption policy in run-strategy.ts), bring it home, write its manifest.
    for (const prompt of study.prompts) {
      progress.prompt = prompt.name;
      const run = await runStrategy({ prompt, runBase, harness, serve, server, stage });
      server = run.server;
      const { runId, inference } = run;
      const resultsSubdir = `${study.study}/${phaseId}/${slug}/${prompt.name}/${runId}`;

      stage('transferring', prompt.name);
      const transferred = await call(
        'transferResults',
        podStep(2 * 3_600_000, 10),
        `bring ${prompt.name} results home over SFTP`,
        { endpoint: ep, remoteDir: inference.remoteDir, resultsSubdir, sessionBytesSoFar: sessionBytes },
      );
      sessionBytes += transferred.files.reduce((a, f) => a + f.bytes, 0);
      const manifest = buildRunManifest({
        study,
        phaseId,
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
        candidatesTried: attempts,
        prepared,
        download,
        server,
        tensorParallelSize: serve.tensorParallelSize,
        inference,
        interruptions: run.interruptions,
        timings,
        finishedAt: new Date().toISOString(),
        podCostSoFarUsd: podBill().costUsd,
      });
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
