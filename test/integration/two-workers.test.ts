// A deployment of two workers on one task queue, each with its own results folder, sharing results through an
// S3-compatible store (a real versitygw server). Mid-phase, the worker holding the first run's manifest is SIGKILLed:
// the other finishes the phase (the remaining runs, the summary, the decision packet, the report), pulling what the
// dead worker had brought home from the store. Nothing is lost, no pod leaks, each model billed one pod.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { modelSlug } from '../../src/shared/constants.js';
import { loadStudyFile } from '../../src/study/load.js';
import type { Study } from '../../src/study/schema.js';
import { studyProgressQuery } from '../../src/workflows/messages.js';
import { startS3Server, type S3Server } from '../../sandbox/s3-server.js';
import { freePort } from '../activities/sandbox-pod.js';
import { startSandboxWorld, waitFor, type SandboxWorld } from '../support/sandbox-world.js';

interface WorkerProcess {
  name: string;
  resultsDir: string;
  proc: ChildProcess;
  exited: Promise<number | null>;
}

/** Every `.../<run>/manifest.json` below a results folder, relative to it. */
function manifests(resultsDir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const abs = join(resultsDir, rel);
    if (!existsSync(abs)) return;
    for (const e of readdirSync(abs, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(rel, e.name));
      else if (e.name === 'manifest.json') out.push(join(rel, e.name));
    }
  };
  walk('');
  return out.sort();
}

describe('two workers, one task queue, a shared results store', () => {
  let world: SandboxWorld;
  let s3: S3Server;
  const workers: WorkerProcess[] = [];
  const bucket = 'gpustudy-results';

  beforeAll(async () => {
    world = await startSandboxWorld({ name: 'two-workers', worker: false });
    s3 = await startS3Server({ dir: join(world.dir, 's3') });
    await s3.createBucket(bucket);
    for (const name of ['a', 'b']) {
      const resultsDir = join(world.dir, `results-${name}`);
      mkdirSync(resultsDir, { recursive: true });
      // A worker process as deployed: `npm run worker`'s entry point with its environment.
      const proc = spawn(process.execPath, ['--import', 'tsx', 'src/workers/main.ts'], {
        env: {
          ...process.env,
          SANDBOX: 'true',
          TEMPORAL_ADDRESS: inject('temporalAddress'),
          TASK_QUEUE: world.taskQueue,
          RUNPOD_API_KEY: world.apiKey,
          RUNPOD_BASE_URL: world.servers.runpod.url,
          HF_ENDPOINT: world.servers.hf.url,
          SSH_PRIVATE_KEY_PATH: world.keyPath,
          RESULTS_DIR: resultsDir,
          POD_POLL_INTERVAL_MS: '500',
          RESULTS_STORE_URL: `s3://${bucket}/studies`,
          RESULTS_STORE_ENDPOINT: s3.url,
          AWS_ACCESS_KEY_ID: s3.accessKey,
          AWS_SECRET_ACCESS_KEY: s3.secretKey,
        },
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
      workers.push({ name, resultsDir, proc, exited });
    }
  });

  afterAll(async () => {
    for (const w of workers) {
      if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGTERM');
      await w.exited;
    }
    await s3?.close();
    await world?.stop();
  });

  it('finishes the phase on the surviving worker with every result, brought home once, in the store', async () => {
    const base = loadStudyFile('studies/rq1.sandbox.yaml');
    const study: Study = {
      ...base,
      study: `two-workers-${randomUUID().slice(0, 8)}`,
      vllm: { ...base.vllm, port: await freePort() },
    };
    const handle = await world.startStudy({ study, startPhase: 'phase2a' });

    // The first manifest written: on one worker only, the one that ran writeRunManifest. That worker dies.
    const { victim, first } = await waitFor(
      'a first run manifest on one worker',
      () => {
        for (const w of workers) {
          const [m] = manifests(w.resultsDir);
          if (m) return { victim: w, first: m };
        }
        return undefined;
      },
      { timeoutMs: 480_000 },
    );
    victim.proc.kill('SIGKILL');
    await victim.exited;
    const survivor = workers.find((w) => w !== victim);
    if (!survivor) throw new Error('no second worker');
    // Only summarizePhase, at the phase's end, reads that run folder again: the survivor does not have it yet.
    expect(existsSync(join(survivor.resultsDir, first))).toBe(false);

    const atGate = await waitFor(
      'the phase 2b gate',
      async () => {
        const p = await handle.query(studyProgressQuery);
        return p.phaseState === 'waiting-at-gate' ? p : undefined;
      },
      { timeoutMs: 900_000, ignoreProbeErrors: true },
    );
    expect(atGate.gate?.nextPhase).toBe('phase2b');

    // The survivor holds all four runs, the dead worker's first one included: pulled from the store.
    const phaseDir = join(study.study, 'phase2a');
    const runs = manifests(survivor.resultsDir).filter((m) => m.startsWith(phaseDir));
    expect(runs).toHaveLength(4);
    expect(runs).toContain(first);
    const models = study.phases.find((p) => p.id === 'phase2a')?.models ?? [];
    for (const m of models)
      for (const p of study.prompts)
        expect(runs.filter((r) => r.startsWith(join(phaseDir, modelSlug(m.repoId), p.name)))).toHaveLength(1);

    // No sample lost or duplicated; every file matches its checksum line.
    for (const manifest of runs) {
      const dir = join(survivor.resultsDir, manifest, '..');
      const ids = readFileSync(join(dir, 'predictions.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { id: number }).id);
      expect(ids).toHaveLength(48);
      expect(new Set(ids).size).toBe(48);
      for (const line of readFileSync(join(dir, 'checksums.sha256'), 'utf8').trim().split('\n')) {
        const [sum, name] = line.split(/\s+/);
        const actual = createHash('sha256')
          .update(readFileSync(join(dir, name ?? '')))
          .digest('hex');
        expect(`${name}: ${actual}`).toBe(`${name}: ${sum}`);
      }
    }
    const summary = JSON.parse(readFileSync(join(survivor.resultsDir, phaseDir, 'summary.json'), 'utf8')) as {
      runs: unknown[];
    };
    expect(summary.runs).toHaveLength(4);

    // The store has what a third worker (or the CLI) needs: every run, the summary, the packet and the report.
    const keys = await s3.listKeys(bucket, 'studies/');
    for (const manifest of runs) expect(keys).toContain(`studies/${manifest}`);
    expect(keys).toContain(`studies/${phaseDir}/summary.json`);
    expect(keys).toContain(`studies/${phaseDir}/decision-packet.json`);
    expect(keys).toContain(`studies/${study.study}/report.md`);

    // One pod per model, each terminated: none leaked, none doubled by the retried activities.
    const billed = world.servers.runpod.billing();
    expect(billed.pods).toHaveLength(models.length);
    expect(new Set(billed.pods.map((p) => p.name)).size).toBe(models.length);
    expect(billed.pods.every((p) => p.deletedAt !== null)).toBe(true);
    expect(billed.accruingUsdPerHr).toBe(0);
    expect(world.servers.runpod.pods()).toHaveLength(0);

    await handle.terminate('test done');
  });
});
