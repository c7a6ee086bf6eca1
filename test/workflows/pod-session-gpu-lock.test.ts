import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { AcquireGpuLockOutput, GpuLockHolder } from '../../src/activities/workspace/index.js';
import type { PodSessionInput, PodSessionProgress } from '../../src/workflows/types.js';
import type { podSessionWorkflow } from '../../src/workflows/index.js';
import { sessionProgressQuery } from '../../src/workflows/messages.js';
import { loadStudyFile } from '../../src/study/load.js';
import { DEV_SERVER_SEARCH_ATTRIBUTE_ARGS, findTemporalBinary } from '../../sandbox/temporal-binary.js';
import { stubActivities, withWorker, type Calls } from './stubs.js';

/**
 * The session's side of the team server's GPU lock, with stub activities on the real dev server: it waits on a timer
 * while the GPU is held (stage waiting-for-gpu, naming the holder), takes the lock before anything runs on the host,
 * releases it last, and a session that only waited never touches the host's shared workspace.
 */
const real = loadStudyFile('studies/rq1.yaml');
const phase1 = real.phases.find((p) => p.id === 'phase1');
const target = phase1?.target;
if (!phase1?.models[0] || target?.kind !== 'ssh-host') throw new Error('phase1 runs on an ssh-host');
const input: PodSessionInput = {
  study: {
    ...real,
    phases: real.phases.map((p) =>
      p === phase1 ? { ...phase1, target: { ...target, gpuLock: { ...target.gpuLock, pollIntervalMs: 1_000 } } } : p,
    ),
  },
  phaseId: 'phase1',
  model: phase1.models[0],
};

const holder: GpuLockHolder = {
  record: {
    schemaVersion: 1,
    study: 'other-study',
    phase: 'phase1',
    model: 'Qwen/Qwen3-4B-Instruct-2507',
    workflowId: 'study-other-study--phase1--Qwen3-4B-Instruct-2507',
    runId: 'r1',
    gpuIndex: 0,
    startedBy: 'ana@laptop',
    acquiredAt: '2026-01-01T00:00:00.000Z',
    heartbeatPath: '/data/gpustudy/heartbeat',
  },
  problem: null,
  heartbeatAgeMs: 1_000,
  runState: 'running',
};
const gpu = { index: 0, name: 'NVIDIA RTX A5000', memoryMiB: 24564 };
const held: AcquireGpuLockOutput = { acquired: false, lockPath: '/tmp/gpu-study-locks/gpu-0.lock', gpu, holder };
const got: AcquireGpuLockOutput = {
  acquired: true,
  lockPath: '/tmp/gpu-study-locks/gpu-0.lock',
  gpu,
  how: 'created',
  takenOver: null,
};

