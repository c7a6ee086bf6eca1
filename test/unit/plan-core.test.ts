// The plan's pure core with the real numbers: memory fit, context, cross-phase consistency, estimates, verdicts.
import { describe, expect, it } from 'vitest';
import { buildPlan, type PlanInput } from '../../src/plan/build.js';
import { compareWithEarlierPhases, type PlannedSettings } from '../../src/plan/consistency.js';
import { checkContext } from '../../src/plan/context.js';
import { estimateSession } from '../../src/plan/estimate.js';
import { fitModel, GIB, type FitInput } from '../../src/plan/fit.js';
import type { GpuFacts, ModelFacts, PreflightReport, RunHistory } from '../../src/plan/types.js';
import { parseStudy } from '../../src/study/load.js';
import { loadStudyFile } from '../../src/study/load.js';
import { PlanningSettingsSchema } from '../../src/study/schema.js';

const src = { kind: 'metadata-file' as const, detail: 'test', takenAt: '2026-12-03' };
const qwen = (
  repoId: string,
  weightBytes: number,
  layers: number,
  heads: number,
  kvHeads: number,
  activeParamsB: number,
): ModelFacts => ({
  repoId,
  revision: 'main',
  commitSha: null,
  weightBytes,
  architecture: {
    layers,
    attentionHeads: heads,
    kvHeads,
    headDim: 128,
    dtype: 'bfloat16',
    maxPositionEmbeddings: 262_144,
  },
  activeParamsB,
  tokenizer: { jsonPath: '/t/tokenizer.json', configPath: null, sha256: 'x' },
  source: { weights: src, config: src, tokenizer: src },
});
const Q4B = qwen('Qwen/Qwen3-4B-Instruct-2507', 8_044_936_192, 36, 32, 8, 4.0);
const Q30B = qwen('Qwen/Qwen3-30B-A3B-Instruct-2507', 61_064_245_248, 48, 32, 4, 3.3);
const Q235B = qwen('Qwen/Qwen3-235B-A22B-Instruct-2507', 470_187_269_120, 94, 64, 4, 22);
const gpu = (gpuTypeId: string, memoryGib: number, memoryBandwidthGBps: number, secure: number | null): GpuFacts => ({
  gpuTypeId,
  memoryGib,
  memoryBandwidthGBps,
  pricePerGpuHr: { secure, community: null },
  source: { memory: src, price: src, bandwidth: src },
});
const H100 = gpu('NVIDIA H100 80GB HBM3', 80, 3350, 2.69);
const H200 = gpu('NVIDIA H200', 141, 4800, 3.59);

const fit = (
  model: ModelFacts,
  g: GpuFacts | { memoryGib: number },
  gpuCount: number,
  maxModelLen: number,
  extra: Partial<FitInput> = {},
) =>
  fitModel({
    weightBytes: model.weightBytes,
    architecture: model.architecture,
    dtype: 'bfloat16',
    gpuMemoryGib: g.memoryGib,
    gpuCount,
    gpuMemoryUtilization: 0.9,
    runtimeOverheadGib: 4,
    maxModelLen,
    ...extra,
  });

