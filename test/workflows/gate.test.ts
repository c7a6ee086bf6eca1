import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { AnalyzePhaseInput, RecordGateDecisionInput } from '../../src/activities/analysis/index.js';
import { loadStudyFile } from '../../src/study/load.js';
import type { Study } from '../../src/study/schema.js';
import type { studyWorkflow } from '../../src/workflows/index.js';
import {
  decideGateUpdate,
  gateDecisionSignal,
  gateStatusQuery,
  phaseProgressQuery,
  studyProgressQuery,
} from '../../src/workflows/messages.js';
import { findTemporalBinary } from '../../sandbox/temporal-binary.js';
import { stubActivities, withWorker, type Calls } from './stubs.js';

const run = promisify(execFile);

/** The decision gate on the real dev server with stub activities: packet, Update, signal, validation, timeout. */
const base = loadStudyFile('studies/rq1.sandbox.yaml');
const newStudy = (patch: Partial<Study['analysis']['gate']> = {}): Study => ({
  ...base,
  study: `gate-${randomUUID().slice(0, 8)}`,
  analysis: { ...base.analysis, gate: { ...base.analysis.gate, ...patch } },
});

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

const atGate = (handle: WorkflowHandle) =>
  waitFor(async () => {
    const g = await handle.query(gateStatusQuery);
    return g.open ? g : undefined;
  });

