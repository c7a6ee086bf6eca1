import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { withFailureConversion } from '../../src/activities/failures.js';
import { SshPodConnector } from '../../src/activities/ssh/index.js';
import { createRunPodActivities } from '../../src/activities/runpod/activities.js';
import { RunPodClient } from '../../src/activities/runpod/index.js';
import { modelSlug, workflowIds } from '../../src/shared/constants.js';
import type { RunManifest } from '../../src/activities/results/index.js';
import { loadStudyFile } from '../../src/study/load.js';
import type { Study } from '../../src/study/schema.js';
import type { podSessionWorkflow } from '../../src/workflows/index.js';
import { sessionProgressQuery } from '../../src/workflows/messages.js';
import { CAPACITY_CRUNCH_DELAY_MS, scenarioByName } from '../../sandbox/scenarios.js';
import { freePort } from '../activities/sandbox-pod.js';
import { consistentCut } from '../setup/study-cut.js';
import { startSandboxWorld, waitFor, type SandboxWorld } from '../support/sandbox-world.js';

/**
 * RunPod trouble end to end on the sandbox: the real worker and activities, the emulator's sshd pods, the `hf` CLI,
 * the simulated vLLM and the harness. One model, one prompt, a few samples per session, so each runs in seconds.
 * After each scenario the emulator's billing meter shows no leaked pod and nothing still accruing.
 */
