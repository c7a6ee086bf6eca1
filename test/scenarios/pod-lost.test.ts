// A pod lost mid-session, end to end on the sandbox: the production worker, the RunPod emulator's sshd pods, the Hub
// with the real `hf` CLI, the simulated vLLM and the harness with CodeCarbon. The pod vanishes while it runs the
// second prompt strategy; the session replaces it and ends with every run correct, two pods billed and none leaked.
import { randomUUID } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunManifest } from '../../src/activities/results/index.js';
import { modelSlug } from '../../src/shared/constants.js';
import type { Study } from '../../src/study/schema.js';
import { loadStudyFile } from '../../src/study/load.js';
import type { podSessionWorkflow } from '../../src/workflows/index.js';
import { sessionProgressQuery } from '../../src/workflows/messages.js';
import type { PodSessionInput } from '../../src/workflows/types.js';
import { freePort } from '../activities/sandbox-pod.js';
import { consistentCut } from '../setup/study-cut.js';
import { startSandboxWorld, waitFor, type SandboxWorld } from '../support/sandbox-world.js';

describe('a pod lost mid-session (sandbox)', () => {
  let world: SandboxWorld;
  const base = loadStudyFile('studies/rq1.sandbox.yaml');
  const model = base.phases.find((p) => p.id === 'phase2a')?.models[0];
  if (!model) throw new Error('phase2a has no model');
  const [first, second] = base.prompts;
  if (!first || !second) throw new Error('the sandbox study has fewer than two prompt strategies');
  const samples = 4;

  beforeAll(async () => {
    world = await startSandboxWorld({ name: 'pod-lost', workerEnv: { POD_POLL_INTERVAL_MS: '400' } });
  });

  afterAll(() => world?.stop());

  it('replaces the pod that vanished under the second strategy and brings every run home', async () => {
    const study: Study = consistentCut({
      ...base,
      study: `lost-${randomUUID().slice(0, 8)}`,
      prompts: [first, second],
      vllm: { ...base.vllm, port: await freePort() },
      // The idle baseline opens each run: seconds in which the run is surely under way when the pod goes.
      harness: { ...base.harness, concurrency: 2, baselineSeconds: 6, limit: samples },
      download: { stallTimeoutMs: 10_000, verifySha256: false },
    });
    const input: PodSessionInput = { study, phaseId: 'phase2a', model: model };
    const handle = await world.client.workflow.start<typeof podSessionWorkflow>('podSessionWorkflow', {
      taskQueue: world.taskQueue,
      workflowId: `pod-lost-${randomUUID().slice(0, 8)}`,
      args: [input],
    });

    // Wait until the first run is home and the second is running, then make its pod vanish.
    const lostPodId = await waitFor(
      'the second strategy running on the first pod',
      async () => {
        const p = await handle.query(sessionProgressQuery);
        return p.runsDone === 1 && p.stage === 'inference' && p.prompt === second.name ? p.podId : undefined;
      },
      { timeoutMs: 480_000 },
    );
    if (!lostPodId) throw new Error('no pod id while running');
    await world.control.injectRunPodFault({ type: 'pod', effect: 'vanish', podId: lostPodId, afterMs: 0 });

    const out = await handle.result();
    const progress = await handle.query(sessionProgressQuery);

    // Every run home, each with every sample once; the second one on the replacement pod.
    expect(out.runs.map((r) => r.prompt)).toEqual([first.name, second.name]);
    const slug = modelSlug(model.repoId);
    const manifests = [first.name, second.name].map((prompt) => {
      const promptDir = join(world.resultsDir, study.study, 'phase2a', slug, prompt);
      const runs = readdirSync(promptDir);
      // The interrupted run never came home: one run folder per strategy.
      expect(runs).toHaveLength(1);
      const dir = join(promptDir, runs[0] ?? '');
      const ids = readFileSync(join(dir, 'predictions.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { id: number }).id);
      expect(new Set(ids).size).toBe(samples);
      expect(ids).toHaveLength(samples);
      return JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as RunManifest;
    });
    const [m1, m2] = manifests;
    expect(m1?.pod.podId).toBe(lostPodId);
    expect(m1?.podReplacements).toEqual([]);
    expect(m2?.pod.podId).not.toBe(lostPodId);
    expect(m2?.podReplacements).toEqual([
      expect.objectContaining({
        lostPodId,
        newPodId: m2?.pod.podId,
        interruptedPrompt: second.name,
      }),
    ]);
    expect(m2?.podReplacements?.[0]?.reason).toMatch(/vanished/);
    expect(m2?.interruptions).toEqual([expect.objectContaining({ cause: 'pod-lost', policy: 'restart' })]);
    expect(m2?.energy?.comparable).toBe(true);
    expect(progress.podReplacements).toHaveLength(1);

    // Two pods billed, both ended, nothing accruing; the session's cost counts both.
    const billing = world.servers.runpod.billing();
    const billed = billing.pods.filter((p) => p.name.includes(`--${study.study}--`));
    expect(billed.map((p) => p.podId)).toEqual(expect.arrayContaining([lostPodId, m2?.pod.podId]));
    expect(billed).toHaveLength(2);
    expect(billed.every((p) => !p.accruing && p.deletedAt !== null)).toBe(true);
    expect(billing.accruingUsdPerHr).toBe(0);
    expect(world.servers.runpod.pods()).toHaveLength(0);
    const billedUsd = billed.reduce((a, p) => a + p.usd, 0);
    expect(out.podCostUsd).toBeGreaterThan(billed[0]?.usd ?? 0);
    expect(Math.abs(out.podCostUsd - billedUsd)).toBeLessThan(0.5 * billedUsd);
  });
});
