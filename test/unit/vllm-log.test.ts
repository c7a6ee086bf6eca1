import { describe, expect, it } from 'vitest';
import { classifyVllmStartup, doesNotFitMessage } from '../../src/activities/vllm/index.js';

// Startup failures as vLLM prints them (reference/pod-side.md 2.8), each with the surrounding traceback noise.
const V1_KV =
  '(EngineCore_DP0 pid=18799) ERROR 10-08 20:33:48 [core.py:708] ValueError: To serve at least one request with the ' +
  "models's max seq len (262144), (24.00 GiB KV cache is needed, which is larger than the available KV cache memory " +
  '(9.20 GiB). Based on the available memory, the estimated maximum model length is 98160. Try increasing ' +
  '`gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.';
const V0_KV =
  "ValueError: The model's max seq len (262144) is larger than the maximum number of tokens that can be stored in KV " +
  'cache (101408). Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.';
const OOM =
  'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 512.00 MiB. GPU 0 has a total capacity of 79.19 GiB ' +
  'of which 301.06 MiB is free. Including non-PyTorch memory, this process has 78.88 GiB memory in use.';
const HELD =
  'ValueError: Free memory on device (12.5/79.19 GiB) on startup is less than desired GPU memory utilization (0.9, ' +
  '71.27 GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes.';
const wrap = (line: string) =>
  `INFO 11-28 12:00:00 [core.py:93] Initializing a V1 LLM engine\nTraceback (most recent call last):\n  File "x.py", line 1\n${line}\nRuntimeError: Engine core initialization failed. See root cause above.\n`;

const ctx = {
  servedModelName: 'Qwen/Qwen3-30B-A3B-Thinking-2507',
  maxModelLen: 262144,
  maxNumSeqs: 16,
  gpuMemoryUtilization: 0.9,
  tensorParallelSize: 1,
  weightBytes: 61_000_000_000,
  gpu: 'NVIDIA H100 80GB HBM3, 81559 MiB',
};

describe('classifyVllmStartup', () => {
  it('reads the V1 KV-cache check with its numbers, and says what max-model-len would fit', () => {
    const f = classifyVllmStartup(wrap(V1_KV));
    expect(f).toMatchObject({
      kind: 'does-not-fit',
      reason: 'kv-cache',
      numbers: { maxModelLen: 262144, kvCacheNeededGiB: 24, kvCacheAvailableGiB: 9.2, estimatedMaxModelLen: 98160 },
    });
    if (f.kind !== 'does-not-fit') throw new Error('unreachable');
    const msg = doesNotFitMessage(f, ctx);
    expect(msg).toContain('does not fit NVIDIA H100 80GB HBM3, 81559 MiB (x1) at max-model-len 262144');
    expect(msg).toContain('weights 56.8 GiB');
    expect(msg).toContain('24 GiB of KV cache needed, 9.2 GiB available');
    expect(msg).toContain('set vllm.maxModelLen to at most 98160');
  });

  it('reads the V0 wording of the same check', () => {
    expect(classifyVllmStartup(wrap(V0_KV))).toMatchObject({
      kind: 'does-not-fit',
      reason: 'kv-cache',
      numbers: { maxModelLen: 262144, kvCacheTokens: 101408, estimatedMaxModelLen: 101408 },
    });
  });

  it('reads CUDA out of memory with sizes in GiB', () => {
    const f = classifyVllmStartup(wrap(OOM));
    expect(f).toMatchObject({
      kind: 'does-not-fit',
      reason: 'out-of-memory',
      numbers: { triedToAllocateGiB: 0.5, gpuTotalGiB: 79.19, gpuFreeGiB: 0.29 },
    });
    if (f.kind !== 'does-not-fit') throw new Error('unreachable');
    expect(doesNotFitMessage(f, { ...ctx, gpu: null })).toMatch(
      /does not fit this GPU \(tensor parallel 1\).*tried to allocate 0.5 GiB, 0.29 GiB free of 79.19 GiB.*lower vllm.maxNumSeqs/,
    );
  });

  it('tells GPU memory held by another process apart from a model that does not fit', () => {
    expect(classifyVllmStartup(wrap(HELD))).toMatchObject({
      kind: 'vram-held',
      numbers: { freeGiB: 12.5, totalGiB: 79.19, gpuMemoryUtilization: 0.9, wantedGiB: 71.27 },
    });
  });

  it('leaves anything else unknown, with its most specific error line', () => {
    const f = classifyVllmStartup(
      'INFO starting\nTraceback (most recent call last):\nImportError: libcudart.so.12: cannot open shared object file\n',
    );
    expect(f).toEqual({ kind: 'unknown', evidence: 'ImportError: libcudart.so.12: cannot open shared object file' });
  });
});
