/**
 * Reading a failed vLLM startup from its log (reference/pod-side.md 2.8). Pure, so the classification is unit-tested
 * on the real messages of vLLM V0 and V1.
 */

/** Why vLLM could not start, as far as its log tells. */
export type VllmStartupFailure =
  | {
      kind: 'does-not-fit';
      reason: 'kv-cache' | 'out-of-memory';
      /** The numbers vLLM printed (GiB, tokens), by name; only the ones found. */
      numbers: Record<string, number>;
      /** The log line that decided it. */
      evidence: string;
    }
  | { kind: 'vram-held'; numbers: Record<string, number>; evidence: string }
  | { kind: 'unknown'; evidence: string };

const num = (s: string | undefined): number => Number(s);

/** `2.00 GiB` / `512.00 MiB` in GiB. */
function gib(s: string | undefined): number {
  const m = /^([\d.]+)\s*([GMK])iB$/.exec((s ?? '').trim());
  if (!m) return NaN;
  const scale = m[2] === 'G' ? 1 : m[2] === 'M' ? 1 / 1024 : 1 / 1024 ** 2;
  return Math.round(num(m[1]) * scale * 100) / 100;
}

function lineOf(log: string, index: number): string {
  const start = log.lastIndexOf('\n', index) + 1;
  const end = log.indexOf('\n', index);
  return log.slice(start, end === -1 ? undefined : end).trim();
}