describe('podSessionWorkflow and the GPU lock', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await TestWorkflowEnvironment.createFromExistingServer({ address: inject('temporalAddress') });
  });
  afterAll(async () => {
    await env?.teardown();
  });

  it('waits while the GPU is held, naming the holder, then runs and releases the lock last', async () => {
    const calls: Calls = [];
    let asked = 0;
    const seen: PodSessionProgress[] = [];
    const activities = stubActivities(calls, {
      acquireGpuLock: (i) => {
        calls.push({ name: 'acquireGpuLock', input: i });
        return Promise.resolve(++asked < 3 ? held : got);
      },
    });
    await withWorker(env, activities, async (taskQueue) => {
      const handle = await env.client.workflow.start<typeof podSessionWorkflow>('podSessionWorkflow', {
        taskQueue,
        workflowId: randomUUID(),
        args: [input],
      });
      seen.push(
        await (async () => {
          for (;;) {
            const p = await handle.query(sessionProgressQuery);
            if (p.stage === 'waiting-for-gpu') return p;
            await new Promise((r) => setTimeout(r, 50));
          }
        })(),
      );
      await handle.result();
    });
    expect(seen[0]?.gpuHolder?.record?.study).toBe('other-study');
    const names = calls.map((c) => c.name);
    expect(names.slice(0, 4)).toEqual(['acquireGpuLock', 'acquireGpuLock', 'acquireGpuLock', 'preparePod']);
    expect(names.slice(-3)).toEqual(['collectLogs', 'stopPodWork', 'releaseGpuLock']);
    expect(calls[0]?.input).toMatchObject({
      gpuIndex: 0,
      lock: { dir: '/tmp/gpu-study-locks', staleAfterMs: 3_600_000 },
      owner: { study: 'rq1', phase: 'phase1', model: 'Qwen/Qwen3-4B-Instruct-2507' },
    });
  });

  it("a session cancelled while it waits leaves the host's workspace alone (no logs collected, nothing stopped)", async () => {
    const calls: Calls = [];
    const activities = stubActivities(calls, {
      acquireGpuLock: (i) => {
        calls.push({ name: 'acquireGpuLock', input: i });
        return Promise.resolve(held);
      },
    });
    const err = await withWorker(env, activities, async (taskQueue) => {
      const handle = await env.client.workflow.start<typeof podSessionWorkflow>('podSessionWorkflow', {
        taskQueue,
        workflowId: randomUUID(),
        args: [input],
      });
      for (;;) {
        const p = await handle.query(sessionProgressQuery);
        if (p.stage === 'waiting-for-gpu') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await handle.cancel();
      return handle.result().catch((e: unknown) => e);
    });
    expect(err).toBeInstanceOf(WorkflowFailedError);
    // A release may follow when the cancel cut an acquire short (its answer unseen); it removes only this run's lock.
    expect(calls.map((c) => c.name).filter((n) => n !== 'acquireGpuLock' && n !== 'releaseGpuLock')).toEqual([]);
  });

  it('a GPU the host does not have fails the session before anything runs there', async () => {
    const calls: Calls = [];
    const activities = stubActivities(calls, {
      acquireGpuLock: (i) => {
        calls.push({ name: 'acquireGpuLock', input: i });
        return Promise.reject(
          ApplicationFailure.create({ type: 'GpuNotFoundError', message: 'GPU 0 does not exist', nonRetryable: true }),
        );
      },
    });
    const err = await withWorker(env, activities, (taskQueue) =>
      env.client.workflow.execute<typeof podSessionWorkflow>('podSessionWorkflow', {
        taskQueue,
        workflowId: randomUUID(),
        args: [input],
      }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const names = calls.map((c) => c.name);
    // One attempt (not retried); the release that follows removes nothing that is not this run's.
    expect(names).toEqual(['acquireGpuLock', 'releaseGpuLock']);
  });
});

describe('podSessionWorkflow waiting long for a GPU', () => {
  // A dev server of its own that suggests continue-as-new after a few dozen events, as a real one does after
  // thousands: a wait of days would otherwise outgrow the history.
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: findTemporalBinary(process.cwd()) },
        ip: '127.0.0.1',
        ui: false,
        log: { format: 'pretty', level: 'error' },
        extraArgs: [
          ...DEV_SERVER_SEARCH_ATTRIBUTE_ARGS,
          '--dynamic-config-value',
          'limit.historyCount.suggestContinueAsNew=40',
        ],
      },
    });
  });
  afterAll(async () => {
    await env?.teardown();
  });

  it('continues in a fresh run while it waits, and the chain finishes the session', async () => {
    const calls: Calls = [];
    let asked = 0;
    const activities = stubActivities(calls, {
      acquireGpuLock: (i) => {
        calls.push({ name: 'acquireGpuLock', input: i });
        return Promise.resolve(++asked <= 6 ? held : got);
      },
    });
    const workflowId = randomUUID();
    const { firstRunId, out } = await withWorker(env, activities, async (taskQueue) => {
      const handle = await env.client.workflow.start<typeof podSessionWorkflow>('podSessionWorkflow', {
        taskQueue,
        workflowId,
        args: [input],
      });
      return { firstRunId: handle.firstExecutionRunId, out: await handle.result() };
    });
    expect(out.runs).toHaveLength(input.study.prompts.length);
    const first = await env.client.workflow.getHandle(workflowId, firstRunId).describe();
    expect(first.status.name).toBe('CONTINUED_AS_NEW');
    const owners = new Set(calls.filter((c) => c.name === 'acquireGpuLock').map((c) => JSON.stringify(c.input)));
    // Each run asks as itself (its own run id); the lock is released once, by the run that held it.
    expect(owners.size).toBeGreaterThan(1);
    expect(calls.filter((c) => c.name === 'releaseGpuLock')).toHaveLength(1);
  });
});
