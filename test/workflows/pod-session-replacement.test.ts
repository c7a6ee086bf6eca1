import { randomUUID } from 'node:crypto';
import { heartbeat, sleep } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RunInferenceInput } from '../../src/activities/harness/index.js';
import type { WriteRunManifestInput } from '../../src/activities/results/index.js';
import type { ReservePodInput, WatchPodInput } from '../../src/activities/runpod/index.js';
import type { PodSessionInput } from '../../src/workflows/types.js';
import type { podSessionWorkflow } from '../../src/workflows/index.js';
import type { Study } from '../../src/study/schema.js';
import { loadStudyFile } from '../../src/study/load.js';
import { stubActivities, withWorker, type Calls } from './stubs.js';

/**
 * A pod lost mid-session, with stub activities on the real dev server: the session terminates it, reserves a
 * replacement of the same GPU type under a name of its own, and carries on with the strategies still to do. Runs
 * already brought home stay; the manifests say what was replaced and why.
 */
const base = loadStudyFile('studies/rq1.sandbox.yaml');
const model = base.phases.find((p) => p.id === 'phase2a')?.models[0];
if (!model) throw new Error('phase2a has no model');
const [first, second] = base.prompts;
if (!first || !second) throw new Error('the sandbox study has fewer than two prompt strategies');

const H100 = 'NVIDIA H100 80GB HBM3';
const H200 = 'NVIDIA H200';

function studyWith(maxPodReplacements: number): Study {
  return {
    ...base,
    prompts: [first!, second!],
    phases: base.phases.map((p) =>
      p.id === 'phase2a' && p.target.kind === 'runpod'
        ? { ...p, target: { ...p.target, reservation: { ...p.target.reservation, maxPodReplacements } } }
        : p,
    ),
  };
}

/** A pod of the stub reservation: `pod<n>` on the n-th reserve call. */
function podFor(n: number, gpuTypeId: string) {
  return {
    pod: {
      podId: `pod${n}`,
      name: `name${n}`,
      candidateIndex: 0,
      candidate: { gpuTypeId, gpuCount: 1, dataCenterIds: [], cloud: 'SECURE' as const },
      dataCenterId: 'US-KS-2',
      cloud: 'SECURE',
      costPerHr: 3.6,
      // An hour ago: the lost pod's bill is clearly above zero.
      createdAt: new Date(Date.now() - 3_600_000).toISOString(),
    },
    attempts: [],
  };
}

/** Waits (heartbeating, so a cancellation reaches it) until `until()` holds or the activity is cancelled. */
async function waitInActivity(until: () => boolean): Promise<void> {
  while (!until()) {
    heartbeat();
    await sleep(50);
  }
}