/** Classifies the tail of a vLLM log whose process exited during startup. */
export function classifyVllmStartup(log: string): VllmStartupFailure {
  // Another process (often a zombie vLLM) holds the GPU memory this one wants: cleanup can fix it.
  const held =
    /Free memory on device \(([\d.]+)\/([\d.]+) GiB\) on startup is less than desired GPU memory utilization \(([\d.]+), ([\d.]+) GiB\)/.exec(
      log,
    );
  if (held) {
    return {
      kind: 'vram-held',
      numbers: {
        freeGiB: num(held[1]),
        totalGiB: num(held[2]),
        gpuMemoryUtilization: num(held[3]),
        wantedGiB: num(held[4]),
      },
      evidence: lineOf(log, held.index),
    };
  }
  // vLLM V1: the KV cache cannot hold one request of max-model-len tokens.
  const v1 =
    /max seq len \((\d+)\), \(([\d.]+) GiB KV cache is needed, which is larger than the available KV cache memory \(([\d.]+) GiB\)(?:\. Based on the available memory, the estimated maximum model length is (\d+))?/.exec(
      log,
    );
  if (v1) {
    const numbers: Record<string, number> = {
      maxModelLen: num(v1[1]),
      kvCacheNeededGiB: num(v1[2]),
      kvCacheAvailableGiB: num(v1[3]),
    };
    if (v1[4]) numbers.estimatedMaxModelLen = num(v1[4]);
    return { kind: 'does-not-fit', reason: 'kv-cache', numbers, evidence: lineOf(log, v1.index) };
  }
  // vLLM V0 wording of the same check.
  const v0 =
    /max seq len \((\d+)\) is larger than the maximum number of tokens that can be stored in KV cache \((\d+)\)/.exec(
      log,
    );
  if (v0) {
    return {
      kind: 'does-not-fit',
      reason: 'kv-cache',
      numbers: { maxModelLen: num(v0[1]), kvCacheTokens: num(v0[2]), estimatedMaxModelLen: num(v0[2]) },
      evidence: lineOf(log, v0.index),
    };
  }
  const noBlocks = /No available memory for the cache blocks/.exec(log);
  if (noBlocks) return { kind: 'does-not-fit', reason: 'kv-cache', numbers: {}, evidence: lineOf(log, noBlocks.index) };
  const oom =
    /CUDA out of memory\. Tried to allocate ([\d.]+ [GMK]iB)\. GPU (\d+) has a total capacity of ([\d.]+ [GMK]iB) of which ([\d.]+ [GMK]iB) is free/.exec(
      log,
    );
  if (oom) {
    return {
      kind: 'does-not-fit',
      reason: 'out-of-memory',
      numbers: {
        triedToAllocateGiB: gib(oom[1]),
        gpuIndex: num(oom[2]),
        gpuTotalGiB: gib(oom[3]),
        gpuFreeGiB: gib(oom[4]),
      },
      evidence: lineOf(log, oom.index),
    };
  }
  const anyOom = /CUDA out of memory|OutOfMemoryError/.exec(log);
  if (anyOom)
    return { kind: 'does-not-fit', reason: 'out-of-memory', numbers: {}, evidence: lineOf(log, anyOom.index) };
  // The last traceback line is the most specific thing an unknown failure offers.
  const lines = log.trim().split('\n');
  const error = [...lines].reverse().find((l) => /Error|error|Exception/.test(l)) ?? lines[lines.length - 1] ?? '';
  return { kind: 'unknown', evidence: error.trim() };
}

/** What a researcher needs to decide: the settings, the numbers vLLM printed, and what to change. */
export function doesNotFitMessage(
  failure: Extract<VllmStartupFailure, { kind: 'does-not-fit' }>,
  ctx: {
    servedModelName: string;
    maxModelLen: number;
    maxNumSeqs: number;
    gpuMemoryUtilization: number;
    tensorParallelSize: number;
    /** Downloaded weights, when known. */
    weightBytes?: number;
    /** `NVIDIA H100 80GB HBM3, 81559 MiB` from nvidia-smi, when there is one. */
    gpu?: string | null;
  },
): string {
  const n = failure.numbers;
  const where = ctx.gpu
    ? `${ctx.gpu} (x${ctx.tensorParallelSize})`
    : `this GPU (tensor parallel ${ctx.tensorParallelSize})`;
  const weights = ctx.weightBytes ? `; weights ${(ctx.weightBytes / 2 ** 30).toFixed(1)} GiB` : '';
  const head =
    `${ctx.servedModelName} does not fit ${where} at max-model-len ${ctx.maxModelLen}, ` +
    `max-num-seqs ${ctx.maxNumSeqs}, gpu-memory-utilization ${ctx.gpuMemoryUtilization}${weights}`;
  let why: string;
  let suggestion: string;
  if (failure.reason === 'kv-cache') {
    const need = n.kvCacheNeededGiB !== undefined ? `${n.kvCacheNeededGiB} GiB of KV cache needed` : '';
    const have = n.kvCacheAvailableGiB !== undefined ? `${n.kvCacheAvailableGiB} GiB available` : '';
    const tokens = n.kvCacheTokens !== undefined ? `the KV cache holds ${n.kvCacheTokens} tokens` : '';
    why = [need, have, tokens].filter(Boolean).join(', ') || 'no memory left for the KV cache';
    suggestion =
      n.estimatedMaxModelLen !== undefined
        ? `set vllm.maxModelLen to at most ${n.estimatedMaxModelLen} (vLLM's estimate for this GPU), ` +
          'raise gpuMemoryUtilization, or choose a GPU with more memory (or more GPUs)'
        : 'lower vllm.maxModelLen, raise gpuMemoryUtilization, or choose a GPU with more memory (or more GPUs)';
  } else {
    why =
      n.triedToAllocateGiB !== undefined
        ? `CUDA out of memory: tried to allocate ${n.triedToAllocateGiB} GiB, ${n.gpuFreeGiB} GiB free of ${n.gpuTotalGiB} GiB`
        : 'CUDA out of memory';
    suggestion =
      'lower vllm.maxNumSeqs or vllm.maxModelLen (or gpuMemoryUtilization if the GPU is shared), or choose a GPU with ' +
      'more memory (or more GPUs)';
  }
  return `${head}: ${why}. Suggestion: ${suggestion}. vLLM said: ${failure.evidence.slice(0, 600)}`;
}
