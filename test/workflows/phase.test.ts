import { randomUUID } from 'node:crypto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ReservePodInput, ReservePodOutput } from '../../src/activities/runpod/index.js';
import { loadStudyFile } from '../../src/study/load.js';
import type { Study } from '../../src/study/schema.js';
import type { phaseWorkflow } from '../../src/workflows/index.js';
import { phaseProgressQuery, raiseBudgetSignal } from '../../src/workflows/messages.js';
import { stubActivities, withWorker, type Calls } from './stubs.js';

/** Budgets and the same-GPU rule of a phase, on the real dev server with stub activities. */
const base = loadStudyFile('studies/rq1.sandbox.yaml');

function studyWith(phasePatch: Record<string, unknown>, studyPatch: Partial<Study> = {}): Study {
  return {
    ...base,
    ...studyPatch,
    study: `phase-${randomUUID().slice(0, 8)}`,
    phases: base.phases.map((p) => (p.id === 'phase2a' ? { ...p, ...phasePatch } : p)),
  };
}

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('phaseWorkflow', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await TestWorkflowEnvironment.createFromExistingServer({ address: inject('temporalAddress') });
  });
  afterAll(async () => {
    await env?.teardown();
  });

  it('waits for budget before reserving when the next session would not fit, and goes on after a raise', async () => {
    const calls: Calls = [];
    const study = studyWith({ budget: { phaseUsd: 5, sessionEstimateUsd: 6 } });
    await withWorker(env, stubActivities(calls), async (taskQueue) => {
      const handle = await env.client.workflow.start<typeof phaseWorkflow>('phaseWorkflow', {
        taskQueue,
        workflowId: `phase-${randomUUID()}`,
        args: [{ study, phaseId: 'phase2a', studySpentUsd: 0 }],
      });
      const waiting = await waitFor(async () => {
        const p = await handle.query(phaseProgressQuery);
        return p.waitingForBudget ? p : undefined;
      });
      expect(waiting.waitingForBudget?.reason).toMatch(/next session \$6\.00 > phase budget \$5\.00/);
      expect(calls.filter((c) => c.name === 'reservePod')).toHaveLength(0);

      await handle.signal(raiseBudgetSignal, { phaseUsd: 20, by: 'test' });
      const out = await handle.result();
      expect(out.sessions).toHaveLength(2);
      expect(calls.filter((c) => c.name === 'reservePod')).toHaveLength(2);
    });
  });

  it('ignores signals that fail their schema, says so in phaseProgress, and still takes a valid raise', async () => {
    const calls: Calls = [];
    const study = studyWith({ budget: { phaseUsd: 5, sessionEstimateUsd: 6 } });
    const model = study.phases.find((p) => p.id === 'phase2a')?.models[0]?.repoId ?? '';
    await withWorker(env, stubActivities(calls), async (taskQueue) => {
      const handle = await env.client.workflow.start<typeof phaseWorkflow>('phaseWorkflow', {
        taskQueue,
        workflowId: `phase-${randomUUID()}`,
        args: [{ study, phaseId: 'phase2a', studySpentUsd: 0 }],
      });
      const before = await waitFor(async () => {
        const p = await handle.query(phaseProgressQuery);
        return p.waitingForBudget ? p : undefined;
      });
      const bad: [string, unknown][] = [
        ['raiseBudget', { phaseUsd: '100', by: 'eve' }],
        ['raiseBudget', { phaseUsd: '1', by: 'eve' }], // a string here used to fail every workflow task (toFixed)
        ['raiseBudget', { phaseUsd: null, by: 'eve' }], // what JSON makes of Infinity: it used to remove the limit
        ['raiseBudget', { phaseUsd: -1, by: 'eve' }],
        ['raiseBudget', {}],
        ['raiseBudget', { phaseUsd: 20 }],
        ['raiseBudget', { phaseUsd: 20, by: 'eve', limit: 'none' }],
        ['podReserved', { model, gpuTypeId: 7, costPerHr: 1 }],
        ['podReserved', { model: 'someone/else', gpuTypeId: 'NVIDIA A40', costPerHr: 1 }],
      ];
      for (const [name, payload] of bad) await handle.signal(name, payload);
      const after = await waitFor(async () => {
        const p = await handle.query(phaseProgressQuery);
        return p.ignored?.length === bad.length ? p : undefined;
      });
      expect(after.budget).toEqual(before.budget);
      expect(after.lockedGpuTypeId).toBeNull();
      expect(after.waitingForBudget).not.toBeNull();
      expect(after.ignored.map((i) => [i.signal, i.error])).toEqual([
        ['raiseBudget', expect.stringMatching(/^invalid raiseBudget \(phaseUsd must be a number of USD\); send /)],
        ['raiseBudget', expect.stringMatching(/phaseUsd must be a number of USD/)],
        ['raiseBudget', expect.stringMatching(/phaseUsd must be a number of USD/)],
        ['raiseBudget', expect.stringMatching(/phaseUsd must be above zero/)],
        ['raiseBudget', expect.stringMatching(/by is required/)],
        ['raiseBudget', expect.stringMatching(/by is required/)],
        ['raiseBudget', expect.stringMatching(/unknown field\(s\) limit/)],
        ['podReserved', expect.stringMatching(/gpuTypeId/)],
        ['podReserved', expect.stringMatching(/model someone\/else is not in phase2a/)],
      ]);
      expect(calls.filter((c) => c.name === 'reservePod')).toHaveLength(0);
      const history = await handle.fetchHistory();
      expect(history.events?.filter((e) => e.workflowTaskFailedEventAttributes)).toEqual([]);

      await handle.signal(raiseBudgetSignal, { phaseUsd: 20, by: 'test' });
      const out = await handle.result();
      expect(out.sessions).toHaveLength(2);
      // The sessions' own podReserved signals pass the same schema.
      const done = await handle.query(phaseProgressQuery);
      expect(done.budget.phaseUsd).toBe(20);
      expect(done.lockedGpuTypeId).toBe('NVIDIA H100 80GB HBM3');
    });
  });

  it('counts running sessions by their estimate and the study budget across phases', async () => {
    const calls: Calls = [];
    // Two sessions at once would commit $12 against a $10 phase budget: the second waits for the first.
    const study = studyWith({ budget: { phaseUsd: 10, sessionEstimateUsd: 6 }, maxConcurrentSessions: 2 });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const stubs = stubActivities(calls);
    const activities = stubActivities(calls, { runInference: async (i) => (await held, stubs.runInference(i)) });
    await withWorker(env, activities, async (taskQueue) => {
      const handle = await env.client.workflow.start<typeof phaseWorkflow>('phaseWorkflow', {
        taskQueue,
        workflowId: `phase-${randomUUID()}`,
        args: [{ study, phaseId: 'phase2a', studySpentUsd: 0 }],
      });
      const p = await waitFor(async () => {
        const q = await handle.query(phaseProgressQuery);
        return q.waitingForBudget && q.committedUsd === 6 ? q : undefined;
      });
      expect(p.waitingForBudget?.reason).toMatch(/committed \$6\.00 \+ next session \$6\.00 > phase budget \$10\.00/);
      expect(calls.filter((c) => c.name === 'reservePod')).toHaveLength(1);
      release();
      const out = await handle.result();
      expect(out.sessions).toHaveLength(2);
    });

    // The study budget counts what earlier phases spent.
    const tight = studyWith({ budget: { sessionEstimateUsd: 6 } }, { budgetUsd: 100 });
    await withWorker(env, stubActivities([]), async (taskQueue) => {
      const handle = await env.client.workflow.start<typeof phaseWorkflow>('phaseWorkflow', {
        taskQueue,
        workflowId: `phase-${randomUUID()}`,
        args: [{ study: tight, phaseId: 'phase2a', studySpentUsd: 97 }],
      });
      const q = await waitFor(async () => {
        const r = await handle.query(phaseProgressQuery);
        return r.waitingForBudget ? r : undefined;
      });
      expect(q.waitingForBudget?.reason).toMatch(/study: spent \$97\.00 .* > study budget \$100\.00/);
      await handle.cancel();
    });
  });

  it('runs every model on the GPU type the first reservation won when the phase requires one type', async () => {
    const calls: Calls = [];
    const study = studyWith({ requireSameGpuType: true, maxConcurrentSessions: 2 });
    const stubs = stubActivities(calls);
    // The first reservation falls back to the last candidate (say, the A100); the phase must stick to it.
    const reservePod = async (input: ReservePodInput): Promise<ReservePodOutput> => {
      const out = await stubs.reservePod(input);
      const candidate = input.target.candidates[input.target.candidates.length - 1] ?? out.pod.candidate;
      return { ...out, pod: { ...out.pod, candidate } };
    };
    await withWorker(env, stubActivities(calls, { reservePod }), async (taskQueue) => {
      const out = await env.client.workflow.execute<typeof phaseWorkflow>('phaseWorkflow', {
        taskQueue,
        workflowId: `phase-${randomUUID()}`,
        args: [{ study, phaseId: 'phase2a', studySpentUsd: 0 }],
      });
      expect(out.sessions).toHaveLength(2);
    });
    const reserves = calls.filter((c) => c.name === 'reservePod').map((c) => c.input as ReservePodInput);
    expect(reserves).toHaveLength(2);
    const all = reserves[0]?.target.candidates.map((c) => c.gpuTypeId);
    const locked = all?.[all.length - 1];
    expect(new Set(all).size).toBeGreaterThan(1);
    expect(reserves[1]?.target.candidates.map((c) => c.gpuTypeId)).toEqual([locked]);
  });
});
