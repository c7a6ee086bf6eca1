import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { formatSession } from '../../src/cli/follow.js';
import {
  createGpuLockActivities,
  gpuLockPath,
  type AcquireGpuLockInput,
  type AcquireGpuLockOutput,
} from '../../src/activities/workspace/index.js';
import type { RunManifest } from '../../src/activities/results/index.js';
import type { Study } from '../../src/study/schema.js';
import { loadStudyFile } from '../../src/study/load.js';
import { gateDecisionSignal, sessionProgressQuery, studyProgressQuery } from '../../src/workflows/messages.js';
import { temporalWorkflowRunState } from '../../src/workers/workflow-run-state.js';
import { sandboxStudy } from '../../sandbox/sandbox-study.js';
import type { TeamServerInfo } from '../../sandbox/team-server.js';
import { connector, freePort, until } from '../activities/sandbox-pod.js';
import { consistentCut } from '../setup/study-cut.js';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSandboxWorld, type SandboxWorld } from '../support/sandbox-world.js';

/**
 * Phase 1 end to end on the sandbox's stand-in for the team's server (one sshd, four simulated GPUs), every part real:
 * Temporal dev server, the worker with the production activities, `hf` against the local Hub, the simulated vLLM and
 * the Python harness. The study file's marker host is resolved as the CLI's `--sandbox` does (sandboxStudy).
 */