describe('the decision gate', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await TestWorkflowEnvironment.createFromExistingServer({ address: inject('temporalAddress') });
  });
  afterAll(async () => {
    await env?.teardown();
  });

  const start = (taskQueue: string, study: Study) =>
    env.client.workflow.start<typeof studyWorkflow>('studyWorkflow', {
      taskQueue,
      workflowId: `study-${study.study}`,
      args: [{ study, startPhase: 'phase2a' }],
    });

  it('shows the packet and the priced plan, refuses invalid decisions with a message, and approves by Update', async () => {
    const calls: Calls = [];
    const study = newStudy();
    await withWorker(env, stubActivities(calls), async (taskQueue) => {
      const handle = await start(taskQueue, study);
      const gate = await atGate(handle);
      expect(gate.nextPhase).toBe('phase2b');
      expect(gate.afterPhase).toBe('phase2a');
      expect(gate.packet?.decision.recommendation.action).toBe('approve');
      expect(gate.packetSha256).toBe('a'.repeat(64));

      const analysed = calls.find((c) => c.name === 'analyzePhase')?.input as AnalyzePhaseInput;
      expect(analysed.phase).toBe('phase2a');
      expect(analysed.runSubdirs).toHaveLength(4);
      expect(analysed.settings.decision.alpha).toBe(0.05);
      // The next phase's plan: its models and candidates at catalog price (the stub prices $3.59 per GPU).
      expect(analysed.nextPhase?.id).toBe('phase2b');
      expect(analysed.nextPhase?.models.map((m) => m.repoId)).toEqual([
        'Qwen/Qwen3-235B-A22B-Instruct-2507',
        'Qwen/Qwen3-235B-A22B-Thinking-2507',
      ]);
      expect(analysed.nextPhase?.candidates[0]).toMatchObject({
        gpuTypeId: 'NVIDIA H200',
        gpuCount: 4,
        costPerHr: 14.36,
      });
      expect(analysed.nextPhase?.estimate.sessions).toBe(2);

      const refused = async (payload: unknown) => {
        const err = await handle.executeUpdate('decideGate', { args: [payload] }).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
        return (err as WorkflowUpdateFailedError).cause?.message ?? '';
      };
      expect(await refused({})).toMatch(/decision must be approve, skip or stop.*by is required/);
      expect(await refused({ decision: 'yes', by: 'ana' })).toMatch(/decision must be approve, skip or stop/);
      expect(await refused({ decision: 'approve' })).toMatch(/by is required/);
      expect(await refused({ decision: 'approve', by: '  ' })).toMatch(/by is required/);
      expect(await refused({ decision: 'approve', by: 'ana', gate: 'phase9' })).toMatch(
        /the open gate is phase2b, not phase9/,
      );
      expect(await refused({ decision: 'approve', by: 'ana', packetSha256: 'b'.repeat(64) })).toMatch(
        /decision packet changed/,
      );
      expect(await refused({ decision: 'approve', by: 'ana', decison: 'x' })).toMatch(/unknown field/);
      expect((await handle.query(gateStatusQuery)).open).toBe(true);
      expect(calls.filter((c) => c.name === 'reservePod')).toHaveLength(2); // phase 2b has not started

      const record = await handle.executeUpdate(decideGateUpdate, {
        args: [{ gate: 'phase2b', decision: 'approve', by: 'ana', reason: 'F1 gain', packetSha256: 'a'.repeat(64) }],
      });
      expect(record).toMatchObject({
        gate: 'phase2b',
        afterPhase: 'phase2a',
        decision: 'approve',
        by: 'ana',
        reason: 'F1 gain',
        packetSha256: 'a'.repeat(64),
        via: 'update',
      });
      const result = await handle.result();
      expect(result.phases.map((p) => p.phaseId)).toEqual(['phase2a', 'phase2b']);
      expect(result.decisions).toEqual([record]);
      const recorded = calls.filter((c) => c.name === 'recordGateDecision').map((c) => c.input);
      expect(recorded).toEqual([{ study: study.study, record }]);
      // A packet after each phase (the last without a next phase), and the final report.
      const packets = calls.filter((c) => c.name === 'analyzePhase').map((c) => c.input as AnalyzePhaseInput);
      expect(packets.map((p) => [p.phase, p.nextPhase?.id ?? null])).toEqual([
        ['phase2a', 'phase2b'],
        ['phase2b', null],
      ]);
      expect(calls.filter((c) => c.name === 'writeReport')).toHaveLength(1);
    });
  });

  it('ignores an invalid gateDecision signal and says so; a valid one sent with the temporal CLI approves', async () => {
    const calls: Calls = [];
    const study = newStudy();
    await withWorker(env, stubActivities(calls), async (taskQueue) => {
      const handle = await start(taskQueue, study);
      await atGate(handle);
      for (const bad of [{}, { decision: 'yes', by: 'x' }, { decision: 'approve', by: 'x', gate: 'phase1' }, 'approve'])
        await handle.signal(gateDecisionSignal, bad);
      const gate = await waitFor(async () => {
        const g = await handle.query(gateStatusQuery);
        return g.ignored.length === 4 ? g : undefined;
      });
      expect(gate.open).toBe(true);
      expect(gate.ignored.map((i) => i.error)).toEqual([
        expect.stringMatching(/decision must be approve, skip or stop/),
        expect.stringMatching(/decision must be approve, skip or stop/),
        expect.stringMatching(/the open gate is phase2b, not phase1/),
        expect.stringMatching(/invalid gate decision/),
      ]);
      expect(calls.filter((c) => c.name === 'recordGateDecision')).toHaveLength(0);
      const described = await handle.describe();
      expect(described.status.name).toBe('RUNNING');

      // The way the README shows it, with the Temporal CLI.
      await run(findTemporalBinary(process.cwd()), [
        'workflow',
        'signal',
        '--address',
        inject('temporalAddress'),
        '--workflow-id',
        `study-${study.study}`,
        '--name',
        'gateDecision',
        '--input',
        '{"decision":"approve","by":"bo","note":"from the CLI"}',
      ]);
      const result = await handle.result();
      expect(result.phases.map((p) => p.phaseId)).toEqual(['phase2a', 'phase2b']);
      expect(result.decisions[0]).toMatchObject({
        decision: 'approve',
        by: 'bo',
        reason: 'from the CLI',
        via: 'signal',
        // A signal names no packet: the packet that was open is recorded.
        packetSha256: 'a'.repeat(64),
      });
    });
  });

  it('npm run gate: status prints the packet, approve goes through the Update', async () => {
    const calls: Calls = [];
    const study = newStudy();
    const cli = (...args: string[]) =>
      run('npx', ['tsx', 'src/cli/main.ts', 'gate', ...args, '--study', study.study], {
        env: { ...process.env, TEMPORAL_ADDRESS: inject('temporalAddress') },
      });
    await withWorker(env, stubActivities(calls), async (taskQueue) => {
      const handle = await start(taskQueue, study);
      await atGate(handle);
      const status = await cli('status');
      expect(status.stdout).toMatch(/The gate to phase2b is open/);
      expect(status.stdout).toMatch(/RECOMMENDATION: APPROVE \(adds-data-point\)/);
      expect(status.stdout).toContain(`Packet sha256: ${'a'.repeat(64)}`);
      const approved = await cli('approve', '--by', 'cy', '--reason', 'worth the data point');
      expect(approved.stdout).toMatch(/approve recorded for the phase2b gate by cy/);
      const result = await handle.result();
      expect(result.decisions[0]).toMatchObject({ by: 'cy', via: 'update', reason: 'worth the data point' });
      // No gate is open any more: the CLI says so and exits 2.
      const late = await cli('stop', '--by', 'cy').then(
        () => null,
        (e: unknown) => e as { code: number; stderr: string },
      );
      expect(late?.code).toBe(2);
      expect(late?.stderr).toMatch(/not waiting at a gate/);
    });
  });

  it("npm run gate -- budget raises the running phase's budget with a checked signal", async () => {
    const study = newStudy();
    study.phases = study.phases.map((p) =>
      p.id === 'phase2a' ? { ...p, budget: { phaseUsd: 5, sessionEstimateUsd: 6 } } : p,
    );
    await withWorker(env, stubActivities([]), async (taskQueue) => {
      const handle = await start(taskQueue, study);
      const phaseId = await waitFor(async () => {
        const p = await handle.query(studyProgressQuery);
        if (!p.phaseWorkflowId) return undefined;
        // The study names its phase workflow a moment before the child exists: not found yet means not yet.
        const q = await env.client.workflow
          .getHandle(p.phaseWorkflowId)
          .query(phaseProgressQuery)
          .catch(() => undefined);
        return q?.waitingForBudget ? p.phaseWorkflowId : undefined;
      });
      const raised = await run(
        'npx',
        ['tsx', 'src/cli/main.ts', 'gate', 'budget', '--phase-usd', '20', '--by', 'ana', '--study', study.study],
        { env: { ...process.env, TEMPORAL_ADDRESS: inject('temporalAddress') } },
      );
      expect(raised.stdout).toMatch(/raised the budget of phase2a: \{"phaseUsd":20,"by":"ana"\}/);
      await atGate(handle);
      const phase = await env.client.workflow.getHandle(phaseId).query(phaseProgressQuery);
      expect(phase.budget.phaseUsd).toBe(20);
      expect(phase.ignored).toEqual([]);
      await handle.cancel();
    });
  });

  it('skip ends the study with the final report; the decision is recorded', async () => {
    const calls: Calls = [];
    const study = newStudy();
    await withWorker(env, stubActivities(calls), async (taskQueue) => {
      const handle = await start(taskQueue, study);
      await atGate(handle);
      await handle.executeUpdate(decideGateUpdate, {
        args: [{ decision: 'skip', by: 'dee', reason: 'trend established' }],
      });
      const result = await handle.result();
      expect(result.skipped).toEqual(['phase2b']);
      expect(result.phases).toHaveLength(1);
      expect(result.reportPath).toBe('r.md');
      const names = calls.map((c) => c.name);
      expect(names.filter((n) => n === 'reservePod')).toHaveLength(2); // phase 2a only
      expect(names.indexOf('writeReport')).toBeGreaterThan(names.indexOf('recordGateDecision'));
      const rec = calls.find((c) => c.name === 'recordGateDecision')?.input as RecordGateDecisionInput;
      expect(rec.record).toMatchObject({ gate: 'phase2b', decision: 'skip', by: 'dee', via: 'update' });
    });
  });

  it('a gate with a timeout stops the study when nobody decides', async () => {
    const calls: Calls = [];
    const study = newStudy({ timeoutMs: 1_500, reminderEveryMs: 500 });
    await withWorker(env, stubActivities(calls), async (taskQueue) => {
      const handle = await start(taskQueue, study);
      const gate = await atGate(handle);
      expect(gate.timeoutAt).not.toBeNull();
      const result = await handle.result();
      expect(result.stoppedAt).toBe('phase2b');
      expect(result.decisions[0]).toMatchObject({ decision: 'stop', by: 'gate-timeout', via: 'timeout' });
      expect(calls.filter((c) => c.name === 'reservePod')).toHaveLength(2);
    });
  });
});