describe('memory fit', () => {
  it('Qwen3-235B-A22B BF16 does not fit 1, 2 or 4 x H100 80 GB; it fits 4 x H200 and 8 x H100 or H200', () => {
    for (const n of [1, 2, 4]) {
      const r = fit(Q235B, H100, n, 65_536);
      expect(r.fits, `${n}x H100`).toBe(false);
      expect(r.reason).toMatch(/exceed/);
    }
    expect(fit(Q235B, H100, 1, 65_536).reason).toMatch(/weights 437\.9 GiB \+ runtime 4\.0 GiB exceed the 72\.0 GiB/);
    expect(fit(Q235B, H200, 2, 65_536).fits).toBe(false);
    for (const [g, n] of [
      [H200, 4],
      [H200, 8],
      [H100, 8],
    ] as const) {
      const r = fit(Q235B, g, n, 65_536);
      expect(r.fits, `${n}x ${g.gpuTypeId}: ${r.reason}`).toBe(true);
      expect(r.tensorParallelSize).toBe(n);
    }
    // 4 x H200: 109.5 GiB of weights per GPU; one KV head per GPU: 2 x 94 x 1 x 128 x 2 B per token.
    const r = fit(Q235B, H200, 4, 65_536);
    expect(r.weightsGibPerGpu).toBeCloseTo(109.5, 1);
    expect(r.kvBytesPerTokenPerGpu).toBe(48_128);
    // 8 GPUs and 4 KV heads: each GPU still holds (a replica of) one head per layer.
    expect(fit(Q235B, H100, 8, 65_536).kvBytesPerTokenPerGpu).toBe(48_128);
  });

  it('Qwen3-30B-A3B BF16 fits one 80 GB GPU only well below its 262,144 default; not a 48 GB A6000 or a 40 GB A100', () => {
    const at262k = fit(Q30B, H100, 1, 262_144);
    expect(at262k.fits).toBe(false);
    expect(at262k.reason).toMatch(/KV cache holds 12[0-9],[0-9]{3} tokens/);
    const at64k = fit(Q30B, H100, 1, 65_536);
    expect(at64k.fits, at64k.reason).toBe(true);
    // 2 x 48 layers x 4 KV heads x 128 x 2 B = 96 KiB per token (reference/pod-side.md 1.7).
    expect(at64k.kvBytesPerTokenPerGpu).toBe(96 * 1024);
    expect(at64k.weightsGibPerGpu).toBeCloseTo(61_064_245_248 / GIB, 6);
    expect(at64k.maxModelLenCapacity).toBeGreaterThan(100_000);
    expect(at64k.maxModelLenCapacity).toBeLessThan(262_144 / 2);
    expect(fit(Q30B, { memoryGib: 48 }, 1, 32_768).fits).toBe(false);
    expect(fit(Q30B, { memoryGib: 40 }, 1, 32_768).fits).toBe(false);
    expect(fit(Q30B, H200, 1, 262_144).fits).toBe(true);
  });

  it('the 4B models fit a 24 GB RTX A5000 at 64k, and the reasons name the numbers', () => {
    const r = fit(Q4B, { memoryGib: 24 }, 1, 65_536);
    expect(r.fits, r.reason).toBe(true);
    expect(r.reason).toMatch(/weights 7\.5 GiB \+ runtime 4\.0 GiB \+ KV 9\.0 GiB for 65,536 tokens within 21\.6 GiB/);
  });

  it('refuses a tensor-parallel size vLLM cannot use and a context beyond the model', () => {
    expect(fit(Q235B, H200, 6, 65_536).reason).toMatch(/attention heads divisible by tensor parallel size 6/);
    expect(fit(Q30B, H200, 2, 65_536, { tensorParallelSize: 4 }).reason).toMatch(/more than the 2 GPU/);
    expect(fit(Q30B, H200, 1, 300_000).reason).toMatch(/beyond the model's 262,144/);
  });
});

const tokens = (key: string, prompt: string, counts: [number, number][]): PreflightReport['tokens'][number] => {
  const max = counts.reduce((a, c) => (c[1] > a[1] ? c : a));
  return {
    key,
    prompt,
    framing: 'chatml',
    framingNote: 'ChatML framing',
    maxTokens: max[1],
    maxId: max[0],
    totalTokens: 0,
    counts,
  };
};

describe('context', () => {
  it('names the samples that do not fit and the smallest maxModelLen that would', () => {
    const t = [
      tokens('m', 'zero-shot', [
        [1, 900],
        [2, 16_800],
        [3, 9_000],
      ]),
      tokens('m', 'few-shot', [
        [1, 2_000],
        [2, 18_100],
        [3, 10_000],
      ]),
    ];
    const r = checkContext({ repoId: 'm', maxTokens: 24_576, maxModelLen: 32_768, tokens: t });
    expect(r.map((x) => [x.prompt, x.overIds, x.neededMaxModelLen])).toEqual([
      ['zero-shot', [2, 3], 16_800 + 24_576],
      ['few-shot', [2, 3], 18_100 + 24_576],
    ]);
    expect(
      checkContext({ repoId: 'm', maxTokens: 24_576, maxModelLen: 65_536, tokens: t }).every((x) => !x.overIds.length),
    ).toBe(true);
  });
});

const settings = (over: Partial<RunHistory['settings']> = {}): RunHistory['settings'] => ({
  vllmVersion: '0.11.0',
  codecarbonVersion: '2.7.1',
  dtype: 'bfloat16',
  sampling: { temperature: 0.7, topP: 0.8, topK: 20, minP: 0, maxTokens: 16_384, seed: 1234 },
  concurrency: 16,
  dataset: 'd'.repeat(64),
  templates: { templateSha256: 'a'.repeat(64), fewShotSha256: null },
  prefixCaching: false,
  maxModelLen: 65_536,
  maxNumSeqs: 16,
  maxNumBatchedTokens: 8192,
  ...over,
});
const run = (phase: string, over: Partial<RunHistory> = {}, s: Partial<RunHistory['settings']> = {}): RunHistory => ({
  phase,
  runDir: `r/${phase}`,
  repoId: Q4B.repoId,
  thinking: false,
  prompt: 'zero-shot',
  gpuTypeId: 'NVIDIA RTX A5000',
  gpuCount: 1,
  samples: 384,
  completionTokens: 384 * 700,
  promptTokens: 384 * 2000,
  inferenceMs: 30 * 60_000,
  vllmLoadMs: 90_000,
  downloadMs: null,
  downloadBytes: null,
  settings: settings(s),
  ...over,
});
const planned = (over: Partial<PlannedSettings> = {}): PlannedSettings => {
  const s = settings();
  return {
    vllmVersion: '0.11.0',
    codecarbonVersion: '2.7.1',
    dtype: 'bfloat16',
    sampling: { instruct: s.sampling, thinking: { ...(s.sampling as object), temperature: 0.6 } },
    concurrency: 16,
    dataset: 'd'.repeat(64),
    templates: { 'zero-shot': { templateSha256: 'a'.repeat(64), fewShotSha256: null } },
    prefixCaching: false,
    maxModelLen: 65_536,
    maxNumSeqs: 16,
    maxNumBatchedTokens: 8192,
    ...over,
  };
};

describe('consistency across phases', () => {
  it('finds the settings that differ, with the phases that ran them, and honours declarations', () => {
    const runs = [
      run('phase1', {}, { vllmVersion: '0.10.2', maxModelLen: 32_768 }),
      run('phase1', { thinking: true, prompt: 'few-shot' }, { sampling: { temperature: 0.6 }, maxModelLen: 32_768 }),
    ];
    const diffs = compareWithEarlierPhases({
      planned: planned(),
      earlierRuns: runs,
      declared: { maxModelLen: 'prompts need 64k' },
    });
    expect(diffs.map((d) => [d.variable, d.declared])).toEqual([
      ['vllmVersion', null],
      ['sampling', null],
      ['maxModelLen', 'prompts need 64k'],
    ]);
    expect(diffs[0]?.earlier).toEqual([{ value: '"0.10.2"', phases: ['phase1'], runs: 1 }]);
    expect(diffs[2]?.earlier[0]?.runs).toBe(2);
  });

  it('compares sampling within the Instruct/Thinking kind and templates within a prompt, key order aside', () => {
    const s = settings().sampling as Record<string, unknown>;
    const reordered = Object.fromEntries(Object.entries(s).reverse());
    const diffs = compareWithEarlierPhases({
      planned: planned(),
      earlierRuns: [
        run('phase1', {}, { sampling: reordered }),
        run('phase1', { prompt: 'other' }, { templates: { templateSha256: 'b' } }),
      ],
      declared: {},
    });
    expect(diffs).toEqual([]);
    const changed = compareWithEarlierPhases({
      planned: planned({
        templates: { 'zero-shot': { templateSha256: 'c'.repeat(64), fewShotSha256: null } },
        dataset: 'e'.repeat(64),
      }),
      earlierRuns: [run('phase1')],
      declared: {},
    });
    expect(changed.map((d) => d.variable)).toEqual(['dataset', 'templates']);
  });
});

describe('estimates', () => {
  const planning = PlanningSettingsSchema.parse({});
  const base = {
    thinking: false,
    maxTokens: 16_384,
    gpuCount: 1,
    rented: true,
    prompts: ['zero-shot', 'few-shot'],
    samples: 384,
    concurrency: 16,
    baselineSeconds: 60,
    planning,
    otherModels: [Q4B, Q30B],
    otherGpus: [H100],
  };

  it('with no history: bandwidth-bound decode at the default efficiency, default output lengths, cost from the price', () => {
    const e = estimateSession({ ...base, model: Q30B, gpu: H100, costPerHr: 2.69, history: [] });
    const rate = (0.15 * 16 * 3350e9) / (3.3e9 * 2);
    expect(e.outputTokensPerSecond).toBeCloseTo(rate, 6);
    expect(e.downloadMs).toBeCloseTo((61_064_245_248 / 100e6) * 1000, 0);
    expect(e.loadMs).toBeCloseTo((61_064_245_248 / 1000e6) * 1000 + 180_000, 0);
    expect(e.perPrompt[0]?.outputTokensPerSample).toBe(800);
    expect(e.perPrompt[0]?.inferenceMs).toBeCloseTo(((384 * 800) / rate) * 1000, 0);
    const total = 300_000 + e.downloadMs + e.loadMs + e.perPrompt.reduce((a, p) => a + p.inferenceMs + 60_000, 0);
    expect(e.totalMs).toBeCloseTo(total, 0);
    expect(e.costUsd).toBeCloseTo((total / 3_600_000) * 2.69, 6);
    expect(e.basis.join('\n')).toMatch(/planning.decodeEfficiency/);
  });

  it('uses measured rates of the same model and GPU, and calibrates the efficiency for a model not yet run', () => {
    const history = [run('phase1'), run('phase1', { prompt: 'few-shot', completionTokens: 384 * 900 })];
    const same = estimateSession({
      ...base,
      model: Q4B,
      gpu: gpu('NVIDIA RTX A5000', 24, 768, null),
      costPerHr: null,
      rented: false,
      history,
    });
    const measured = (384 * 700 + 384 * 900) / (2 * 30 * 60);
    expect(same.outputTokensPerSecond).toBeCloseTo(measured, 6);
    expect(same.perPrompt.map((p) => p.outputTokensPerSample)).toEqual([700, 900]);
    expect(same.loadMs).toBe(90_000);
    expect(same.imagePullMs).toBe(0);
    expect(same.costUsd).toBeNull();
    const other = estimateSession({
      ...base,
      model: Q30B,
      gpu: H100,
      costPerHr: 2.69,
      history,
      otherGpus: [gpu('NVIDIA RTX A5000', 24, 768, null)],
    });
    const efficiency = measured / 2 / ((16 * 768e9) / (4.0e9 * 2));
    // Each run's own rate over its own bound: the median of two runs.
    const e1 = (384 * 700) / 1800 / ((16 * 768e9) / 8e9);
    const e2 = (384 * 900) / 1800 / ((16 * 768e9) / 8e9);
    expect(efficiency).toBeGreaterThan(0);
    expect(other.outputTokensPerSecond).toBeCloseTo((((e1 + e2) / 2) * 16 * 3350e9) / (3.3e9 * 2), 6);
    expect(other.basis.join('\n')).toMatch(/efficiency measured on 2 earlier run/);
    // Output lengths of the same kind and prompt from phase 1.
    expect(other.perPrompt.map((p) => p.outputTokensPerSample)).toEqual([700, 900]);
  });
});

describe('the plan of rq1', () => {
  const study = loadStudyFile('studies/rq1.yaml');
  const longest = (key: string) => [
    tokens(key, 'zero-shot', [
      [1, 1_000],
      [2, 16_900],
    ]),
    tokens(key, 'few-shot', [
      [1, 3_000],
      [2, 19_000],
    ]),
  ];
  const input = (phaseId: string, over: Partial<PlanInput> = {}): PlanInput => ({
    study,
    phaseId,
    facts: {
      models: [
        Q30B,
        { ...Q30B, repoId: 'Qwen/Qwen3-30B-A3B-Thinking-2507' },
        Q235B,
        { ...Q235B, repoId: 'Qwen/Qwen3-235B-A22B-Thinking-2507' },
      ],
      gpus: [H100, H200, gpu('NVIDIA A100-SXM4-80GB', 80, 2039, 1.74)],
      notes: [],
    },
    preflight: {
      check: { problems: [], samples: 384, duplicates: 2 },
      dataset: {
        sha256: 'd'.repeat(64),
        rows: 386,
        unique: 384,
        duplicateIds: [349259, 439495],
        labels: { vulnerable: 193, benign: 191 },
        fields: { idx: 386, func: 386, target: 386 },
        requiredMissing: [],
      },
      tokens: study.phases.flatMap((p) => p.models).flatMap((m) => longest(m.repoId)),
    },
    history: [],
    codecarbonVersion: '2.7.1',
    templates: {},
    studySpentUsd: 0,
    generatedAt: '2026-12-03T00:00:00Z',
    ...over,
  });

  it('phase2b: 235B candidates that cannot hold the weights are dropped with the reason; the rest are priced', () => {
    const plan = buildPlan(input('phase2b'));
    expect(plan.candidates.map((c) => c.dropped === null)).toEqual([true, true, true]);
    const narrow = parseStudy({
      ...structuredClone(study),
      phases: study.phases.map((p) =>
        p.id === 'phase2b' && p.target.kind === 'runpod'
          ? {
              ...p,
              target: {
                ...p.target,
                candidates: [
                  { gpuTypeId: 'NVIDIA H100 80GB HBM3', gpuCount: 2, dataCenterIds: [], cloud: 'SECURE' },
                  ...p.target.candidates,
                ],
              },
            }
          : p,
      ),
    });
    const p2 = buildPlan(input('phase2b', { study: narrow }));
    expect(p2.candidates[0]?.dropped).toMatch(/exceed/);
    expect(p2.checks.find((c) => c.id === 'fit')?.verdict).toBe('warn');
    expect(p2.candidates[1]?.costPerHr).toBeCloseTo(4 * 3.59, 6);
    expect(p2.candidates[1]?.phaseCostUsd).toBeGreaterThan(0);
  });

  it('no candidate fits -> the fit check fails and the plan is not ok', () => {
    // Only a (hypothetical) 40 GB H100 is known: 8 of them cannot hold 438 GiB; the H200s are unknown, so dropped.
    const small = { ...H100, memoryGib: 40 };
    const plan = buildPlan(
      input('phase2b', {
        facts: {
          models: [Q235B, { ...Q235B, repoId: 'Qwen/Qwen3-235B-A22B-Thinking-2507' }],
          gpus: [small],
          notes: [],
        },
      }),
    );
    expect(plan.candidates.map((c) => c.dropped)).toEqual([
      expect.stringMatching(/GPU type NVIDIA H200 is not in the catalog or the metadata file/),
      expect.stringMatching(/GPU type NVIDIA H200 is not/),
      expect.stringMatching(/exceed the 36\.0 GiB/),
    ]);
    expect(plan.ok).toBe(false);
    expect(plan.checks.find((c) => c.id === 'fit')?.summary).toMatch(/no GPU candidate fits/);
    expect(plan.checks.find((c) => c.id === 'budget')?.verdict).toBe('fail');
  });

  it('a context that is too short fails with the sample ids, the smallest maxModelLen and what the fit allows', () => {
    const short = parseStudy({ ...structuredClone(study), vllm: { ...study.vllm, maxModelLen: 32_768 } });
    const plan = buildPlan(input('phase2a', { study: short }));
    const ctx = plan.checks.find((c) => c.id === 'context');
    expect(ctx?.verdict).toBe('fail');
    expect(ctx?.details.join('\n')).toMatch(
      /Thinking-2507 few-shot: longest prompt 19,000 tokens \(id 2\) \+ maxTokens 24,576 = 43,576 > maxModelLen 32,768: 1 sample\(s\).*ids 2\b.*Smallest maxModelLen that fits: 43,576 \(e\.g\. 44,032\); the fit check allows up to 1[0-9]{2},[0-9]{3} on #0/,
    );
    expect(plan.ok).toBe(false);
  });

  it('dataset problems from the harness fail the plan; duplicates only warn', () => {
    const ok = buildPlan(input('phase2a'));
    expect(ok.checks.find((c) => c.id === 'dataset')).toMatchObject({ verdict: 'warn' });
    expect(ok.checks.find((c) => c.id === 'dataset')?.details.join('\n')).toMatch(
      /duplicate ids \(counted once\): 349259, 439495/,
    );
    const base = input('phase2a');
    const leak = buildPlan({
      ...base,
      preflight: {
        ...(base.preflight as PreflightReport),
        check: { problems: ['prompts.0.templatePath: label leak: {cve}'], samples: 384, duplicates: 2 },
      },
    });
    expect(leak.checks.find((c) => c.id === 'dataset')?.verdict).toBe('fail');
    expect(leak.ok).toBe(false);
  });

  it('an undeclared difference from phase 1 stops the plan; a declared one passes', () => {
    const earlier = [run('phase1', {}, { concurrency: 8, maxModelLen: study.vllm.maxModelLen })];
    const plan = buildPlan(
      input('phase2a', {
        history: earlier,
        templates: { 'zero-shot': { templateSha256: 'a'.repeat(64), fewShotSha256: null } },
      }),
    );
    const c = plan.checks.find((x) => x.id === 'consistency');
    expect(c?.verdict).toBe('fail');
    expect(c?.details[0]).toMatch(/^concurrency: phase2a plans 16; phase1 ran 8 \(1 run\(s\)\)/);
    const declared = parseStudy({
      ...structuredClone(study),
      phases: study.phases.map((p) =>
        p.id === 'phase2a' ? { ...p, differsFromEarlierPhases: { concurrency: 'more GPU memory' } } : p,
      ),
    });
    expect(
      buildPlan(input('phase2a', { study: declared, history: earlier })).checks.find((x) => x.id === 'consistency')
        ?.verdict,
    ).toBe('pass');
  });

  it('the budget check fails when even the cheapest fitting candidate is over the phase budget', () => {
    const tight = parseStudy({
      ...structuredClone(study),
      phases: study.phases.map((p) =>
        p.id === 'phase2b' ? { ...p, budget: { phaseUsd: 1, sessionEstimateUsd: 1 } } : p,
      ),
    });
    const plan = buildPlan(input('phase2b', { study: tight }));
    expect(plan.checks.find((c) => c.id === 'budget')).toMatchObject({ verdict: 'fail' });
    expect(plan.checks.find((c) => c.id === 'budget')?.summary).toMatch(
      /even the cheapest fitting candidate \(\$[0-9.]+\) is over the phase budget \$1\.00/,
    );
  });
});
