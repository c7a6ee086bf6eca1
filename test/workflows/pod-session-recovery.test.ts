import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RunInferenceInput } from '../../src/activities/harness/index.js';
import type { RunManifest, WriteRunManifestInput } from '../../src/activities/results/index.js';
import type { PodSessionInput } from '../../src/workflows/types.js';
import type { podSessionWorkflow } from '../../src/workflows/index.js';
import type { Study } from '../../src/study/schema.js';
import { loadStudyFile } from '../../src/study/load.js';
import { stubActivities, withWorker, type Calls } from './stubs.js';

/**
 * The session's answer to a model server that dies under a run, with stub activities on the real dev server:
 * vLLM is restarted, then the study's interruption policy decides between a fresh run and resuming the same one.
 */
const base = loadStudyFile('studies/rq1.sandbox.yaml');
const model = base.phases.find((p) => p.id === 'phase2a')?.models[0];
if (!model) throw new Error('phase2a has no model');

const serverGone = (done: number) =>
  ApplicationFailure.create({
    type: 'ModelServerGoneError',
    message: `the model server is gone (its process exited) during run x at ${done}/4 samples`,
    nonRetryable: true,
    details: [{ runId: 'x', done, total: 4 }],
  });

const harnessEnded = (cause: 'harness-died' | 'measurement-invalid') =>
  ApplicationFailure.create({
    type: 'RunInterruptedError',
    message: `harness run x ended at 3/4 samples (${cause})`,
    nonRetryable: true,
    details: [{ runId: 'x', done: 3, total: 4, cause }],
  });

describe('podSessionWorkflow when the model server dies mid-run', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await TestWorkflowEnvironment.createFromExistingServer({ address: inject('temporalAddress') });
  });
  afterAll(async () => {
    await env?.teardown();
  });

  const study = (harness: Partial<Study['harness']>): Study => ({
    ...base,
    // One prompt strategy, still a valid study: the decision contrasts it with itself, no simulated answers.
    prompts: base.prompts.slice(0, 1),
    analysis: { ...base.analysis, decision: { ...base.analysis.decision, treatmentPrompt: 'zero-shot' } },
    simulation: undefined,
    harness: { ...base.harness, ...harness },
  });

  async function session(s: Study, failures: number, failure: () => ApplicationFailure = () => serverGone(2)) {
    const calls: Calls = [];
    let left = failures;
    const acts = stubActivities(calls, {
      runInference: (input: RunInferenceInput) => {
        calls.push({ name: 'runInference', input });
        if (left-- > 0) return Promise.reject(failure());
        return Promise.resolve({
          remoteDir: `/ws/runs/${input.spec.runId}`,
          done: 4,
          total: 4,
          durationMs: 1,
          reattached: false,
          sshReconnects: 0,
        });
      },
    });
    const input: PodSessionInput = { study: s, phaseId: 'phase2a', model: model as PodSessionInput['model'] };
    const result = await withWorker(env, acts, (taskQueue) =>
      env.client.workflow.execute<typeof podSessionWorkflow>('podSessionWorkflow', {
        taskQueue,
        workflowId: randomUUID(),
        args: [input],
      }),
    ).catch((e: unknown) => e);
    const runIds = calls.filter((c) => c.name === 'runInference').map((c) => (c.input as RunInferenceInput).spec.runId);
    const manifest = (calls.find((c) => c.name === 'writeRunManifest')?.input as WriteRunManifestInput | undefined)
      ?.manifest;
    return { calls, result, runIds, manifest };
  }

  it('restart (the default): restarts vLLM and reruns the strategy from scratch under a new run id', async () => {
    const { calls, runIds, manifest } = await session(study({}), 1);
    expect(calls.filter((c) => c.name === 'startVllm')).toHaveLength(2);
    expect(runIds).toHaveLength(2);
    expect(runIds[1]).toBe(`${runIds[0]}-r1`);
    const m = manifest as RunManifest;
    expect(m.runId).toBe(runIds[1]);
    expect(m.interruptions).toEqual([
      expect.objectContaining({ runId: runIds[0], policy: 'restart', samplesDone: 2, samplesTotal: 4 }),
    ]);
    expect(calls.map((c) => c.name).slice(-2)).toEqual(['collectLogs', 'terminatePod']);
  });

  it('resume: restarts vLLM and continues the same run', async () => {
    const { calls, runIds, manifest } = await session(study({ interruptionPolicy: 'resume' }), 1);
    expect(runIds).toHaveLength(2);
    expect(runIds[1]).toBe(runIds[0]);
    expect(manifest?.interruptions[0]).toMatchObject({ policy: 'resume', runId: runIds[0], cause: 'server-gone' });
    const inputs = calls.filter((c) => c.name === 'runInference').map((c) => c.input as RunInferenceInput);
    expect(inputs.map((i) => i.resume ?? false)).toEqual([false, true]); // only the workflow's decision resumes
  });

  it('a harness that died or lost its energy record follows the same policy', async () => {
    for (const cause of ['harness-died', 'measurement-invalid'] as const) {
      const fresh = await session(study({}), 1, () => harnessEnded(cause));
      expect(fresh.runIds).toEqual([fresh.runIds[0], `${fresh.runIds[0]}-r1`]);
      expect(fresh.manifest?.interruptions).toEqual([
        expect.objectContaining({ cause, policy: 'restart', samplesDone: 3, samplesTotal: 4 }),
      ]);
      const resumed = await session(study({ interruptionPolicy: 'resume' }), 1, () => harnessEnded(cause));
      expect(resumed.runIds).toEqual([resumed.runIds[0], resumed.runIds[0]]);
      expect(resumed.manifest?.interruptions[0]).toMatchObject({ cause, policy: 'resume' });
    }
  });

  it('gives up after maxInterruptions and still terminates the pod', async () => {
    const { calls, result } = await session(study({ maxInterruptions: 1 }), 2);
    expect(result).toBeInstanceOf(WorkflowFailedError);
    expect(calls.filter((c) => c.name === 'startVllm')).toHaveLength(2);
    expect(calls.filter((c) => c.name === 'runInference')).toHaveLength(2); // no activity-level retry of a dead server
    expect(calls.map((c) => c.name).slice(-2)).toEqual(['collectLogs', 'terminatePod']);
  });
});