describe('RunPod scenarios on the sandbox', () => {
  let world: SandboxWorld;
  let env: SandboxWorld['env'];
  let servers: SandboxWorld['servers'];
  let dir: string;
  let resultsDir: string;
  let apiKey: string;

  const base = loadStudyFile('studies/rq1.sandbox.yaml');
  const phase2a = base.phases.find((p) => p.id === 'phase2a');
  const model = phase2a?.models[0];
  if (!phase2a || !model || phase2a.target.kind !== 'runpod') throw new Error('phase2a must be a RunPod phase');
  const runpodTarget = phase2a.target;

  beforeAll(async () => {
    // Each test starts a worker of its own (a unique task queue) with `world.startWorker()`.
    world = await startSandboxWorld({ name: 'scenarios', worker: false });
    ({ env, servers, dir, resultsDir, apiKey } = world);
  });

  afterAll(() => world?.stop());

  /** The sandbox study cut down to one prompt and a few samples, with fast reservation retries. */
  async function smallStudy(target: Record<string, unknown> = {}, limit = 4): Promise<Study> {
    return consistentCut({
      ...base,
      study: `sc-${randomUUID().slice(0, 8)}`,
      prompts: base.prompts.slice(0, 1),
      harness: { ...base.harness, limit, baselineSeconds: 0 },
      // Sandbox pods share the host's loopback: a port of its own keeps this vLLM clear of other suites' pods.
      vllm: { ...base.vllm, port: await freePort() },
      phases: base.phases.map((p) =>
        p.id === 'phase2a'
          ? {
              ...p,
              models: [model!],
              target: {
                ...runpodTarget,
                podReadyTimeoutMs: 30_000,
                reservation: {
                  initialIntervalMs: 1_000,
                  maximumIntervalMs: 2_000,
                  deadlineMs: 180_000,
                  maxUnreadyPods: 3,
                  maxPodReplacements: 2,
                },
                ...target,
              },
            }
          : p,
      ),
    });
  }

  function startSession(study: Study, taskQueue: string): Promise<WorkflowHandle<typeof podSessionWorkflow>> {
    return env.client.workflow.start<typeof podSessionWorkflow>('podSessionWorkflow', {
      taskQueue,
      workflowId: workflowIds.podSession(study.study, 'phase2a', modelSlug(model!.repoId)),
      args: [{ study, phaseId: 'phase2a', model: model! }],
    });
  }

  function manifestOf(study: Study): RunManifest {
    const promptDir = join(resultsDir, study.study, 'phase2a', modelSlug(model!.repoId), base.prompts[0]!.name);
    const [runDir] = readdirSync(promptDir);
    return JSON.parse(readFileSync(join(promptDir, runDir!, 'manifest.json'), 'utf8')) as RunManifest;
  }

  /** The study's pods: none alive, none accruing, each reserve round (pod name) billed at most once. */
  function expectNoLeakNoDuplicate(study: Study): string[] {
    const ours = (name: string) => name.startsWith(`gpustudy--${study.study}--`);
    expect(servers.runpod.pods().filter((p) => ours(p.name))).toEqual([]);
    const billed = servers.runpod.billing().pods.filter((p) => ours(p.name));
    expect(billed.filter((p) => p.accruing)).toEqual([]);
    const names = billed.map((p) => p.name);
    expect(new Set(names).size).toBe(names.length);
    return names;
  }

  const control = () => world.control;

  it(
    'capacity crunch: backs off while every candidate is empty, then falls back to the one that gets GPUs',
    async () => {
      const { taskQueue } = await world.startWorker();
      await scenarioByName('capacity-crunch').apply(control());
      try {
        const study = await smallStudy();
        const handle = await startSession(study, taskQueue);
        // While nothing has capacity, the Web UI's pending activity says which candidates were tried and why.
        const pending = await waitFor(
          'a failed reserve attempt',
          async () => {
            const d = await handle.describe();
            const a = d.raw.pendingActivities?.[0];
            return a?.lastFailure?.message && (a.attempt ?? 0) >= 2 ? a : undefined;
          },
          { timeoutMs: 120_000, ignoreProbeErrors: true },
        );
        expect(pending.activityType?.name).toBe('reservePod');
        expect(pending.lastFailure?.message).toMatch(/#0 .*no-capacity.*#1 .*no-capacity.*#2 .*no-capacity/);

        await handle.result();
        const manifest = manifestOf(study);
        expect(manifest.pod.gpuTypeId).toBe('NVIDIA A100-SXM4-80GB');
        expect(manifest.pod.dataCenterId).toBe('US-TX-3');
        expect(manifest.candidatesTried.map((a) => `${a.index}:${a.outcome}`)).toEqual([
          '0:no-capacity',
          '1:no-capacity',
          '2:created',
        ]);
        expect(manifest.candidatesTried[2]?.detail).toMatch(/reserve attempt \d+/);
        expect(expectNoLeakNoDuplicate(study)).toHaveLength(1);
      } finally {
        // The crunch's capacity change may still be pending if the test failed early; restore the sandbox's stock.
        servers.runpod.setCapacity({
          cells: [
            { gpuTypeId: 'NVIDIA H100 80GB HBM3', dataCenterId: 'US-KS-2', freeGpus: 8 },
            { gpuTypeId: 'NVIDIA H100 80GB HBM3', dataCenterId: 'EU-RO-1', freeGpus: 4 },
            { gpuTypeId: 'NVIDIA A100-SXM4-80GB', dataCenterId: 'US-TX-3', freeGpus: 4 },
          ],
          afterMs: 0,
        });
      }
    },
    CAPACITY_CRUNCH_DELAY_MS + 120_000,
  );

  it('a pod that never gets an SSH port is terminated and the next candidate completes the session', async () => {
    const { taskQueue } = await world.startWorker();
    await scenarioByName('pods-never-ready').apply(control());
    // Long enough for a healthy sandbox pod (about 6 s from create to SSH), short enough not to wait long for the bad one.
    const study = await smallStudy({ podReadyTimeoutMs: 12_000 });
    const handle = await startSession(study, taskQueue);
    await handle.result();
    const manifest = manifestOf(study);
    expect(manifest.candidatesTried.map((a) => `${a.index}:${a.outcome}`)).toEqual([
      '0:created',
      '0:not-ready',
      '1:created',
    ]);
    expect(manifest.candidatesTried[1]?.detail).toMatch(
      /never got a public SSH port; last status RUNNING\); pod terminated/,
    );
    expect(manifest.pod.dataCenterId).toBe('EU-RO-1');
    // Two pods were billed, one per round (different names), and both are gone.
    const names = expectNoLeakNoDuplicate(study);
    expect(names.map((n) => n.slice(-3))).toEqual(expect.arrayContaining(['-r0', '-r1']));
    expect(names).toHaveLength(2);
  });

  describe('API storm and vanishing pods, at the reserve step', () => {
    // The real RunPod activities in a mock activity context; `attempts` plays Temporal's retries.
    const activities = () =>
      withFailureConversion(
        createRunPodActivities({
          runpod: new RunPodClient({ apiKey, baseUrl: servers.runpod.url }),
          connector: new SshPodConnector({ privateKeyPath: join(dir, 'id_ed25519'), connectTimeoutMs: 5_000 }),
          publicKey: readFileSync(join(dir, 'id_ed25519.pub'), 'utf8').trim(),
          pollIntervalMs: 200,
        }),
      );
    async function withRetries<T>(fn: (attempt: number) => Promise<T>, attempts = 5): Promise<T> {
      for (let attempt = 1; ; attempt++) {
        try {
          return await fn(attempt);
        } catch (err) {
          if (attempt >= attempts || (err instanceof ApplicationFailure && err.nonRetryable)) throw err;
        }
      }
    }
    const inContext = <T>(attempt: number, fn: () => Promise<T>): Promise<T> =>
      new MockActivityEnvironment({ attempt }, { logger: new DefaultLogger('ERROR') }).run<[], T, () => Promise<T>>(fn);

    it('api-storm: list 503s and create 429s are ridden out; the create answered 502 is adopted, not repeated', async () => {
      const study = await smallStudy();
      const podName = `gpustudy--${study.study}--phase2a--m--abcdef01-r0`;
      await scenarioByName('api-storm').apply(control());
      const creates = () => servers.runpod.calls().filter((c) => c.method === 'POST' && c.path === '/pods').length;
      const before = creates();
      const acts = activities();
      const out = await withRetries((attempt) =>
        inContext(attempt, () => acts.reservePod({ podName, target: runpodTarget })),
      );
      expect(out.attempts.map((a) => `${a.index}:${a.outcome}`)).toEqual([
        '0:rate-limited',
        '0:rate-limited',
        '0:rate-limited',
        '0:adopted',
      ]);
      expect(creates() - before).toBe(4); // three 429s, then the one create that happened
      expect(servers.runpod.billing().pods.filter((p) => p.name === podName)).toHaveLength(1);
      await inContext(1, () => acts.terminatePod({ podId: out.pod.podId }));
      expectNoLeakNoDuplicate(study);
    });

    it('pod-vanishes: the pod disappears while starting and readiness says so', async () => {
      const study = await smallStudy();
      const podName = `gpustudy--${study.study}--phase2a--m--abcdef02-r0`;
      await scenarioByName('pod-vanishes').apply(control());
      const acts = activities();
      const out = await inContext(1, () => acts.reservePod({ podName, target: runpodTarget }));
      const err = await inContext(1, () =>
        acts.waitForPodReady({ podId: out.pod.podId, timeoutMs: 30_000, defaultWorkspaceDir: '/workspace' }),
      ).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApplicationFailure);
      expect((err as ApplicationFailure).type).toBe('PodGoneError');
      // Gone means gone: terminating it is a no-op that counts as done.
      const t = await inContext(1, () => acts.terminatePod({ podId: out.pod.podId }));
      expect(t.alreadyGone).toBe(true);
      expectNoLeakNoDuplicate(study);
    });
  });

  it('watchdog: with the worker gone, the pod ends its work and stops itself', async () => {
    const { worker, taskQueue, running } = await world.startWorker();
    // Slow tokens, so the session is still in inference when the worker goes away.
    await control().injectRunPodFault({ type: 'pod-env', env: { VLLM_SIM_TOKENS_PER_S: '5' } });
    // 12 s: longer than the longest gap between touches inside an activity (WATCHDOG_TOUCH_INTERVAL_MS, 10 s, also
    // during the model check after the download), short enough to keep the test quick.
    const study = await smallStudy(
      { watchdog: { enabled: true, staleAfterMs: 12_000, checkIntervalMs: 1_000, selfStop: 'pod-key' } },
      40,
    );
    const handle = await startSession(study, taskQueue);
    try {
      const busy = await waitFor(
        'inference on the pod',
        async () => {
          const p = await handle.query(sessionProgressQuery);
          return p.stage === 'inference' && p.podId ? p : undefined;
        },
        { timeoutMs: 120_000, ignoreProbeErrors: true },
      );
      const podId = busy.podId!;
      const pod = servers.runpod.pods().find((p) => p.id === podId);
      expect(pod?.status).toBe('RUNNING');
      const ws = pod!.workspaceDir;
      expect(readFileSync(join(ws, 'watchdog', 'state'), 'utf8').trim()).toBe('watching');

      // The worker goes away (as if its machine died): nobody touches the pod's heartbeat file any more.
      worker.shutdown();
      await running;

      const stopped = await waitFor(
        'the pod to stop itself',
        () => Promise.resolve(servers.runpod.pods().find((p) => p.id === podId && p.status === 'EXITED')),
        { timeoutMs: 60_000, ignoreProbeErrors: true },
      );
      expect(stopped.status).toBe('EXITED');
      const meter = servers.runpod.billing().pods.find((p) => p.podId === podId);
      expect(meter?.accruing).toBe(false);
      // It used its own pod-scoped key, through the stop action, and ended the work before that.
      const stopCall = servers.runpod.calls().find((c) => c.path === `/pods/${podId}/action`);
      expect(stopCall?.status).toBe(200);
      const log = readFileSync(join(ws, 'watchdog', 'log'), 'utf8');
      expect(log).toMatch(/no heartbeat from the orchestrator/);
      expect(log).toMatch(/ended .*harness\.pid/);
      expect(log).toMatch(/ended .*vllm\/pid/);
      expect(log).toMatch(new RegExp(`stopping pod ${podId}`));
      // A stopped pod keeps its volume (results survive) but no longer bills compute.
      expect(existsSync(join(ws, 'runs'))).toBe(true);

      // The pod key is good for nothing else: not even terminating its own pod.
      const podKey = new RunPodClient({ apiKey: stopped.podApiKey, baseUrl: servers.runpod.url });
      await expect(podKey.deletePod(podId)).rejects.toThrow(/403/);
    } finally {
      await control().clearRunPodFaults();
      await handle.terminate('test over').catch(() => undefined);
      const client = new RunPodClient({ apiKey, baseUrl: servers.runpod.url });
      for (const p of servers.runpod.pods().filter((x) => x.name.startsWith(`gpustudy--${study.study}--`))) {
        await client.deletePod(p.id);
      }
    }
    expectNoLeakNoDuplicate(study);
  });
});
