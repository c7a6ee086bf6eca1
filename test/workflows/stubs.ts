import { randomUUID } from 'node:crypto';
import { heartbeat, sleep } from '@temporalio/activity';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { Activities } from '../../src/activities/index.js';
import type { AnalyzePhaseOutput } from '../../src/activities/analysis/index.js';
import { WORKFLOWS_PATH } from '../../src/workers/worker.js';

/**
 * Stub activities typed against the real ones (a changed signature breaks the tests at compile time). Each
 * records its calls; pass overrides to change one step's behaviour.
 */
export type Calls = { name: string; input: unknown }[];

export function stubActivities(calls: Calls, overrides: Partial<Activities> = {}): Activities {
  const rec =
    <T>(name: string, out: T) =>
    (input: unknown) => {
      calls.push({ name, input });
      return Promise.resolve(out);
    };
  const endpoint = { ssh: { host: '127.0.0.1', port: 1, username: 'x' }, workspaceDir: '/ws' };
  const base: Activities = {
    reservePod: rec('reservePod', {
      pod: {
        podId: 'pod1',
        name: 'n',
        candidateIndex: 0,
        candidate: { gpuTypeId: 'NVIDIA H100 80GB HBM3', gpuCount: 1, dataCenterIds: [], cloud: 'SECURE' as const },
        dataCenterId: 'US-KS-2',
        cloud: 'SECURE',
        costPerHr: 2.69,
        createdAt: new Date().toISOString(),
      },
      attempts: [],
    }),
    waitForPodReady: rec('waitForPodReady', endpoint),
    terminatePod: rec('terminatePod', { alreadyGone: false, terminatedAt: new Date().toISOString() }),
    terminatePodsByName: rec('terminatePodsByName', { terminated: [] }),
    // A pod that is never lost: the watcher heartbeats until the workflow cancels it, as the real one does. It runs
    // beside the steps, so it is left out of `calls` (whose order the tests check).
    watchPod: async () => {
      for (;;) {
        heartbeat();
        await sleep(100);
      }
    },
    checkPod: rec('checkPod', { healthy: true, reason: null }),
    keepPod: rec('keepPod', { kept: true, name: 'gpustudy-kept--x', note: null }),
    resumeKeptPod: rec('resumeKeptPod', { found: true, status: 'EXITED' }),
    recordKeptResults: rec('recordKeptResults', { path: 'results/x/kept-pods/pod1.json' }),
    removeKeptResults: rec('removeKeptResults', { removed: true }),
    preparePod: rec('preparePod', {
      datasetSha256: 'd',
      promptSha256: { 'zero-shot': 'z', 'few-shot': 'f' },
      fewShotSha256: { 'few-shot': 'e' },
      remote: { harnessDir: '/ws/harness', datasetPath: '/ws/data/dataset.jsonl', promptsDir: '/ws/prompts' },
      pythonVersion: '3.11',
      vllmVersion: '0.11.0',
    }),
    fetchModelMetadata: rec('fetchModelMetadata', {
      repoId: 'Qwen/m',
      revision: 'main',
      commitSha: 'abc',
      files: [],
      totalBytes: 0,
    }),
    downloadModel: rec('downloadModel', {
      modelDir: '/ws/models/m',
      commitSha: 'abc',
      files: [],
      totalBytes: 0,
      durationMs: 1,
      reused: false,
      usedXetFallback: false,
      xetFallback: null,
      repaired: [],
      sha256Verified: false,
      sshReconnects: 0,
    }),
    startVllm: rec('startVllm', {
      baseUrl: 'http://127.0.0.1:8000',
      version: 'sim',
      commandLine: 'vllm serve',
      loadTimeMs: 1,
      reused: false,
      cleanedUpPids: [],
    }),
    runInference: rec('runInference', {
      remoteDir: '/ws/runs/r',
      done: 4,
      total: 4,
      durationMs: 1,
      reattached: false,
      sshReconnects: 0,
    }),
    transferResults: rec('transferResults', { files: [], skipped: [] }),
    collectLogs: rec('collectLogs', { collected: [], notes: [] }),
    stopPodWork: rec('stopPodWork', { stopped: [] }),
    acquireGpuLock: rec('acquireGpuLock', {
      acquired: true as const,
      lockPath: '/tmp/gpu-study-locks/gpu-0.lock',
      gpu: { index: 0, name: 'NVIDIA RTX A5000', memoryMiB: 24564 },
      how: 'created' as const,
      takenOver: null,
    }),
    releaseGpuLock: rec('releaseGpuLock', { outcome: 'released' as const, holder: null }),
    writeRunManifest: rec('writeRunManifest', { checksumFile: 'c', metrics: null }),
    summarizePhase: rec('summarizePhase', { summaryPath: 's', runs: 0, inconsistencies: [] }),
    reapOrphanPods: rec('reapOrphanPods', { checkedAt: '', dryRun: true, decisions: [] }),
    priceGpuCandidates: (input) => {
      calls.push({ name: 'priceGpuCandidates', input });
      return Promise.resolve({
        candidates: input.candidates.map((c) => ({ ...c, costPerHr: 3.59 * c.gpuCount })),
        pricedAt: new Date().toISOString(),
      });
    },
    analyzePhase: (input) => {
      calls.push({ name: 'analyzePhase', input });
      return Promise.resolve(stubPacket(input.study, input.phase));
    },
    recordGateDecision: rec('recordGateDecision', { path: 'g', reportPath: 'r' }),
    writeReport: rec('writeReport', { reportMd: 'r.md', reportHtml: 'r.html' }),
    checkStudyInputs: rec('checkStudyInputs', { files: [], samples: 4, duplicates: 0 }),
    preflightPhase: rec('preflightPhase', {
      checks: [{ id: 'fit', verdict: 'pass', summary: 'stub' }],
      estimates: [],
      phaseCostUsd: null,
      simulated: true,
    }),
  };
  return { ...base, ...overrides };
}

/** A decision packet as the analysis activity returns it (recommendation and hash fixed). */
export function stubPacket(study: string, phase: string): AnalyzePhaseOutput {
  return {
    packet: {
      study,
      phase,
      generatedAt: new Date().toISOString(),
      simulated: true,
      runs: [],
      comparisons: [],
      confounds: [],
      decision: {
        rule: 'rule',
        definition: 'definition',
        perModel: [],
        recommendation: { action: 'approve', basis: 'adds-data-point', text: 'stub' },
      },
      warnings: [],
    },
    packetSha256: 'a'.repeat(64),
    jsonPath: `${study}/${phase}/decision-packet.json`,
    mdPath: `${study}/${phase}/decision-packet.md`,
    reportPath: `${study}/report.md`,
  };
}

/** Runs `fn` with a worker on a fresh task queue, over the real dev server. */
export async function withWorker<T>(
  env: TestWorkflowEnvironment,
  activities: Activities,
  fn: (taskQueue: string) => Promise<T>,
): Promise<T> {
  const taskQueue = `tq-${randomUUID()}`;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowsPath: WORKFLOWS_PATH,
    activities,
    // Cancellation reaches activities through heartbeat responses: keep them frequent in tests.
    maxHeartbeatThrottleInterval: '200ms',
  });
  return worker.runUntil(fn(taskQueue));
}
