import { randomUUID } from 'node:crypto';
import { heartbeat, sleep } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Activities } from '../../src/activities/index.js';
import type { PodSessionInput, StudyProgress } from '../../src/workflows/types.js';
import type { podSessionWorkflow, studyWorkflow } from '../../src/workflows/index.js';
import { gateDecisionSignal, studyProgressQuery } from '../../src/workflows/messages.js';
import { loadStudyFile } from '../../src/study/load.js';
import { stubActivities, withWorker as withStubWorker, type Calls } from './stubs.js';

/**
 * Workflow behaviour on the real dev server with stub activities: teardown always runs, the gate waits for a
 * person. Stubs are typed against the real activities, so a changed signature breaks this file at compile time.
 */
const study = loadStudyFile('studies/rq1.sandbox.yaml');
const model = study.phases.find((p) => p.id === 'phase2a')?.models[0];
if (!model) throw new Error('phase2a has no model');

describe('podSessionWorkflow teardown', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await TestWorkflowEnvironment.createFromExistingServer({ address: inject('temporalAddress') });
  });
  afterAll(async () => {
    await env?.teardown();
  });

  const withWorker = <T>(activities: Activities, fn: (taskQueue: string) => Promise<T>) =>
    withStubWorker(env, activities, fn);

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
      'fetchModelMetadata',
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

  it("on the team's server: vLLM and the meters get only the phase's GPU, and the session's processes are stopped", async () => {
    const real = loadStudyFile('studies/rq1.yaml');
    const phase1 = real.phases.find((p) => p.id === 'phase1');
    const target = phase1?.target;
    if (!phase1?.models[0] || target?.kind !== 'ssh-host') throw new Error('phase1 runs on an ssh-host');
    const sshInput: PodSessionInput = {
      study: {
        ...real,
        phases: real.phases.map((p) => (p === phase1 ? { ...phase1, target: { ...target, gpuIndex: 2 } } : p)),
      },
      phaseId: 'phase1',
      model: phase1.models[0],
    };
    for (const failing of [false, true]) {
      const calls: Calls = [];
      const activities = stubActivities(
        calls,
        failing
          ? {
              transferResults: () =>
                Promise.reject(ApplicationFailure.create({ type: 'X', message: 'no', nonRetryable: true })),
            }
          : {},
      );
      await withWorker(activities, (taskQueue) =>
        env.client.workflow.execute<typeof podSessionWorkflow>('podSessionWorkflow', {
          taskQueue,
          workflowId: randomUUID(),
          args: [sshInput],
        }),
      ).catch((e: unknown) => (failing ? e : Promise.reject(e as Error)));
      const names = calls.map((c) => c.name);
      // The GPU's lock is taken before anything runs on the host and released last.
      expect(names.slice(0, 2)).toEqual(['acquireGpuLock', 'preparePod']);
      expect(names.slice(-3)).toEqual(['collectLogs', 'stopPodWork', 'releaseGpuLock']);
      expect(names).not.toContain('reservePod');
      expect(names).not.toContain('terminatePod');
      expect(calls.find((c) => c.name === 'startVllm')?.input).toMatchObject({ gpuIndices: [2] });
      expect(calls.find((c) => c.name === 'runInference')?.input).toMatchObject({ spec: { gpuIndices: [2] } });
    }
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
      await handle.signal(gateDecisionSignal, { decision: 'approve', by: 'too-early' });
      earlySignalSent();
      let progress: StudyProgress;
      for (;;) {
        progress = await handle.query(studyProgressQuery);
        if (progress.phaseState === 'waiting-at-gate') break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(progress.gate?.nextPhase).toBe('phase2b');
      expect(progress.completedPhases).toEqual(['phase2a']);
      // Both phase 2a models ran, each on its own (stub) pod, each terminated.
      expect(calls.filter((c) => c.name === 'terminatePod')).toHaveLength(2);
      expect(calls.filter((c) => c.name === 'summarizePhase')).toHaveLength(1);
      await handle.signal(gateDecisionSignal, { decision: 'skip', by: 'test' });
      const result = await handle.result();
      expect(result.skipped).toEqual(['phase2b']);
      expect(result.phases).toHaveLength(1);
    });
  });
});
