// Earlier runs from a results folder as writeRunManifest leaves it: settings for the cross-phase check and the
// measured figures; broken or unfinished runs are skipped with a note, never a crash.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hardwareOf } from '../../src/activities/results/activities.js';
import { readRunHistory } from '../../src/plan/history.js';
import type { RunManifest } from '../../src/activities/results/index.js';

const environment = JSON.parse(readFileSync('test/fixtures/environment-h200.json', 'utf8')) as Record<string, unknown>;
const metricsText = readFileSync('test/fixtures/metrics-h200.json', 'utf8');
const sampling = { temperature: 0.7, topP: 0.8, topK: 20, minP: 0, maxTokens: 16384, seed: 1234 };

function manifest(over: { prompt: string; runId: string }): RunManifest {
  return {
    schemaVersion: 1,
    simulated: false,
    study: 'rq1',
    phase: 'phase2a',
    model: {
      repoId: 'Qwen/Qwen3-30B-A3B-Instruct-2507',
      revision: 'main',
      commitSha: 'a'.repeat(40),
      thinking: false,
      reasoningParser: null,
    },
    prompt: { name: over.prompt, templateSha256: 't'.repeat(64), fewShotSha256: null },
    datasetSha256: 'd'.repeat(64),
    runId: over.runId,
    workflowId: 'study-rq1--phase2a--Qwen3-30B-A3B-Instruct-2507',
    pod: {
      provider: 'runpod',
      podId: 'pod1',
      gpuTypeId: 'NVIDIA H200',
      gpuCount: 1,
      dataCenterId: 'US-KS-2',
      cloud: 'SECURE',
      image: 'runpod/pytorch',
      costPerHr: 3.59,
    },
    candidatesTried: [],
    vllm: {
      version: '0.11.0',
      dtype: 'bfloat16',
      maxModelLen: 32768,
      maxNumSeqs: 16,
      maxNumBatchedTokens: 8192,
      seed: 0,
      gpuMemoryUtilization: 0.9,
      enablePrefixCaching: false,
      port: 8000,
      startupTimeoutMs: 1_800_000,
      tensorParallelSize: 1,
      reportedVersion: '0.11.0+cu128',
      commandLine: 'vllm serve ...',
      loadTimeMs: 95_000,
    },
    sampling,
    harness: {
      concurrency: 16,
      baselineSeconds: 60,
      requestTimeoutS: 900,
      limit: null,
      interruptionPolicy: 'restart',
      maxInterruptions: 2,
    },
    codecarbon: { countryIsoCode: 'USA', measurePowerSecs: 1, trackingMode: 'machine' },
    environment,
    timings: {
      sessionStartedAt: '2026-12-01T10:00:00Z',
      downloadMs: 610_000,
      vllmLoadMs: 95_000,
      inferenceMs: 80_000,
      samples: 48,
    },
    cost: { podCostSoFarUsd: 1.2, note: '' },
    download: {
      totalBytes: 61_064_245_248,
      reused: false,
      usedXetFallback: false,
      xetFallback: null,
      repaired: [],
      sha256Verified: false,
    },
    interruptions: [],
    hardware: hardwareOf(environment),
    energy: { comparable: true, reasons: [] },
  };
}

