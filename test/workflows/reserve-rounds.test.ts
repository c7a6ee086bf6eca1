import { randomUUID } from 'node:crypto';
import { heartbeat } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Activities } from '../../src/activities/index.js';
import type { RunManifest } from '../../src/activities/results/index.js';
import type {
  CandidateAttempt,
  ReservePodInput,
  ReservePodOutput,
  WaitForPodReadyInput,
} from '../../src/activities/runpod/index.js';
import type { PodSessionInput } from '../../src/workflows/types.js';
import type { Study } from '../../src/study/schema.js';
import type { podSessionWorkflow } from '../../src/workflows/index.js';
import { loadStudyFile } from '../../src/study/load.js';
import { stubActivities, withWorker, type Calls } from './stubs.js';

/**
 * The reserve -> ready loop of podSessionWorkflow on the real dev server with stub activities: a pod that fails
 * readiness is terminated and the next candidate gets a round (with a new pod name); limits and the deadline end
 * the loop with a clear failure; every pod ever created is terminated.
 */
const base = loadStudyFile('studies/rq1.sandbox.yaml');

function studyWith(reservation: Partial<Record<string, number>>): Study {
  return {
    ...base,
    phases: base.phases.map((p) =>
      p.id === 'phase2a' && p.target.kind === 'runpod'
        ? { ...p, target: { ...p.target, reservation: { ...p.target.reservation, ...reservation } } }
        : p,
    ),
  };
}
const model = base.phases.find((p) => p.id === 'phase2a')?.models[0];
if (!model) throw new Error('phase2a has no model');

/** reservePod stub: a new pod per call, on the first candidate not excluded. */
function reserveStub(calls: Calls): Activities['reservePod'] {
  let n = 0;
  return (input: ReservePodInput): Promise<ReservePodOutput> => {
    calls.push({ name: 'reservePod', input });
    const excluded = new Set(input.excludeCandidates ?? []);
    const index = input.target.candidates.findIndex((_, i) => !excluded.has(i));
    const candidate = input.target.candidates[index];
    if (!candidate) throw new Error('no candidate left');
    const podId = `pod${++n}`;
    const attempt: CandidateAttempt = { index, candidate, outcome: 'created', detail: podId, podId };
    return Promise.resolve({
      pod: {
        podId,
        name: input.podName,
        candidateIndex: index,
        candidate,
        dataCenterId: 'US-KS-2',
        cloud: 'SECURE',
        costPerHr: 2,
        createdAt: new Date().toISOString(),
      },
      attempts: [attempt],
    });
  };
}

const notReady = (reason: string) =>
  ApplicationFailure.create({ type: 'PodNotReadyError', message: reason, nonRetryable: true });