describe('podSessionWorkflow when its pod is lost', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await TestWorkflowEnvironment.createFromExistingServer({ address: inject('temporalAddress') });
  });
  afterAll(async () => {
    await env?.teardown();
  });

  /**
   * The first pod is lost while it runs the second strategy: its watcher reports it once that run has started, and
   * the run itself hangs until it is cancelled. Every later pod is healthy.
   */
  function lostDuringSecondRun(calls: Calls) {
    let reserves = 0;
    let secondRunStarted = false;
    return stubActivities(calls, {
      reservePod: (input: ReservePodInput) => {
        calls.push({ name: 'reservePod', input });
        reserves += 1;
        // Offers another GPU type too: a replacement must keep to the lost pod's.
        return Promise.resolve(podFor(reserves, input.target.candidates[0]?.gpuTypeId ?? H100));
      },
      watchPod: async (input: WatchPodInput) => {
        calls.push({ name: 'watchPod', input });
        await waitInActivity(() => input.podId === 'pod1' && secondRunStarted);
        return { healthy: false, reason: 'pod pod1 vanished (RunPod answers 404)' };
      },
      runInference: async (input: RunInferenceInput) => {
        calls.push({ name: 'runInference', input });
        const onFirstPod = !calls.some((c) => c.name === 'terminatePod');
        if (onFirstPod && input.spec.runId.endsWith(second!.name)) {
          secondRunStarted = true;
          // The pod is gone: this run never finishes; the workflow cancels it.
          await waitInActivity(() => false);
        }
        return {
          remoteDir: `/ws/runs/${input.spec.runId}`,
          done: 4,
          total: 4,
          durationMs: 1,
          reattached: false,
          sshReconnects: 0,
        };
      },
    });
  }

  const start = (study: Study, acts: ReturnType<typeof stubActivities>, target?: { candidates: string[] }) => {
    const s: Study = target
      ? {
          ...study,
          phases: study.phases.map((p) =>
            p.id === 'phase2a' && p.target.kind === 'runpod'
              ? {
                  ...p,
                  target: {
                    ...p.target,
                    candidates: target.candidates.map((gpuTypeId) => ({
                      gpuTypeId,
                      gpuCount: 1,
                      dataCenterIds: [],
                      cloud: 'SECURE' as const,
                    })),
                  },
                }
              : p,
          ),
        }
      : study;
    const input: PodSessionInput = { study: s, phaseId: 'phase2a', model: model };
    return withWorker(env, acts, (taskQueue) =>
      env.client.workflow.execute<typeof podSessionWorkflow>('podSessionWorkflow', {
        taskQueue,
        workflowId: randomUUID(),
        args: [input],
      }),
    );
  };

  it('replaces the lost pod, keeps the first run and reruns the interrupted one on the new pod', async () => {
    const calls: Calls = [];
    const out = await start(studyWith(2), lostDuringSecondRun(calls), { candidates: [H100, H200] });

    // Both strategies brought home: the first from pod1, the second from pod2 under a run id of its own.
    expect(out.runs.map((r) => r.prompt)).toEqual([first.name, second.name]);
    expect(out.runs[0]?.runId).not.toContain('-p1-');
    expect(out.runs[1]?.runId).toContain(`-p1-${second.name}`);

    const named = (name: string) => calls.filter((c) => c.name === name);
    // The lost pod was terminated before the replacement was reserved; the replacement is terminated at the end.
    const order = calls.map((c) =>
      c.name === 'terminatePod' ? `terminate ${(c.input as { podId: string }).podId}` : c.name,
    );
    expect(order.indexOf('terminate pod1')).toBeLessThan(order.lastIndexOf('reservePod'));
    expect(named('terminatePod').map((c) => (c.input as { podId: string }).podId)).toEqual(['pod1', 'pod2']);

    // The replacement's reserve: a name of its own, and only the lost pod's GPU type.
    const reserves = named('reservePod').map((c) => c.input as ReservePodInput);
    expect(reserves).toHaveLength(2);
    expect(reserves[0]?.target.candidates.map((c) => c.gpuTypeId)).toEqual([H100, H200]);
    // phase2a requires one GPU type for all its runs.
    expect(base.phases.find((p) => p.id === 'phase2a')?.requireSameGpuType).toBe(true);
    expect(reserves[1]?.target.candidates.map((c) => c.gpuTypeId)).toEqual([H100]);
    expect(reserves[1]?.podName).toMatch(/-p1-r0$/);
    expect(reserves[0]?.podName).not.toBe(reserves[1]?.podName);

    // Each pod was prepared and served on its own.
    expect(named('preparePod')).toHaveLength(2);
    expect(named('downloadModel')).toHaveLength(2);

    // The second run's manifest records the replacement and the interruption; the first run's does not.
    const manifests = named('writeRunManifest').map((c) => (c.input as WriteRunManifestInput).manifest);
    expect(manifests).toHaveLength(2);
    expect(manifests[0]?.pod.podId).toBe('pod1');
    expect(manifests[0]?.podReplacements).toEqual([]);
    expect(manifests[1]?.pod.podId).toBe('pod2');
    expect(manifests[1]?.podReplacements).toEqual([
      expect.objectContaining({
        lostPodId: 'pod1',
        newPodId: 'pod2',
        interruptedPrompt: second.name,
        reason: 'pod pod1 vanished (RunPod answers 404)',
      }),
    ]);
    expect(manifests[1]?.podReplacements?.[0]?.lostPodCostUsd).toBeGreaterThan(3);
    expect(manifests[1]?.interruptions).toEqual([
      expect.objectContaining({ cause: 'pod-lost', policy: 'restart', runId: 'pod pod1' }),
    ]);

    // Both pods are paid for: each ran about an hour at $3.60.
    expect(out.podCostUsd).toBeGreaterThan(7);
    expect(out.podHours).toBeGreaterThan(1.9);
  });

  it('fails without retry once maxPodReplacements pods are lost, and still terminates the pod', async () => {
    const calls: Calls = [];
    const err = await start(studyWith(0), lostDuringSecondRun(calls)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect((cause as ApplicationFailure).type).toBe('PodLostError');
    expect((cause as ApplicationFailure).message).toMatch(/pod pod1 vanished.*maxPodReplacements 0.*1 of 2/);
    expect(calls.filter((c) => c.name === 'reservePod')).toHaveLength(1);
    expect(calls.filter((c) => c.name === 'terminatePod').map((c) => (c.input as { podId: string }).podId)).toEqual([
      'pod1',
    ]);
  });

  it('never replaces a pod whose host key changed: that failure ends the session as it is', async () => {
    const calls: Calls = [];
    const acts = stubActivities(calls, {
      downloadModel: (input) => {
        calls.push({ name: 'downloadModel', input });
        return Promise.reject(
          ApplicationFailure.create({
            type: 'HostKeyMismatchError',
            message: 'host key of 127.0.0.1:1 changed',
            nonRetryable: true,
          }),
        );
      },
    });
    const err = await start(studyWith(2), acts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const failure = (err as WorkflowFailedError).cause?.cause;
    expect((failure as ApplicationFailure).type).toBe('HostKeyMismatchError');
    expect(calls.filter((c) => c.name === 'checkPod')).toHaveLength(0);
    expect(calls.filter((c) => c.name === 'reservePod')).toHaveLength(1);
  });

  it('after a failed step, replaces the pod only when the check finds it unusable', async () => {
    const downloadFails = () =>
      Promise.reject(
        ApplicationFailure.create({ type: 'DownloadFailedError', message: 'hf died', nonRetryable: true }),
      );

    // The pod is fine: the step's own failure ends the session, nothing is replaced.
    const healthyCalls: Calls = [];
    const healthy = stubActivities(healthyCalls, {
      downloadModel: (input) => {
        healthyCalls.push({ name: 'downloadModel', input });
        return downloadFails();
      },
    });
    const err = await start(studyWith(2), healthy).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const failure = (err as WorkflowFailedError).cause;
    expect(failure?.cause).toBeInstanceOf(ApplicationFailure);
    expect((failure?.cause as ApplicationFailure).message).toContain('hf died');
    expect(healthyCalls.filter((c) => c.name === 'checkPod')).toHaveLength(1);
    expect(healthyCalls.filter((c) => c.name === 'reservePod')).toHaveLength(1);

    // The pod is unreachable: it is replaced and the session finishes on the new one.
    const calls: Calls = [];
    let reserves = 0;
    const downloads = stubActivities(calls);
    const unreachable = stubActivities(calls, {
      reservePod: (input: ReservePodInput) => {
        calls.push({ name: 'reservePod', input });
        reserves += 1;
        return Promise.resolve(podFor(reserves, H100));
      },
      downloadModel: (input) => {
        calls.push({ name: 'downloadModel', input });
        return reserves === 1 ? downloadFails() : downloads.downloadModel(input);
      },
      checkPod: (input) => {
        calls.push({ name: 'checkPod', input });
        return Promise.resolve(
          input.podId === 'pod1'
            ? { healthy: false, reason: 'pod pod1 is RUNNING but unreachable over SSH: connect ECONNREFUSED' }
            : { healthy: true, reason: null },
        );
      },
    });
    const out = await start(studyWith(2), unreachable);
    expect(out.runs).toHaveLength(2);
    expect(calls.filter((c) => c.name === 'terminatePod').map((c) => (c.input as { podId: string }).podId)).toEqual([
      'pod1',
      'pod2',
    ]);
    const manifests = calls
      .filter((c) => c.name === 'writeRunManifest')
      .map((c) => (c.input as WriteRunManifestInput).manifest);
    // Lost before any strategy ran: nothing was interrupted, every run happened on the new pod.
    expect(manifests.map((m) => m.pod.podId)).toEqual(['pod2', 'pod2']);
    expect(manifests[0]?.podReplacements?.[0]).toMatchObject({ lostPodId: 'pod1', interruptedPrompt: null });
    expect(manifests.flatMap((m) => m.interruptions)).toEqual([]);
  });
});