describe('readRunHistory', () => {
  let root: string;
  const runDir = (...parts: string[]) => {
    const dir = join(root, 'rq1', 'phase2a', 'Qwen3-30B-A3B-Instruct-2507', ...parts);
    mkdirSync(dir, { recursive: true });
    return dir;
  };

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'plan-history-'));
    // A finished run, as writeRunManifest leaves it.
    const good = runDir('zero-shot', 'run-good');
    writeFileSync(join(good, 'manifest.json'), JSON.stringify(manifest({ prompt: 'zero-shot', runId: 'run-good' })));
    writeFileSync(join(good, 'metrics.json'), metricsText);
    // A manifest cut off mid-write by hand (the worker writes atomically): skipped.
    writeFileSync(join(runDir('few-shot', 'run-broken'), 'manifest.json'), '{"schemaVersion": 1, "study": "rq');
    // A run still going (no manifest yet): silently not a run.
    writeFileSync(join(runDir('few-shot', 'run-going'), 'predictions.jsonl'), '');
    // Phase-level files beside the model folders are not runs.
    writeFileSync(join(root, 'rq1', 'phase2a', 'summary.json'), '{}');
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('reads settings and measured figures of each finished run and skips a broken one with a note', () => {
    const { runs, notes } = readRunHistory({ resultsDir: root, study: 'rq1' });
    expect(runs).toEqual([
      {
        phase: 'phase2a',
        runDir: 'rq1/phase2a/Qwen3-30B-A3B-Instruct-2507/zero-shot/run-good',
        repoId: 'Qwen/Qwen3-30B-A3B-Instruct-2507',
        thinking: false,
        prompt: 'zero-shot',
        gpuTypeId: 'NVIDIA H200',
        gpuCount: 1,
        samples: 48,
        completionTokens: 1634,
        promptTokens: 9195,
        inferenceMs: 54_613,
        vllmLoadMs: 95_000,
        downloadMs: 610_000,
        downloadBytes: 61_064_245_248,
        settings: {
          vllmVersion: '0.11.0+cu128',
          codecarbonVersion: '2.7.1',
          dtype: 'bfloat16',
          sampling,
          concurrency: 16,
          dataset: 'd'.repeat(64),
          templates: { templateSha256: 't'.repeat(64), fewShotSha256: null },
          prefixCaching: false,
          maxModelLen: 32768,
          maxNumSeqs: 16,
          maxNumBatchedTokens: 8192,
        },
      },
    ]);
    expect(notes).toEqual([
      'rq1/phase2a/Qwen3-30B-A3B-Instruct-2507/few-shot/run-broken: skipped: manifest.json not valid JSON',
    ]);
  });

  it('falls back where an older or partial run lacks a record, and never reads through a link', () => {
    const dir = runDir('few-shot', 'run-old');
    const m = manifest({ prompt: 'few-shot', runId: 'run-old' }) as unknown as Record<string, unknown>;
    // An older manifest: no hardware summary (codecarbon from the environment record), vLLM without reportedVersion.
    m.hardware = null;
    m.vllm = { ...(m.vllm as object), reportedVersion: undefined, loadTimeMs: undefined };
    // The weights were already on the volume: no download rate to learn.
    m.download = { ...(m.download as object), reused: true };
    m.prompt = { name: 'few-shot', templateSha256: 'u'.repeat(64), fewShotSha256: 'f'.repeat(64) };
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
    // metrics.json is a link (to anything): refused, the run kept without measured figures.
    symlinkSync(join(root, 'rq1', 'phase2a', 'summary.json'), join(dir, 'metrics.json'));
    // A manifest of another study copied into this folder is not this study's run.
    const stray = runDir('few-shot', 'run-stray');
    writeFileSync(
      join(stray, 'manifest.json'),
      JSON.stringify({ ...manifest({ prompt: 'few-shot', runId: 'x' }), study: 'rq9' }),
    );

    const { runs, notes } = readRunHistory({ resultsDir: root, study: 'rq1' });
    const old = runs.find((r) => r.runDir.endsWith('run-old'));
    expect(old).toMatchObject({
      samples: 48,
      completionTokens: null,
      promptTokens: null,
      inferenceMs: null,
      vllmLoadMs: 95_000,
      downloadMs: null,
      downloadBytes: null,
    });
    expect(old?.settings).toMatchObject({
      vllmVersion: '0.11.0',
      codecarbonVersion: '2.7.1',
      templates: { templateSha256: 'u'.repeat(64), fewShotSha256: 'f'.repeat(64) },
    });
    expect(runs.map((r) => r.runDir.split('/').pop())).toEqual(['run-old', 'run-good']);
    expect(notes).toEqual([
      'rq1/phase2a/Qwen3-30B-A3B-Instruct-2507/few-shot/run-broken: skipped: manifest.json not valid JSON',
      'rq1/phase2a/Qwen3-30B-A3B-Instruct-2507/few-shot/run-old: metrics.json a link: no measured tokens or inference time',
      'rq1/phase2a/Qwen3-30B-A3B-Instruct-2507/few-shot/run-stray: skipped: its manifest is of rq9/phase2a, not of this folder',
    ]);
  });

  it('caps what it reads, and finds nothing for a study with no results', () => {
    const { runs, notes } = readRunHistory({ resultsDir: root, study: 'rq1', maxJsonBytes: 1024 });
    expect(runs).toEqual([]);
    expect(notes.some((n) => /run-good: skipped: manifest\.json \d+ bytes, over the limit of 1024/.test(n))).toBe(true);
    expect(readRunHistory({ resultsDir: root, study: 'nothing-here' })).toEqual({ runs: [], notes: [] });
  });
});
