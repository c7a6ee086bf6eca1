// The pod-side sandbox scenarios end to end: a pod session on the real dev server and the production worker, against
// the in-process RunPod emulator (sshd pods), the sandbox Hub with the real `hf` CLI, the simulated vLLM and the
// harness. Each scenario ends with correct results or a clear non-retryable failure, and the pod terminated.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { ActivityFailure, type ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { modelSlug } from '../../src/shared/constants.js';
import type { RunManifest } from '../../src/activities/results/index.js';
import type { PodSessionInput, PodSessionOutput } from '../../src/workflows/types.js';
import type { Study } from '../../src/study/schema.js';
import { loadStudyFile } from '../../src/study/load.js';
import type { podSessionWorkflow } from '../../src/workflows/index.js';
import { sessionProgressQuery } from '../../src/workflows/messages.js';
import { DEFAULT_SHARD_COUNT, shardFileName } from '../../sandbox/hf-server/index.js';
import { consistentCut } from '../setup/study-cut.js';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scenarioByName, type SandboxControl } from '../../sandbox/scenarios.js';
import { freePort } from '../activities/sandbox-pod.js';
import { startSandboxWorld, type SandboxWorld } from '../support/sandbox-world.js';

const FIRST = shardFileName(1, DEFAULT_SHARD_COUNT);
const LAST = shardFileName(DEFAULT_SHARD_COUNT, DEFAULT_SHARD_COUNT);

interface Metrics {
  n: number;
  accuracy: number;
  energy: { attempts: number; complete: boolean; gpu_kwh: number; gpu_kwh_net_of_baseline: number | null };
}

