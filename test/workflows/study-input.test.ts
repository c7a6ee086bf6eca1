import { randomUUID } from 'node:crypto';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { StudyInvalidError } from '../../src/study/load.js';
import { loadStudyFile } from '../../src/study/load.js';
import type { phaseWorkflow, podSessionWorkflow, studyWorkflow } from '../../src/workflows/index.js';
import { stubActivities, withWorker, type Calls } from './stubs.js';

/**
 * Anyone who can start a workflow in the namespace (the Web UI can) chooses its study input: each workflow validates
 * it with the study schema before any activity runs, and the phase checks the study's files before it reserves.
 */
const base = loadStudyFile('studies/rq1.sandbox.yaml');
const phase2a = base.phases.find((p) => p.id === 'phase2a');
const model = phase2a?.models[0];
if (!model) throw new Error('phase2a has no model');

/** The failure the workflow ended with (an activity's, unwrapped): its type and message. */
async function failureOf(run: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await run.then(
    () => new Error('the workflow succeeded'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const failed = (err as WorkflowFailedError).cause;
  const cause = failed instanceof ActivityFailure ? failed.cause : failed;
  if (!(cause instanceof ApplicationFailure)) throw new Error(`not an ApplicationFailure: ${String(cause)}`);
  return cause;
}

describe('workflows refuse an invalid study input before any activity', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await TestWorkflowEnvironment.createFromExistingServer({ address: inject('temporalAddress') });
  });
  afterAll(async () => {
    await env?.teardown();
  });

  const hostile = { ...base, study: '../../x', datasetPath: '/home/researcher/.ssh/id_ed25519' };

  it('a pod session with a study named ../../x and a dataset path of a key file', async () => {
    const calls: Calls = [];
    const f = await withWorker(env, stubActivities(calls), (taskQueue) =>
      failureOf(
        env.client.workflow.execute<typeof podSessionWorkflow>('podSessionWorkflow', {
          taskQueue,
          workflowId: randomUUID(),
          args: [{ study: hostile, phaseId: 'phase2a', model }],
        }),
      ),
    );
    expect(f.type).toBe('StudyInvalidError');
    expect(f.message).toMatch(/study: lower-case letters/);
    expect(f.message).toMatch(/datasetPath: must be a path inside the project/);
    expect(calls).toEqual([]);
  });

  it('a pod session with a model the phase does not have, or a phase the study does not have', async () => {
    const calls: Calls = [];
    const injected = { ...model, sampling: { ...model.sampling, maxTokens: 10_000_000 } };
    const [wrongModel, wrongPhase] = await withWorker(env, stubActivities(calls), (taskQueue) =>
      Promise.all(
        [
          { study: base, phaseId: 'phase2a', model: injected },
          { study: base, phaseId: 'phase9', model },
        ].map((input) =>
          failureOf(
            env.client.workflow.execute<typeof podSessionWorkflow>('podSessionWorkflow', {
              taskQueue,
              workflowId: randomUUID(),
              args: [input],
            }),
          ),
        ),
      ),
    );
    expect(wrongModel?.message).toMatch(/model: .* is not one of phase phase2a's models/);
    expect(wrongPhase?.message).toMatch(/phaseId: no phase phase9/);
    expect(calls).toEqual([]);
  });

  it('a phase and a study with an invalid study', async () => {
    const calls: Calls = [];
    const [phase, study] = await withWorker(env, stubActivities(calls), (taskQueue) =>
      Promise.all([
        failureOf(
          env.client.workflow.execute<typeof phaseWorkflow>('phaseWorkflow', {
            taskQueue,
            workflowId: randomUUID(),
            args: [{ study: hostile, phaseId: 'phase2a', studySpentUsd: 0 }],
          }),
        ),
        failureOf(
          env.client.workflow.execute<typeof studyWorkflow>('studyWorkflow', {
            taskQueue,
            workflowId: randomUUID(),
            args: [{ study: { ...base, vllm: { ...base.vllm, port: 70_000 } }, startPhase: 'phase2a' }],
          }),
        ),
      ]),
    );
    expect(phase?.type).toBe('StudyInvalidError');
    expect(study?.type).toBe('StudyInvalidError');
    expect(study?.message).toMatch(/vllm\.port/);
    expect(calls).toEqual([]);
  });

  it("a phase whose files fail the harness's checks reserves nothing and does not retry the check", async () => {
    const calls: Calls = [];
    const activities = stubActivities(calls, {
      checkStudyInputs: (input) => {
        calls.push({ name: 'checkStudyInputs', input });
        return Promise.reject(
          new StudyInvalidError(`study ${base.study}`, ['prompts.0.templatePath: label leak: {cve}']),
        );
      },
    });
    const f = await withWorker(env, activities, (taskQueue) =>
      failureOf(
        env.client.workflow.execute<typeof phaseWorkflow>('phaseWorkflow', {
          taskQueue,
          workflowId: randomUUID(),
          args: [
            { study: { ...base, study: `input-${randomUUID().slice(0, 8)}` }, phaseId: 'phase2a', studySpentUsd: 0 },
          ],
        }),
      ),
    );
    expect(f.type).toBe('StudyInvalidError');
    expect(f.message).toMatch(/label leak/);
    expect(calls.map((c) => c.name)).toEqual(['checkStudyInputs']);
  });
});
