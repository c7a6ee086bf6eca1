import { randomUUID } from 'node:crypto';
import { heartbeat, sleep } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Activities } from '../../src/activities/index.js';
import type { PodSessionInput, StudyProgress } from '../../src/shared/types.js';
import type { podSessionWorkflow, studyWorkflow } from '../../src/workflows/index.js';
import { loadStudyFile } from '../../src/study/load.js';
import { WORKFLOWS_PATH } from '../../src/workers/worker.js';

/**
 * Workflow behaviour on the real dev server with stub activities: teardown always runs, the gate waits for a
 * person. Stubs are typed against the real activities, so a changed signature breaks this file at compile time.
 */
const study = loadStudyFile('studies/rq1.sandbox.yaml');
const model = study.phases.find((p) => p.id === 'phase2a')?.models[0];
if (!model) throw new Error('phase2a has no model');

type Calls = { name: string; input: unknown }[];

function stubActivities(calls: Calls, overrides: Partial<Activities> = {}): Activities {
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
    preparePod: rec('preparePod', {
      datasetSha256: 'd',
      promptSha256: { 'zero-shot': 'z', 'few-shot': 'f' },
      fewShotSha256: { 'few-shot': 'e' },
      remote: { harnessDir: '/ws/harness', datasetPath: '/ws/data/dataset.jsonl', promptsDir: '/ws/prompts' },
      pythonVersion: '3.11',
      vllmVersion: '0.11.0',
    }),
    downloadModel: rec('downloadModel', {
      modelDir: '/ws/models/m',
      commitSha: 'abc',
      files: [],
      totalBytes: 0,
      durationMs: 1,
      reused: false,
      usedXetFallback: false,
    }),
    startVllm: rec('startVllm', {
      baseUrl: 'http://127.0.0.1:8000',
      version: 'sim',
      commandLine: 'vllm serve',
      loadTimeMs: 1,
      reused: false,
    }),
    runInference: rec('runInference', { remoteDir: '/ws/runs/r', done: 4, total: 4, durationMs: 1 }),
    transferResults: rec('transferResults', { files: [], skipped: [] }),
    collectLogs: rec('collectLogs', { collected: [] }),
    writeRunManifest: rec('writeRunManifest', { checksumFile: 'c', metrics: null }),
    summarizePhase: rec('summarizePhase', { summaryPath: 's', runs: 0, inconsistencies: [] }),
    reapOrphanPods: rec('reapOrphanPods', { checkedAt: '', dryRun: true, decisions: [] }),
  };
  return { ...base, ...overrides };
}

describe('podSessionWorkflow teardown', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await TestWorkflowEnvironment.createFromExistingServer({ address: inject('temporalAddress') });
  });
  afterAll(async () => {
    await env?.teardown();
  });

  async function withWorker<T>(activities: Activities, fn: (taskQueue: string) => Promise<T>): Promise<T> {
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

  const input: PodSessionInput = { study, phaseId: 'phase2a', model };

  it('runs every step in order and terminates the pod on success', async () => {
    const calls: Calls = [];
    const out = await withWorker(stubActivities(calls), (taskQueue) =>
      env.client.workflow.execute<typeof podSessionWorkflow>('podSessionWorkflow', {
        taskQueue,
        workflowId: randomUUID(),
        args: [input],
      }),
    );
    expect(calls.map((c) => c.name)).toEqual([
      'reservePod',
      'waitForPodReady',
      'preparePod',
      'downloadModel',
      'startVllm',
      ...study.prompts.flatMap(() => ['runInference', 'transferResults', 'writeRunManifest']),
      'collectLogs',
      'terminatePod',
    ]);
    expect(out.runs).toHaveLength(study.prompts.length);
  });

  it('terminates the pod when a step fails', async () => {
    const calls: Calls = [];
    const failing = stubActivities(calls, {
      startVllm: () =>
        Promise.reject(ApplicationFailure.create({ type: 'ModelDoesNotFitError', message: 'OOM', nonRetryable: true })),
    });
    const err = await withWorker(failing, (taskQueue) =>
      env.client.workflow.execute<typeof podSessionWorkflow>('podSessionWorkflow', {
        taskQueue,
        workflowId: randomUUID(),
        args: [input],
      }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(calls.map((c) => c.name).slice(-2)).toEqual(['collectLogs', 'terminatePod']);
    expect(calls.find((c) => c.name === 'terminatePod')?.input).toEqual({ podId: 'pod1' });
    expect(calls.some((c) => c.name === 'runInference')).toBe(false);
  });

  it('terminates the pod when the workflow is cancelled mid-inference', async () => {
    const calls: Calls = [];
    let inferenceStarted!: () => void;
    const started = new Promise<void>((r) => (inferenceStarted = r));
    const blocking = stubActivities(calls, {
      runInference: async () => {
        inferenceStarted();
        for (;;) {
          heartbeat({ stage: 'inference', done: 1, total: 4, tokensPerS: null });
          await sleep(100); // throws CancelledFailure once the cancellation arrives
        }
      },
    });
    const err = await withWorker(blocking, async (taskQueue) => {
      const handle = await env.client.workflow.start<typeof podSessionWorkflow>('podSessionWorkflow', {
        taskQueue,
        workflowId: randomUUID(),
        args: [input],
      });
      await started;
      await handle.cancel();
      return handle.result().then(
        () => null,
        (e: unknown) => e,
      );
    });
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause?.name).toBe('CancelledFailure');
    expect(calls.map((c) => c.name).slice(-2)).toEqual(['collectLogs', 'terminatePod']);
  });

  it('the study waits at the phase 2b gate, ignores early signals, and a skip finishes it', async () => {
    const calls: Calls = [];
    const onePhaseStudy = { ...study, study: `gate-${randomUUID().slice(0, 8)}` };
    let earlySignalSent!: () => void;
    const early = new Promise<void>((r) => (earlySignalSent = r));
    const base = stubActivities(calls);
    // Phase 2a holds in the download step until an "approve" has been sent before any gate opened.
    const activities = stubActivities(calls, { downloadModel: async (i) => (await early, base.downloadModel(i)) });
    await withWorker(activities, async (taskQueue) => {
      const handle = await env.client.workflow.start<typeof studyWorkflow>('studyWorkflow', {
        taskQueue,
        workflowId: `study-${onePhaseStudy.study}`,
        args: [{ study: onePhaseStudy, startPhase: 'phase2a' }],
      });
      await handle.signal('gateDecision', { decision: 'approve', by: 'too-early' });
      earlySignalSent();
      let progress: StudyProgress;
      for (;;) {
        progress = await handle.query<StudyProgress>('studyProgress');
        if (progress.phaseState === 'waiting-at-gate') break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(progress.gate?.nextPhase).toBe('phase2b');
      expect(progress.completedPhases).toEqual(['phase2a']);
      // Both phase 2a models ran, each on its own (stub) pod, each terminated.
      expect(calls.filter((c) => c.name === 'terminatePod')).toHaveLength(2);
      expect(calls.filter((c) => c.name === 'summarizePhase')).toHaveLength(1);
      await handle.signal('gateDecision', { decision: 'skip', by: 'test' });
      const result = await handle.result();
      expect(result.skipped).toEqual(['phase2b']);
      expect(result.phases).toHaveLength(1);
    });
  });
});