describe('pod-side sandbox scenarios', () => {
  let world: SandboxWorld;
  let env: SandboxWorld['env'];
  let servers: SandboxWorld['servers'];
  let control: SandboxControl;
  let resultsDir: string;
  let taskQueue: string;

  const base = loadStudyFile('studies/rq1.sandbox.yaml');
  const phase = base.phases.find((p) => p.id === 'phase2a');
  const model = phase?.models[0];
  if (!model) throw new Error('phase2a has no model');
  const slug = modelSlug(model.repoId);

  beforeAll(async () => {
    world = await startSandboxWorld({ name: 'scenarios', workerEnv: { POD_POLL_INTERVAL_MS: '400' } });
    ({ env, servers, control, resultsDir, taskQueue } = world);
  });

  afterAll(() => world?.stop());

  /**
   * One model, one prompt strategy, a few samples, a download stall timeout of seconds, and a vLLM port of its own
   * (sandbox pods share this host's loopback with any other sandbox running here).
   */
  async function smallStudy(harness: Partial<Study['harness']> = {}): Promise<Study> {
    return consistentCut({
      ...base,
      study: `sc-${randomUUID().slice(0, 8)}`,
      prompts: base.prompts.filter((p) => p.name === 'zero-shot'),
      vllm: { ...base.vllm, port: await freePort() },
      harness: { ...base.harness, concurrency: 2, baselineSeconds: 1, limit: 4, ...harness },
      download: { stallTimeoutMs: 3_000, verifySha256: false },
    });
  }

  /** Applies the scenario, runs one pod session to its end, clears every fault, and checks the pod is gone. */
  async function runScenario(name: string, study: Study) {
    await scenarioByName('none').apply(control);
    await scenarioByName(name).apply(control);
    const requestsBefore = servers.hf.requests.length;
    let handle: WorkflowHandle<typeof podSessionWorkflow> | undefined;
    try {
      const input: PodSessionInput = { study, phaseId: 'phase2a', model: model as PodSessionInput['model'] };
      handle = await env.client.workflow.start<typeof podSessionWorkflow>('podSessionWorkflow', {
        taskQueue,
        workflowId: `scenario-${name}-${randomUUID().slice(0, 8)}`,
        args: [input],
      });
      const outcome = await handle.result().then(
        (out: PodSessionOutput) => ({ out, err: null }),
        (err: unknown) => ({ out: null, err }),
      );
      const progress = await handle.query(sessionProgressQuery);
      // Whatever happened, the pod is terminated and nothing bills any more.
      expect(progress.podTerminatedAt).not.toBeNull();
      expect(servers.runpod.pods()).toHaveLength(0);
      expect(servers.runpod.billing().accruingUsdPerHr).toBe(0);
      const requests = servers.hf.requests.slice(requestsBefore);
      return { ...outcome, handle, progress, requests };
    } finally {
      await scenarioByName('none').apply(control);
    }
  }

  function runDir(study: Study): string {
    const promptDir = join(resultsDir, study.study, 'phase2a', slug, 'zero-shot');
    const runs = readdirSync(promptDir);
    expect(runs).toHaveLength(1);
    return join(promptDir, runs[0] ?? '');
  }

  const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;

  /** The run's files are complete and correct: every sample once, metrics, manifest with versions and hardware. */
  function checkRun(study: Study, samples: number) {
    const d = runDir(study);
    const ids = readFileSync(join(d, 'predictions.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { id: number }).id);
    expect(ids).toHaveLength(samples);
    expect(new Set(ids).size).toBe(samples);
    const metrics = readJson<Metrics>(join(d, 'metrics.json'));
    expect(metrics.n).toBe(samples);
    expect(metrics.energy.complete).toBe(true);
    const manifest = readJson<RunManifest>(join(d, 'manifest.json'));
    expect(manifest.simulated).toBe(true);
    expect(manifest.vllm.commandLine).toContain("'--host' '127.0.0.1'");
    expect(manifest.vllm.loadTimeMs).toBeGreaterThan(0);
    expect(manifest.hardware?.versions).toMatchObject({ vllm: '0.11.0+sim', codecarbon: '2.7.1', torch: null });
    // No GPU in the sandbox: the GPU fields are null, and the manifest says why.
    expect(manifest.hardware?.gpu).toEqual({
      present: false,
      count: 0,
      name: null,
      memoryTotalMiB: null,
      powerLimitW: null,
    });
    expect(manifest.hardware?.note).toMatch(/no NVIDIA GPU/);
    return { dir: d, metrics, manifest };
  }

  const lfsGets = (requests: typeof servers.hf.requests, file: string) =>
    requests.filter((r) => r.method === 'GET' && r.path.startsWith(`/_lfs/${model.repoId}/`) && r.path.endsWith(file));

  it('xet-stall: the stalled transfer is killed and resumed with Xet off; the run completes', async () => {
    const study = await smallStudy();
    const { out, err, requests } = await runScenario('xet-stall', study);
    expect(err).toBeNull();
    expect(out?.runs).toHaveLength(1);
    const { manifest } = checkRun(study, 4);
    expect(manifest.download).toMatchObject({ usedXetFallback: true, xetFallback: { reason: 'stall' }, repaired: [] });
    const shardGets = lfsGets(requests, FIRST);
    expect(shardGets.map((g) => g.fault)).toEqual(['stall', null]);
    expect(lfsGets(requests, LAST)).toHaveLength(1); // finished before the stall: kept
  });

  it('corrupt-shard: the truncated shard fails verification, is fetched again, and never reaches vLLM', async () => {
    const study = await smallStudy();
    const { err, requests } = await runScenario('corrupt-shard', study);
    expect(err).toBeNull();
    const { manifest } = checkRun(study, 4);
    expect(manifest.download.repaired).toHaveLength(1);
    expect(manifest.download.repaired[0]).toContain(`${LAST}: ${700 * 1024} bytes on disk, the Hub says`);
    expect(lfsGets(requests, LAST).map((g) => g.fault)).toEqual(['truncate', null]);
  });

  it('vllm-oom: the session fails for good with the numbers and a suggestion, without retrying, pod terminated', async () => {
    const study = await smallStudy();
    const { err, handle, progress } = await runScenario('vllm-oom', study);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const activity = (err as WorkflowFailedError).cause;
    expect(activity).toBeInstanceOf(ActivityFailure);
    const failure = (activity as ActivityFailure).cause as ApplicationFailure;
    expect(failure.type).toBe('ModelDoesNotFitError');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toMatch(
      new RegExp(`does not fit this GPU .* at max-model-len ${study.vllm.maxModelLen}\\b`),
    );
    expect(failure.message).toContain('CUDA out of memory: tried to allocate 2 GiB');
    expect(failure.message).toContain('Suggestion:');
    expect(progress.stage).toBe('failed');
    const history = await handle.fetchHistory();
    const vllmStarts = (history.events ?? []).filter(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'startVllm',
    );
    expect(vllmStarts).toHaveLength(1);
    const attempts = (history.events ?? [])
      .map((e) => e.activityTaskStartedEventAttributes?.attempt)
      .filter((a): a is number => typeof a === 'number');
    expect(Math.max(...attempts)).toBe(1); // no activity was retried: the failure was final at once
    expect(existsSync(join(resultsDir, study.study, 'phase2a', slug, 'zero-shot'))).toBe(false);
  });

  it('vllm-crash-mid-run (restart policy): vLLM is restarted and the strategy rerun on a fresh measurement', async () => {
    const study = await smallStudy({ concurrency: 1 });
    const { out, err } = await runScenario('vllm-crash-mid-run', study);
    expect(err).toBeNull();
    const { manifest, metrics } = checkRun(study, 4);
    expect(manifest.runId).toMatch(/-zero-shot-r1$/);
    expect(out?.runs[0]?.runId).toBe(manifest.runId);
    expect(manifest.interruptions).toHaveLength(1);
    expect(manifest.interruptions[0]).toMatchObject({ policy: 'restart', samplesDone: 2, samplesTotal: 4 });
    expect(manifest.interruptions[0]?.runId).toBe(manifest.runId.replace(/-r1$/, ''));
    expect(metrics.energy.attempts).toBe(1); // measured in one piece
    expect(manifest.energy).toEqual({ comparable: true, reasons: [] });
  });

  it('vllm-crash-mid-run (resume policy): the same run continues and its energy is marked not comparable', async () => {
    const study = await smallStudy({ concurrency: 1, interruptionPolicy: 'resume' });
    const { err } = await runScenario('vllm-crash-mid-run', study);
    expect(err).toBeNull();
    const { manifest, metrics } = checkRun(study, 4);
    expect(manifest.runId).toMatch(/-zero-shot$/);
    expect(manifest.interruptions).toEqual([expect.objectContaining({ policy: 'resume', runId: manifest.runId })]);
    expect(metrics.energy.attempts).toBe(2);
    expect(manifest.energy?.comparable).toBe(false);
    expect(manifest.energy?.reasons.join(' ')).toMatch(/resumed after the model server died at 2\/4 samples/);
  });

  it('ssh-drop: every step reconnects and re-attaches to its detached process; the harness runs exactly once', async () => {
    // Sequential requests at the scenario's 60 tokens/s keep inference longer than the 5 s between cuts.
    const study = await smallStudy({ concurrency: 1, limit: 8 });
    const { err } = await runScenario('ssh-drop', study);
    expect(err).toBeNull();
    const { manifest, metrics, dir: d } = checkRun(study, 8);
    expect(manifest.timings.inferenceSshReconnects).toBeGreaterThanOrEqual(1);
    expect(manifest.interruptions).toEqual([]);
    expect(metrics.energy.attempts).toBe(1); // re-attached, never restarted
    expect(readFileSync(join(d, 'attempts.jsonl'), 'utf8').trim().split('\n')).toHaveLength(1);
  });
});
