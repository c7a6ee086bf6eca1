import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { RunManifest } from '../../src/activities/results/index.js';
import {
  gateDecisionSignal,
  phaseProgressQuery,
  sessionProgressQuery,
  studyProgressQuery,
} from '../../src/workflows/messages.js';
import type { Study } from '../../src/study/schema.js';
import { loadStudyFile } from '../../src/study/load.js';
import { startSandboxWorld, waitFor, type SandboxWorld } from '../support/sandbox-world.js';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Phase 2a end to end, every part real: Temporal dev server, the worker with the production activities, the
 * RunPod emulator whose pods are OpenSSH servers, the `hf` CLI against the local Hub, the simulated vLLM
 * started on the pod as `vllm serve`, and the Python harness with CodeCarbon 2.7.1.
 */
describe('phase 2a on the sandbox', () => {
  let world: SandboxWorld;
  let env: SandboxWorld['env'];
  let servers: SandboxWorld['servers'];
  let resultsDir: string;

  beforeAll(async () => {
    world = await startSandboxWorld({ name: 'e2e' });
    ({ env, servers, resultsDir } = world);
  });

  afterAll(() => world?.stop());

  const sandboxStudy = (): Study => ({
    ...loadStudyFile('studies/rq1.sandbox.yaml'),
    study: `e2e-${randomUUID().slice(0, 8)}`,
  });

  const start = (study: Study) => world.startStudy({ study, startPhase: 'phase2a' });

  it('runs both models and both prompts, brings verified results home, terminates every pod, and waits at the gate', async () => {
    const study = sandboxStudy();
    const handle = await start(study);
    const atGate = await waitFor('the phase 2b gate', async () => {
      const p = await handle.query(studyProgressQuery);
      return p.phaseState === 'waiting-at-gate' ? p : undefined;
    });
    expect(atGate.gate?.nextPhase).toBe('phase2b');

    const phaseDir = join(resultsDir, study.study, 'phase2a');
    const runDirs = ['Qwen3-30B-A3B-Instruct-2507', 'Qwen3-30B-A3B-Thinking-2507'].flatMap((model) =>
      ['zero-shot', 'few-shot'].flatMap((prompt) => {
        const base = join(phaseDir, model, prompt);
        return readdirSync(base).map((run) => join(base, run));
      }),
    );
    expect(runDirs).toHaveLength(4);
    for (const runDir of runDirs) {
      // One prediction per unique sample (the synthetic file repeats two rows).
      const predictions = readFileSync(join(runDir, 'predictions.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(predictions).toHaveLength(48);
      expect(new Set(predictions.map((p) => p.id)).size).toBe(48);
      for (const key of [
        'id',
        'label',
        'raw_output',
        'prediction',
        'finish_reason',
        'prompt_tokens',
        'completion_tokens',
        'latency_ms',
      ]) {
        expect(predictions[0]).toHaveProperty(key);
      }
      const csv = readFileSync(join(runDir, 'emissions.csv'), 'utf8').trim().split('\n');
      expect(csv.length).toBeGreaterThanOrEqual(2); // header + this run's row

      const metrics = JSON.parse(readFileSync(join(runDir, 'metrics.json'), 'utf8')) as Record<string, unknown>;
      expect(metrics.n).toBe(48);
      expect(metrics.accuracy).toBeGreaterThan(0.3);
      expect(metrics).toHaveProperty('confusion');

      const manifest = JSON.parse(readFileSync(join(runDir, 'manifest.json'), 'utf8')) as RunManifest;
      expect(manifest.simulated).toBe(true);
      expect(manifest.pod.gpuTypeId).toBe('NVIDIA H100 80GB HBM3');
      expect(manifest.candidatesTried[0]?.outcome).toBe('created');
      expect((manifest.environment as { codecarbon: string }).codecarbon).toBe('2.7.1');
      expect(manifest.vllm.reportedVersion).toMatch(/sim/);
      expect(manifest.model.commitSha).toMatch(/^[0-9a-f]{40}$/);
      expect(manifest.datasetSha256).toMatch(/^[0-9a-f]{64}$/);

      // The checksum file covers every file and matches what is on disk.
      const sums = readFileSync(join(runDir, 'checksums.sha256'), 'utf8').trim().split('\n');
      const listed = sums.map((l) => l.split(/\s+/)[1]);
      expect(listed).toEqual(
        expect.arrayContaining(['predictions.jsonl', 'emissions.csv', 'metrics.json', 'manifest.json']),
      );
      execFileSync('sha256sum', ['--check', '--quiet', 'checksums.sha256'], { cwd: runDir });
    }
    // Thinking runs keep the reasoning apart from the answer.
    const thinkingRun = runDirs.find((d) => d.includes('Thinking')) ?? '';
    const firstThinking = JSON.parse(
      readFileSync(join(thinkingRun, 'predictions.jsonl'), 'utf8').split('\n')[0] ?? '{}',
    ) as { reasoning: string | null };
    expect(firstThinking.reasoning).toBeTruthy();
    expect(existsSync(join(phaseDir, 'summary.json'))).toBe(true);

    // Two pods were created (one per model) and both are gone; billing has stopped for each.
    const billing = servers.runpod.billing();
    expect(servers.runpod.pods()).toHaveLength(0);
    expect(billing.pods).toHaveLength(2);
    expect(billing.accruingUsdPerHr).toBe(0);

    // The phase began with the plan's checks, made on the worker, and kept their estimates for the ETA.
    const phase = await env.client.workflow.getHandle(`study-${study.study}--phase2a`).query(phaseProgressQuery);
    expect(phase.preflight?.checks.map((c) => [c.id, c.verdict === 'fail'])).toEqual([
      ['fit', false],
      ['context', false],
      ['dataset', false],
      ['consistency', false],
      ['budget', false],
    ]);
    expect(phase.preflight?.estimates.map((e) => e.repoId)).toEqual([
      'Qwen/Qwen3-30B-A3B-Instruct-2507',
      'Qwen/Qwen3-30B-A3B-Thinking-2507',
    ]);

    await handle.signal(gateDecisionSignal, { decision: 'stop', by: 'test' });
    const result = await handle.result();
    expect(result.stoppedAt).toBe('phase2b');
  });

  it('starts nothing when the preflight fails: prompts that overflow maxModelLen stop the phase before a pod', async () => {
    const base = sandboxStudy();
    // Room for the thinking model's maxTokens and 64 prompt tokens: every sandbox prompt is longer.
    const study: Study = { ...base, vllm: { ...base.vllm, maxModelLen: 24_576 + 64 } };
    const podsBefore = servers.runpod.billing().pods.length;
    const handle = await start(study);
    const err = await handle.result().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const chain: string[] = [];
    for (let e: unknown = err; e instanceof Error; e = e.cause) chain.push(`${e.name}: ${e.message}`);
    const failure = chain.find((m) => m.includes('the preflight of phase2a failed'));
    expect(failure, chain.join('\n')).toBeDefined();
    expect(failure).toMatch(/Context length: .*maxModelLen/);
    // No pod was ever created for it, and no session workflow was started.
    expect(servers.runpod.billing().pods).toHaveLength(podsBefore);
    const session = env.client.workflow.getHandle(`study-${study.study}--phase2a--Qwen3-30B-A3B-Instruct-2507`);
    await expect(session.describe()).rejects.toThrow(/not found/i);
  });

  it('terminates the pod when the study is cancelled while a session is busy', async () => {
    const study = sandboxStudy();
    const handle = await start(study);
    const sessionId = `study-${study.study}--phase2a--Qwen3-30B-A3B-Instruct-2507`;
    const busy = await waitFor('a session past pod creation', async () => {
      try {
        const p = await env.client.workflow.getHandle(sessionId).query(sessionProgressQuery);
        return p.podId && ['preparing', 'downloading', 'starting-vllm', 'inference'].includes(p.stage) ? p : undefined;
      } catch {
        return undefined;
      }
    });
    expect(servers.runpod.pods().map((p) => p.id)).toContain(busy.podId);
    await handle.cancel();
    const err = await handle.result().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const session = await env.client.workflow.getHandle(sessionId).query(sessionProgressQuery);
    expect(session.podTerminatedAt).not.toBeNull();
    expect(servers.runpod.pods().map((p) => p.id)).not.toContain(busy.podId);
    expect(servers.runpod.billing().accruingUsdPerHr).toBe(0);
  });
});
