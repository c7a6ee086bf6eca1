// The manifest's hardware and energy sections, from harness files. The fixtures are real: environment.json and
// metrics.json of `scripts/gpu-energy-check.py` on an NVIDIA H200 (nvidia-smi, NVML, CodeCarbon 2.7.1, torch).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TransferLimitError, type RunInterruption, type RunManifest } from '../../src/activities/results/index.js';
import { createResultsActivities, energyComparability, hardwareOf } from '../../src/activities/results/activities.js';
import { MetricsSchema } from '../../src/activities/harness/index.js';

const fixture = (name: string): unknown => JSON.parse(readFileSync(`test/fixtures/${name}`, 'utf8'));

describe('run manifest sections', () => {
  it('records versions and the GPU as nvidia-smi and torch reported them on a real H200', () => {
    expect(hardwareOf(fixture('environment-h200.json'))).toEqual({
      versions: {
        vllm: '0.11.0+sim',
        vllmPackage: null,
        torch: '2.11.0+cu130',
        cudaRuntime: '13.0',
        cudaDriver: '13.0',
        nvidiaDriver: '580.159.04',
        codecarbon: '2.7.1',
        huggingfaceHub: '1.33.0',
        hfXet: '1.6.0',
        python: '3.12.3',
      },
      gpu: { present: true, count: 1, name: 'NVIDIA H200', memoryTotalMiB: 143771, powerLimitW: 700 },
      note: null,
    });
  });

  it('keeps GPU fields null, with the reason, where there is no GPU', () => {
    const hw = hardwareOf({
      codecarbon: '2.7.1',
      gpu: {
        present: false,
        count: 0,
        name: null,
        memory_total_mib: null,
        power_limit_w: null,
        driver_version: null,
        cuda_driver_version: null,
        indices: [],
        note: 'nvidia-smi not found',
      },
    });
    expect(hw.gpu).toEqual({ present: false, count: 0, name: null, memoryTotalMiB: null, powerLimitW: null });
    expect(hw.note).toBe('nvidia-smi not found');
    expect(() => hardwareOf({ gpu: { present: 'yes' } })).toThrow(/harness contract/);
  });

  it('reads a real metrics.json, and calls energy comparable only when measured in one piece', () => {
    const m = MetricsSchema.parse(fixture('metrics-h200.json'));
    expect(m.energy.complete).toBe(true);
    expect(m.energy.gpu_kwh).toBeGreaterThan(0);
    expect(energyComparability([], m.energy)).toEqual({ comparable: true, reasons: [] });
    const resumed: RunInterruption = {
      at: '2026-12-01T00:00:00Z',
      runId: 'r',
      cause: 'harness-died',
      reason: 'gone',
      policy: 'resume',
      samplesDone: 3,
      samplesTotal: 48,
    };
    const cut = energyComparability([resumed], { ...m.energy, attempts: 2 });
    expect(cut.comparable).toBe(false);
    expect(cut.reasons[0]).toContain('resumed after the harness process died at 3/48 samples');
    expect(energyComparability([], { ...m.energy, complete: false }).comparable).toBe(false);
    expect(energyComparability([], null).reasons).toEqual(['no metrics.json: the run has no energy figures']);
  });
});

describe('writeRunManifest reads only bounded harness JSON', () => {
  const root = mkdtempSync(join(tmpdir(), 'manifest-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const maxJsonBytes = 64 * 1024;
  const acts = createResultsActivities({ resultsDir: root, transferLimits: { maxJsonBytes } });
  // Only what writeRunManifest reads of the workflow's part; the rest is copied through.
  const manifest = { schemaVersion: 1, interruptions: [] } as unknown as RunManifest;

  it('fails on an oversized environment.json or metrics.json, naming the file, its size, the limit and the setting', async () => {
    const run = join(root, 'run');
    mkdirSync(run, { recursive: true });
    const envPath = join(run, 'environment.json');
    writeFileSync(envPath, JSON.stringify({ python: '3.12', padding: 'x'.repeat(maxJsonBytes) }));
    const size = readFileSync(envPath).length;
    const err = await acts.writeRunManifest({ resultsSubdir: 'run', manifest }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransferLimitError);
    expect((err as Error).message).toBe(
      `environment.json in ${run} is ${size} bytes, over the limit of ${maxJsonBytes} for JSON the worker parses (raise TRANSFER_MAX_JSON_BYTES)`,
    );
    expect(existsSync(join(run, 'manifest.json'))).toBe(false);

    writeFileSync(envPath, readFileSync('test/fixtures/environment-h200.json'));
    writeFileSync(join(run, 'metrics.json'), `${' '.repeat(maxJsonBytes)}{}`);
    await expect(acts.writeRunManifest({ resultsSubdir: 'run', manifest })).rejects.toThrow(
      /metrics\.json in .* is 65538 bytes, over the limit of 65536 .*TRANSFER_MAX_JSON_BYTES/,
    );

    writeFileSync(join(run, 'metrics.json'), readFileSync('test/fixtures/metrics-h200.json'));
    const out = await acts.writeRunManifest({ resultsSubdir: 'run', manifest });
    expect(out.metrics?.n).toBeGreaterThan(0);
    const written = JSON.parse(readFileSync(join(run, 'manifest.json'), 'utf8')) as RunManifest;
    expect(written.hardware?.gpu.name).toBe('NVIDIA H200');
  });
});
