import type { RunInferenceOutput } from '../../activities/harness/index.js';
import type { DownloadModelOutput } from '../../activities/hub/index.js';
import type { PodReplacement, RunInterruption, RunManifest } from '../../activities/results/index.js';
import type { CandidateAttempt, PodRef } from '../../activities/runpod/index.js';
import type { StartVllmOutput } from '../../activities/vllm/index.js';
import type { PreparePodOutput } from '../../activities/workspace/index.js';
import type { HarnessSettings, ModelSpec, Phase, PromptStrategy, Study, VllmSettings } from '../../study/schema.js';

export interface RunManifestInput {
  study: Study;
  phaseId: string;
  model: ModelSpec;
  prompt: PromptStrategy;
  vllm: VllmSettings;
  harness: HarnessSettings;
  target: Phase['target'];
  runId: string;
  workflowId: string;
  /** The rented pod the run was on; null on the team's server. */
  pod: PodRef | null;
  gpuCount: number;
  gpuIndices: number[] | null;
  hostKeySha256: string | null;
  candidatesTried: CandidateAttempt[];
  prepared: PreparePodOutput;
  download: DownloadModelOutput;
  server: StartVllmOutput;
  tensorParallelSize: number;
  inference: RunInferenceOutput;
  interruptions: RunInterruption[];
  /** Pods the session lost before this run finished. */
  podReplacements: PodReplacement[];
  /** The session's timings so far (pod ready, download, vLLM load, ...). */
  timings: Record<string, string | number | null>;
  finishedAt: string;
  /** Pod cost of the whole session up to `finishedAt`. */
  podCostSoFarUsd: number;
}

/** The run manifest written beside one run's results: what ran, where, on what, how long and at what cost. Pure. */
export function buildRunManifest(m: RunManifestInput): RunManifest {
  const { study, model, prompt, prepared, download, server, inference, pod, target } = m;
  return {
    schemaVersion: 1,
    simulated: study.simulated,
    study: study.study,
    phase: m.phaseId,
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
    runId: m.runId,
    workflowId: m.workflowId,
    pod: {
      provider: target.kind === 'runpod' ? 'runpod' : 'ssh-host',
      podId: pod?.podId ?? null,
      gpuTypeId: pod?.candidate.gpuTypeId ?? null,
      gpuCount: m.gpuCount,
      dataCenterId: pod?.dataCenterId ?? null,
      cloud: pod?.cloud ?? null,
      image: target.kind === 'runpod' ? target.image : null,
      costPerHr: pod?.costPerHr ?? 0,
      hostKeySha256: m.hostKeySha256,
      gpuIndices: m.gpuIndices,
    },
    candidatesTried: m.candidatesTried,
    vllm: {
      ...m.vllm,
      tensorParallelSize: m.tensorParallelSize,
      reportedVersion: server.version,
      commandLine: server.commandLine,
      loadTimeMs: server.loadTimeMs,
    },
    sampling: model.sampling,
    harness: m.harness,
    codecarbon: study.codecarbon,
    environment: null,
    timings: {
      ...m.timings,
      inferenceMs: inference.durationMs,
      samples: inference.total,
      // SSH connections the activities replaced (network drops survived without a retry).
      downloadSshReconnects: download.sshReconnects,
      inferenceSshReconnects: inference.sshReconnects,
      finishedAt: m.finishedAt,
    },
    cost: {
      podCostSoFarUsd: Math.round(m.podCostSoFarUsd * 10_000) / 10_000,
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
    interruptions: m.interruptions,
    podReplacements: m.podReplacements.map((r) => ({ ...r })),
    hardware: null,
    energy: null,
  };
}
