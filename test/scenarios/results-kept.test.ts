// Results are never lost, end to end on the sandbox: the pod's SFTP server breaks while the harness runs, so the
// transfer keeps failing. The session keeps the pod (renamed, stopped, not terminated), fails saying how to fetch the
// results, the reaper leaves the pod alone, and `npm run fetch-results` brings them home and terminates it.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RunManifest } from '../../src/activities/results/index.js';
import { KEPT_POD_NAME_PREFIX, modelSlug } from '../../src/shared/constants.js';
import type { Study } from '../../src/study/schema.js';
import { loadStudyFile } from '../../src/study/load.js';
import type { podSessionWorkflow, reaperWorkflow } from '../../src/workflows/index.js';
import { sessionProgressQuery } from '../../src/workflows/messages.js';
import type { PodSessionInput } from '../../src/workflows/types.js';
import { freePort } from '../activities/sandbox-pod.js';
import { consistentCut } from '../setup/study-cut.js';
import { startSandboxWorld, waitFor, type SandboxWorld } from '../support/sandbox-world.js';

const run = promisify(execFile);

describe('results that do not come home (sandbox)', () => {
  let world: SandboxWorld;
  const base = loadStudyFile('studies/rq1.sandbox.yaml');
  const model = base.phases.find((p) => p.id === 'phase2a')?.models[0];
  if (!model) throw new Error('phase2a has no model');
  const [prompt] = base.prompts;
  if (!prompt) throw new Error('the sandbox study has no prompt strategy');
  const samples = 4;

  beforeAll(async () => {
    world = await startSandboxWorld({ name: 'kept', workerEnv: { POD_POLL_INTERVAL_MS: '400' } });
  });

  afterAll(() => world?.stop());

  it('keeps the pod, says how to fetch, and the fetch brings every sample home and terminates the pod', async () => {
    const study: Study = consistentCut({
      ...base,
      study: `kept-${randomUUID().slice(0, 8)}`,
      prompts: [prompt],
      vllm: { ...base.vllm, port: await freePort() },
      harness: { ...base.harness, concurrency: 2, baselineSeconds: 3, limit: samples },
      download: { stallTimeoutMs: 10_000, verifySha256: false },
      transfer: { giveUpAfterMs: 15_000 },
    });
    const input: PodSessionInput = { study, phaseId: 'phase2a', model: model };
    const handle = await world.client.workflow.start<typeof podSessionWorkflow>('podSessionWorkflow', {
      taskQueue: world.taskQueue,
      workflowId: `kept-${randomUUID().slice(0, 8)}`,
      args: [input],
    });

    // Once the harness runs (its pid file is on the pod's volume), the pod's SFTP server breaks.
    const pod = await waitFor(
      'the harness running on the pod',
      async () => {
        const p = await handle.query(sessionProgressQuery);
        const emu = world.servers.runpod.pods().find((x) => x.id === p.podId);
        if (!emu || p.stage !== 'inference') return undefined;
        const runs = join(emu.workspaceDir, 'runs');
        const started = existsSync(runs) && readdirSync(runs).some((r) => existsSync(join(runs, r, 'harness.pid')));
        return started ? emu : undefined;
      },
      { timeoutMs: 480_000 },
    );
    await world.control.injectRunPodFault({ type: 'pod', effect: 'sftp-broken', podId: pod.id });

    // The session fails loudly: which pod, what is not home, the command that fetches it.
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const failure = (err as WorkflowFailedError).cause;
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect((failure as ApplicationFailure).type).toBe('ResultsNotHomeError');
    expect((failure as ApplicationFailure).message).toContain(`Pod ${pod.id} is kept`);
    expect((failure as ApplicationFailure).message).toContain(`Not brought home: ${prompt.name}`);
    expect((failure as ApplicationFailure).message).toContain(`npm run fetch-results -- --pod ${pod.id} --sandbox`);
    const progress = await handle.query(sessionProgressQuery);
    expect(progress.podKept?.name).toMatch(new RegExp(`^${KEPT_POD_NAME_PREFIX}--`));
    expect(progress.podTerminatedAt).toBeNull();

    // The pod is stopped (no compute billing) and renamed, not terminated; nothing of the run is home.
    const kept = world.servers.runpod.pods().find((x) => x.id === pod.id);
    expect(kept?.status).toBe('EXITED');
    expect(kept?.name.startsWith(`${KEPT_POD_NAME_PREFIX}--`)).toBe(true);
    expect(world.servers.runpod.billing().accruingUsdPerHr).toBe(0);
    const record = join(world.resultsDir, study.study, 'kept-pods', `${pod.id}.json`);
    expect(existsSync(record)).toBe(true);
    const promptDir = join(world.resultsDir, study.study, 'phase2a', modelSlug(model.repoId), prompt.name);
    const homeBefore = existsSync(promptDir)
      ? readdirSync(promptDir).filter((r) => existsSync(join(promptDir, r, 'manifest.json')))
      : [];
    expect(homeBefore).toEqual([]);

    // The reaper, even with no grace period, lists the kept pod and leaves it alone.
    const reaped = await world.client.workflow.execute<typeof reaperWorkflow>('reaperWorkflow', {
      taskQueue: world.taskQueue,
      workflowId: `reaper-${randomUUID()}`,
      args: [{ graceMs: 0, dryRun: false }],
    });
    expect(reaped.decisions.find((d) => d.podId === pod.id)).toMatchObject({
      action: 'kept',
      reason: expect.stringContaining(`npm run fetch-results -- --pod ${pod.id}`) as unknown,
    });
    expect(world.servers.runpod.pods().some((x) => x.id === pod.id)).toBe(true);

    // `npm run fetch-results` starts the pod (a fresh container: SFTP works again), brings the run home, terminates.
    const out = await run('npx', ['tsx', 'src/cli/main.ts', 'fetch-results', '--pod', pod.id], {
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: inject('temporalAddress'),
        TASK_QUEUE: world.taskQueue,
        RESULTS_DIR: world.resultsDir,
      },
    });
    expect(out.stdout).toContain(`pod ${pod.id} terminated`);
    const runs = readdirSync(promptDir);
    expect(runs).toHaveLength(1);
    const dir = join(promptDir, runs[0] ?? '');
    const ids = readFileSync(join(dir, 'predictions.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { id: number }).id);
    expect(ids).toHaveLength(samples);
    expect(new Set(ids).size).toBe(samples);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as RunManifest;
    expect(manifest.pod.podId).toBe(pod.id);
    expect(manifest.hardware?.versions).toMatchObject({ codecarbon: '2.7.1' });
    expect(existsSync(join(dir, 'checksums.sha256'))).toBe(true);
    expect(existsSync(record)).toBe(false);

    // Nothing left: the pod is gone and nothing accrues.
    expect(world.servers.runpod.pods()).toHaveLength(0);
    expect(world.servers.runpod.billing().accruingUsdPerHr).toBe(0);
  });
});