describe("phase 1 on the team's server (sandbox)", () => {
  let world: SandboxWorld;
  let env: SandboxWorld['env'];
  let servers: SandboxWorld['servers'];
  let resultsDir: string;
  let key: string;
  let team: TeamServerInfo;

  beforeAll(async () => {
    world = await startSandboxWorld({ name: 'phase1', teamServer: true });
    ({ env, servers, resultsDir, keyPath: key } = world);
    if (!servers.teamServer) throw new Error('no team server');
    team = servers.teamServer.info;
  });

  afterAll(() => world?.stop());

  /**
   * The sandbox study resolved to this file's team server, under a name of its own, with a few samples per run and a
   * vLLM port of its own (the team server shares this host's loopback with whatever else runs here).
   */
  /** `small`: one model (both prompts: the gate's analysis compares them). */
  async function phase1Study(o: { name: string; limit: number; small?: boolean }): Promise<Study> {
    const base = sandboxStudy(loadStudyFile('studies/rq1.sandbox.yaml'), { teamServer: team });
    return consistentCut({
      ...base,
      study: `${o.name}-${randomUUID().slice(0, 6)}`,
      vllm: { ...base.vllm, port: await freePort() },
      // The small studies of the two-study test measure no idle baseline: they are about the lock.
      harness: { ...base.harness, limit: o.limit, baselineSeconds: o.small ? 0 : 1 },
      phases: base.phases.map((p) =>
        p.id === 'phase1' && p.target.kind === 'ssh-host'
          ? {
              ...p,
              models: o.small ? p.models.slice(0, 1) : p.models,
              target: { ...p.target, gpuLock: { ...p.target.gpuLock, pollIntervalMs: 1_000 } },
            }
          : p,
      ),
    });
  }

  const start = (study: Study) => world.startStudy({ study, startPhase: 'phase1' });

  const atGate = (handle: WorkflowHandle) =>
    until(
      'the phase 2a gate',
      async () => {
        const p = await handle.query(studyProgressQuery);
        if (p.phaseState === 'failed') throw new Error(`study ${handle.workflowId} failed`);
        return p.phaseState === 'waiting-at-gate' ? p : undefined;
      },
      300_000,
    );

  const sessionId = (study: Study, slug = 'Qwen3-4B-Instruct-2507') => `study-${study.study}--phase1--${slug}`;
  const progressOf = (id: string) =>
    env.client.workflow
      .getHandle(id)
      .query(sessionProgressQuery)
      .catch(() => null);

  function manifests(study: Study): RunManifest[] {
    const phaseDir = join(resultsDir, study.study, 'phase1');
    return readdirSync(phaseDir, { withFileTypes: true })
      .filter((d) => d.isDirectory() && d.name.startsWith('Qwen3-'))
      .flatMap((model) =>
        readdirSync(join(phaseDir, model.name), { withFileTypes: true })
          .filter((d) => d.isDirectory() && d.name !== 'logs')
          .flatMap((prompt) => {
            const base = join(phaseDir, model.name, prompt.name);
            return readdirSync(base).map(
              (run) => JSON.parse(readFileSync(join(base, run, 'manifest.json'), 'utf8')) as RunManifest,
            );
          }),
      );
  }

  it('runs both 4B models on GPU 0 of the team server up to the phase 2a gate, creates no pod, frees the GPU', async () => {
    const study = await phase1Study({ name: 'p1', limit: 8 });
    const handle = await start(study);
    const gate = await atGate(handle);
    expect(gate.gate?.nextPhase).toBe('phase2a');
    expect(gate.completedPhases).toEqual(['phase1']);

    const runs = manifests(study);
    expect(runs.map((m) => `${m.model.repoId} ${m.prompt.name}`).sort()).toEqual([
      'Qwen/Qwen3-4B-Instruct-2507 few-shot',
      'Qwen/Qwen3-4B-Instruct-2507 zero-shot',
      'Qwen/Qwen3-4B-Thinking-2507 few-shot',
      'Qwen/Qwen3-4B-Thinking-2507 zero-shot',
    ]);
    for (const m of runs) {
      expect(m.simulated).toBe(true);
      expect(m.pod).toMatchObject({ provider: 'ssh-host', podId: null, gpuIndices: [0], costPerHr: 0 });
      expect(m.pod.hostKeySha256).toBe(team.hostKeySha256);
      expect(m.timings.gpuLockAcquiredAt).toEqual(expect.any(String));
      // The simulated GPUs are the lock's only: the harness saw no NVIDIA GPU and claims none.
      expect(m.hardware?.gpu.present).toBe(false);
      expect(m.hardware?.note).toMatch(/no NVIDIA GPU/);
      expect((m.environment as { gpu_indices: number[] }).gpu_indices).toEqual([0]);
    }
    expect(existsSync(join(resultsDir, study.study, 'phase1', 'decision-packet.json'))).toBe(true);
    // The lock is gone, and nothing the sessions started still runs on the host.
    expect(existsSync(gpuLockPath(team.gpuLockDir, 0))).toBe(false);
    expect(existsSync(join(team.workspaceDir, 'vllm', 'pid'))).toBe(false);
    // Phase 1 never touched RunPod's pods (the gate only read the catalog for phase 2a's price).
    expect(servers.runpod.billing().pods).toHaveLength(0);
    expect(servers.runpod.calls().filter((c) => c.method === 'POST')).toEqual([]);

    await handle.signal(gateDecisionSignal, { decision: 'stop', by: 'test' });
    expect((await handle.result()).stoppedAt).toBe('phase2a');
  });

  it('two studies wanting GPU 0: each waits naming the holder, and they run one after the other', async () => {
    // Someone (a third session) holds GPU 0 when both studies start: a run on the dev server that never executes.
    const holder = await env.client.workflow.start('podSessionWorkflow', {
      taskQueue: `nobody-${randomUUID()}`,
      workflowId: `gpu-holder-${randomUUID()}`,
      args: [],
    });
    const lockActs = createGpuLockActivities({
      connector: connector(key),
      workflowRunState: temporalWorkflowRunState(env.client),
      lockOwnerIdentity: 'someone@elsewhere',
    });
    const lockInput: AcquireGpuLockInput = {
      endpoint: {
        ssh: { host: team.host, port: team.port, username: team.username, hostKeySha256: team.hostKeySha256 },
        workspaceDir: team.workspaceDir,
      },
      gpuIndex: 0,
      lock: { dir: team.gpuLockDir, staleAfterMs: 3_600_000 },
      owner: {
        study: 'manual-test',
        phase: 'phase1',
        model: 'a notebook',
        workflowId: holder.workflowId,
        runId: holder.firstExecutionRunId,
      },
    };
    const acquire = (input: AcquireGpuLockInput): Promise<AcquireGpuLockOutput> =>
      new MockActivityEnvironment().run((i: AcquireGpuLockInput) => lockActs.acquireGpuLock(i), input);
    const held = await acquire(lockInput);
    expect(held.acquired).toBe(true);

    const [a, b] = [
      await phase1Study({ name: 'p1a', limit: 4, small: true }),
      await phase1Study({ name: 'p1b', limit: 4, small: true }),
    ];
    const ids = new Map([
      [a.study, sessionId(a)],
      [b.study, sessionId(b)],
    ]);
    const handles = [await start(a), await start(b)];

    // Both wait, each naming the holder, in the session's progress and in the CLI's line for it.
    for (const id of ids.values()) {
      const waiting = await until(
        `${id} waiting for GPU 0`,
        async () => {
          const p = await progressOf(id);
          return p?.stage === 'waiting-for-gpu' && p.gpuHolder?.record?.workflowId === holder.workflowId
            ? p
            : undefined;
        },
        120_000,
      );
      expect(waiting.gpuHolder?.record).toMatchObject({ study: 'manual-test', startedBy: 'someone@elsewhere' });
      const line = formatSession({ workflowId: id, progress: waiting, inference: null, activity: null }, Date.now());
      expect(line).toMatch(/waiting-for-gpu .*held by study manual-test, phase phase1, model a notebook/);
    }

    // The holder's run ends without releasing (a terminated workflow): its lock is taken over by one of the two,
    // and the other waits naming that one until it has finished.
    await holder.terminate('test: the manual holder is gone');
    const seen = new Map<string, Set<string>>([...ids.keys()].map((s) => [s, new Set<string>()]));
    let finished = false;
    const watch = (async () => {
      while (!finished) {
        for (const [study, id] of ids) {
          const p = await progressOf(id);
          const by = p?.stage === 'waiting-for-gpu' ? p.gpuHolder?.record?.study : undefined;
          if (by) seen.get(study)?.add(by);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await Promise.all(handles.map(atGate)).finally(() => (finished = true));
    await watch;

    const [first, second] = [a, b]
      .map((s) => ({ s, m: manifests(s)[0] }))
      .sort((x, y) => String(x.m?.timings.gpuLockAcquiredAt).localeCompare(String(y.m?.timings.gpuLockAcquiredAt)));
    if (!first?.m || !second?.m) throw new Error('a study wrote no manifest');
    expect(seen.get(second.s.study)).toContain(first.s.study);
    expect(seen.get(first.s.study)).not.toContain(second.s.study);
    // The second got the GPU only after the first's run was written (its lock is released in the session's finally).
    expect(Date.parse(String(second.m.timings.gpuLockAcquiredAt))).toBeGreaterThan(
      Date.parse(String(first.m.timings.finishedAt)),
    );
    expect(Number(second.m.timings.gpuLockWaitMs)).toBeGreaterThan(Number(first.m.timings.gpuLockWaitMs));
    for (const m of [first.m, second.m]) expect(m.pod).toMatchObject({ provider: 'ssh-host', gpuIndices: [0] });

    expect(existsSync(gpuLockPath(team.gpuLockDir, 0))).toBe(false);
    expect(servers.runpod.billing().pods).toHaveLength(0);
    for (const h of handles) await h.signal(gateDecisionSignal, { decision: 'stop', by: 'test' });
    for (const h of handles) expect((await h.result()).stoppedAt).toBe('phase2a');
  });
});