describe('podSessionWorkflow reserve rounds', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await TestWorkflowEnvironment.createFromExistingServer({ address: inject('temporalAddress') });
  });
  afterAll(async () => {
    await env?.teardown();
  });

  const execute = (activities: Activities, input: PodSessionInput) =>
    withWorker(env, activities, (taskQueue) =>
      env.client.workflow.execute<typeof podSessionWorkflow>('podSessionWorkflow', {
        taskQueue,
        workflowId: randomUUID(),
        args: [input],
      }),
    );
  const names = (calls: Calls, name: string) => calls.filter((c) => c.name === name);

  it('terminates a pod that fails readiness and reserves the next candidate under a new name', async () => {
    const calls: Calls = [];
    let waits = 0;
    const out = await execute(
      stubActivities(calls, {
        reservePod: reserveStub(calls),
        waitForPodReady: (input: WaitForPodReadyInput) => {
          calls.push({ name: 'waitForPodReady', input });
          if (++waits === 1) return Promise.reject(notReady('pod pod1 never got a public SSH port'));
          return Promise.resolve({ ssh: { host: '127.0.0.1', port: 1, username: 'x' }, workspaceDir: '/ws' });
        },
      }),
      { study: studyWith({}), phaseId: 'phase2a', model },
    );
    expect(out.runs).toHaveLength(base.prompts.length);
    const reserves = names(calls, 'reservePod').map((c) => c.input as ReservePodInput);
    expect(reserves.map((r) => r.excludeCandidates)).toEqual([[], [0]]);
    expect(reserves.map((r) => r.round)).toEqual([0, 1]);
    expect(reserves[0]?.podName).toMatch(/--[0-9a-f]{8}-r0$/);
    expect(reserves[1]?.podName).toMatch(/--[0-9a-f]{8}-r1$/);
    // The unready pod is terminated right away, the winner at the end.
    expect(names(calls, 'terminatePod').map((c) => (c.input as { podId: string }).podId)).toEqual(['pod1', 'pod2']);
    const manifest = (names(calls, 'writeRunManifest')[0]?.input as { manifest: RunManifest }).manifest;
    expect(manifest.pod.podId).toBe('pod2');
    expect(manifest.candidatesTried.map((a) => `${a.index}:${a.outcome}`)).toEqual([
      '0:created',
      '0:not-ready',
      '1:created',
    ]);
    expect(manifest.candidatesTried[1]?.detail).toMatch(/never got a public SSH port; pod terminated/);
    // The prepare step installs the watchdog for the winning pod.
    const prepare = names(calls, 'preparePod')[0]?.input as { watchdog?: { podId: string } };
    expect(prepare.watchdog?.podId).toBe('pod2');
  });

  it('gives up after maxUnreadyPods, having terminated each of them', async () => {
    const calls: Calls = [];
    const err = await execute(
      stubActivities(calls, {
        reservePod: reserveStub(calls),
        waitForPodReady: () => Promise.reject(notReady('pod went to ERROR while starting')),
      }),
      { study: studyWith({ maxUnreadyPods: 2 }), phaseId: 'phase2a', model },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('ReservationFailedError');
    expect(cause.message).toMatch(/2 pods failed readiness.*#0 not-ready.*#1 not-ready/);
    expect(names(calls, 'terminatePod').map((c) => (c.input as { podId: string }).podId)).toEqual(['pod1', 'pod2']);
    expect(names(calls, 'preparePod')).toHaveLength(0);
  });

  it('fails at the reservation deadline, saying what the last attempt saw, and sweeps by name', async () => {
    const calls: Calls = [];
    const err = await execute(
      stubActivities(calls, {
        reservePod: (input: ReservePodInput) => {
          calls.push({ name: 'reservePod', input });
          heartbeat({ tried: '#0 H100: no-capacity; #1 H100: no-capacity; #2 A100: no-capacity' });
          return Promise.reject(
            ApplicationFailure.create({
              type: 'RunPodNoCapacityError',
              message: 'no GPU candidate could be reserved (#0 no-capacity; #1 no-capacity; #2 no-capacity)',
            }),
          );
        },
      }),
      {
        study: studyWith({ initialIntervalMs: 200, maximumIntervalMs: 400, deadlineMs: 2_500 }),
        phaseId: 'phase2a',
        model,
      },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('ReservationFailedError');
    // Either the last attempt's failure or, when the deadline cut an attempt short, its last heartbeat.
    expect(cause.message).toMatch(/reservation deadline: .*#2 (A100: )?no-capacity/);
    // Temporal retried with backoff until the deadline.
    expect(names(calls, 'reservePod').length).toBeGreaterThan(2);
    expect(names(calls, 'terminatePod')).toHaveLength(0);
    expect(names(calls, 'terminatePodsByName')).toHaveLength(1);
  });

  it('a readiness failure of another kind does not start a new round; the pod is still terminated', async () => {
    const calls: Calls = [];
    const err = await execute(
      stubActivities(calls, {
        reservePod: reserveStub(calls),
        waitForPodReady: () =>
          Promise.reject(
            ApplicationFailure.create({ type: 'RunPodForbiddenError', message: 'no', nonRetryable: true }),
          ),
      }),
      { study: studyWith({}), phaseId: 'phase2a', model },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(names(calls, 'reservePod')).toHaveLength(1);
    expect(names(calls, 'terminatePod').map((c) => (c.input as { podId: string }).podId)).toEqual(['pod1']);
  });
});
