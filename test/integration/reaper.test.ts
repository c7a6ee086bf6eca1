import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunPodClient } from '../../src/activities/runpod/client.js';
import { installReaperSchedule } from '../../src/cli/reaper.js';
import { REAPER_SCHEDULE_ID } from '../../src/shared/constants.js';
import type { ReapOrphanPodsInput } from '../../src/activities/reaper/index.js';
import { loadStudyFile } from '../../src/study/load.js';
import type { podSessionWorkflow, reaperWorkflow } from '../../src/workflows/index.js';
import { sessionProgressQuery } from '../../src/workflows/messages.js';
import { startSandboxWorld, waitFor, type SandboxWorld } from '../support/sandbox-world.js';

/**
 * Terminating a workflow skips its `finally`, so its pod would leak: the reaper must find the pod by its name,
 * see that the owning run is gone, and terminate it, while leaving other projects' pods and live owners alone.
 */
describe('the pod reaper', () => {
  let world: SandboxWorld;
  let env: SandboxWorld['env'];
  let servers: SandboxWorld['servers'];
  let taskQueue: string;
  let runpod: RunPodClient;

  beforeAll(async () => {
    world = await startSandboxWorld({ name: 'reaper' });
    ({ env, servers, taskQueue } = world);
    runpod = new RunPodClient({ apiKey: world.apiKey, baseUrl: servers.runpod.url });
  });

  afterAll(() => world?.stop());

  const reap = (input: ReapOrphanPodsInput) =>
    env.client.workflow.execute<typeof reaperWorkflow>('reaperWorkflow', {
      taskQueue,
      workflowId: `reaper-${randomUUID()}`,
      args: [input],
    });

  it('terminates the pod of a terminated workflow after the grace period, and only that pod', async () => {
    const study = { ...loadStudyFile('studies/rq1.sandbox.yaml'), study: `reap-${randomUUID().slice(0, 8)}` };
    const model = study.phases.find((p) => p.id === 'phase2a')?.models[0];
    if (!model) throw new Error('no model');
    const session = await env.client.workflow.start<typeof podSessionWorkflow>('podSessionWorkflow', {
      taskQueue,
      workflowId: `study-${study.study}--phase2a--Qwen3-30B-A3B-Instruct-2507`,
      args: [{ study, phaseId: 'phase2a', model }],
    });
    // A pod of some other project on the same account: never ours to touch.
    const foreign = await runpod.createPod({
      name: 'someone-elses-pod',
      image: 'ubuntu:24.04',
      gpu: { id: 'NVIDIA H100 80GB HBM3', count: 1 },
      ports: ['22/tcp'],
    });

    const podId = await waitFor(
      'the session past reserving',
      async () => {
        const p = await session.query(sessionProgressQuery);
        return p.podId && p.stage !== 'reserving' ? p.podId : undefined;
      },
      { timeoutMs: 120_000 },
    );
    expect(podId).not.toBe('');

    const whileRunning = await reap({ graceMs: 0, dryRun: false });
    expect(whileRunning.decisions.map((d) => [d.podId, d.action])).toEqual([[podId, 'kept']]);

    // Terminate: no workflow code runs, so the session's finally cannot remove its pod.
    await session.terminate('simulating a lost orchestrator');
    expect(servers.runpod.pods().map((p) => p.id)).toContain(podId);

    const young = await reap({ graceMs: 3_600_000, dryRun: false });
    expect(young.decisions[0]).toMatchObject({ podId, action: 'kept' });
    expect(young.decisions[0]?.reason).toMatch(/closed.*younger than the grace period/);

    const dry = await reap({ graceMs: 0, dryRun: true });
    expect(dry.decisions).toEqual([
      expect.objectContaining({ podId, action: 'would-terminate', reason: 'owning workflow run is closed' }),
    ]);
    expect(servers.runpod.pods().map((p) => p.id)).toContain(podId);

    const real = await reap({ graceMs: 0, dryRun: false });
    expect(real.decisions).toEqual([expect.objectContaining({ podId, action: 'terminated' })]);
    const live = servers.runpod.pods().map((p) => p.id);
    expect(live).not.toContain(podId);
    expect(live).toContain(foreign.id);
    expect(servers.runpod.billing().accruingUsdPerHr).toBe(foreign.cost);

    await runpod.deletePod(foreign.id);
    expect(servers.runpod.billing().accruingUsdPerHr).toBe(0);
  });

  it('installs the reaper schedule, and updates it when it exists', async () => {
    const input = { graceMs: 60_000, dryRun: true };
    await env.client.schedule
      .getHandle(REAPER_SCHEDULE_ID)
      .delete()
      .catch(() => undefined);
    expect(await installReaperSchedule(env.client, { taskQueue, everyMinutes: 10, input })).toBe('created');
    expect(await installReaperSchedule(env.client, { taskQueue, everyMinutes: 5, input })).toBe('updated');
    const d = await env.client.schedule.getHandle(REAPER_SCHEDULE_ID).describe();
    expect(d.action).toMatchObject({ type: 'startWorkflow', workflowType: 'reaperWorkflow', args: [input] });
    expect(d.spec.intervals?.[0]?.every).toBe(5 * 60_000);
    await env.client.schedule.getHandle(REAPER_SCHEDULE_ID).delete();
  });
});
