import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { DefaultLogger } from '@temporalio/worker';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { withFailureConversion } from '../../src/activities/failures.js';
import {
  createPlanActivities,
  type PreflightPhaseInput,
  type PreflightPhaseOutput,
} from '../../src/activities/plan/index.js';
import { HarnessCheckClient, HarnessCheckFailedError } from '../../src/activities/study/index.js';
import { PLAN_CACHE_DIR, type PlanPhaseDeps } from '../../src/plan/plan-phase.js';
import { loadStudyFile } from '../../src/study/load.js';
import type { Study } from '../../src/study/schema.js';
import { HARNESS_DIR } from '../../src/workers/worker.js';

/**
 * preflightPhase, the phase workflow's check before any pod: the real plan with the real harness preflight (token
 * counts with the Qwen3 tokenizer), figures from the study's metadata file (offline), failures converted once.
 */
const REPO = process.cwd();
const harness = new HarnessCheckClient({ python: resolve(REPO, '.venv/bin/python'), harnessDir: HARNESS_DIR });
const base = loadStudyFile('studies/rq1.sandbox.yaml');

function deps(o: Partial<PlanPhaseDeps> = {}): PlanPhaseDeps {
  return {
    projectRoot: REPO,
    resultsDir: mkdtempSync(join(tmpdir(), 'preflight-results-')),
    preflight: (i) => harness.preflight(i),
    hub: null,
    catalog: null,
    cacheDir: resolve(REPO, PLAN_CACHE_DIR),
    podRequirementsPath: resolve(REPO, 'pod/requirements.txt'),
    offline: true,
    ...o,
  };
}

function run(d: PlanPhaseDeps, study: Study): Promise<PreflightPhaseOutput> {
  const acts = withFailureConversion(createPlanActivities({ planning: d }));
  const env = new MockActivityEnvironment({ attempt: 1 }, { logger: new DefaultLogger('ERROR') });
  return env.run((input: PreflightPhaseInput) => acts.preflightPhase(input), {
    study,
    phaseId: 'phase2a',
    studySpentUsd: 0,
  });
}

async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.catch((e: unknown) => e);
  if (!(err instanceof ApplicationFailure)) throw new Error(`expected a failure, got ${String(err)}`);
  return err;
}

describe('preflightPhase', () => {
  it("passes the sandbox study's phase 2a and returns each model's time estimate on the first fitting GPU", async () => {
    const out = await run(deps(), base);
    expect(out.checks.map((c) => c.id)).toEqual(['fit', 'context', 'dataset', 'consistency', 'budget']);
    expect(out.checks.some((c) => c.verdict === 'fail')).toBe(false);
    expect(out.estimates.map((e) => [e.repoId, e.gpu])).toEqual([
      ['Qwen/Qwen3-30B-A3B-Instruct-2507', '1x NVIDIA H100 80GB HBM3'],
      ['Qwen/Qwen3-30B-A3B-Thinking-2507', '1x NVIDIA H100 80GB HBM3'],
    ]);
    for (const e of out.estimates) {
      const parts = e.imagePullMs + e.downloadMs + e.loadMs + e.perPromptMs.reduce((a, p) => a + p.ms, 0);
      expect(e.totalMs).toBeCloseTo(parts, -1);
      expect(e.perPromptMs.map((p) => p.prompt)).toEqual(['zero-shot', 'few-shot']);
    }
    expect(out.phaseCostUsd).toBeGreaterThan(0);
    expect(out.simulated).toBe(true);
  }, 60_000);

  it('fails for good on a failed check, naming it', async () => {
    const study: Study = { ...base, budgetUsd: 0.5 };
    const f = await failure(run(deps(), study));
    expect(f.type).toBe('PreflightFailedError');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(
      /the preflight of phase2a failed, nothing was reserved: Estimate and budget: even the cheapest/,
    );
  }, 60_000);

  it('leaves a crashed harness preflight to the retry policy instead of failing the study', async () => {
    const crash = deps({
      preflight: () => Promise.reject(new HarnessCheckFailedError('harness.preflight exited 1', 'MemoryError')),
    });
    const f = await failure(run(crash, base));
    expect(f.type).toBe('HarnessCheckFailedError');
    expect(f.nonRetryable).toBe(false);
  }, 60_000);
});
